package outbox

import (
	"encoding/json"
	"net/http"
	"time"

	"campusid/internal/store"
	"campusid/internal/web"
)

// DevMailbox shows the messages kept by DevSender: /dev/mail for people,
// /dev/mail.json for scripts and tests (newest first). It exists only when
// the development mailbox is the mail driver.
type DevMailbox struct {
	App *web.App
	DB  *store.DB
}

// Register adds the routes.
func (d *DevMailbox) Register(mux *http.ServeMux) {
	mux.Handle("GET /dev/mail", d.App.Handle(d.page))
	mux.Handle("GET /dev/mail.json", d.App.Handle(d.json))
}

const devMailLimit = 200

type devMailData struct{ Messages []store.OutboxMessage }

func (d *DevMailbox) page(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w) // the bodies hold live links
	msgs, err := d.DB.ListMail(r.Context(), "", devMailLimit)
	if err != nil {
		return err
	}
	return d.App.Render(w, r, http.StatusOK, "dev_mail", web.Page{Title: "devmail.title", Data: devMailData{Messages: msgs}})
}

// DevMail is one message of /dev/mail.json.
type DevMail struct {
	ID      string     `json:"id"`
	To      string     `json:"to"`
	Subject string     `json:"subject"`
	Text    string     `json:"text"`
	HTML    string     `json:"html"`
	Purpose string     `json:"purpose"`
	State   string     `json:"state"`
	Created time.Time  `json:"created"`
	Sent    *time.Time `json:"sent"`
}

func (d *DevMailbox) json(w http.ResponseWriter, r *http.Request) error {
	msgs, err := d.DB.ListMail(r.Context(), "", devMailLimit)
	if err != nil {
		return err
	}
	out := make([]DevMail, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, DevMail{ID: m.ID, To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML, Purpose: m.Purpose,
			State: m.State, Created: m.CreatedAt, Sent: m.SentAt})
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(out)
}
