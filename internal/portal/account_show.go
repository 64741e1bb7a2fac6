package portal

import (
	"net/http"
	"time"

	"campusid/internal/notify"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

type accountData struct {
	Account  store.Account
	Emails   []emailView
	Sessions []sessionView
	Policy   web.PolicyView
	Others   int // sessions other than this one

	// Forms re-shown after a refused submission.
	NewEmail      string
	EmailError    string
	PasswordError string
	SignOutOthers bool
	// SignOutDevices: the password form's "also sign out my connected
	// devices and applications" (devices.go), unchecked by default.
	SignOutDevices bool
	Question       questionView // the secret question's section (question.go)
	Apps           []appEntry   // applications granted access or connected (apps.go, devices.go)
}

type emailView struct {
	store.Email
	CanDelete  bool
	LastSentAt *time.Time
}

type sessionView struct {
	ID, Device, IP string
	LastSeen       time.Time
	Created        time.Time
	Current        bool
	Remember       bool
}

func (h *Handler) show(w http.ResponseWriter, r *http.Request, cur *session.Current) error {
	p := web.Page{Notice: notices[r.URL.Query().Get("done")]}
	return h.render(w, r, cur, http.StatusOK, p, accountData{SignOutOthers: true})
}

// render shows the account page with the forms' state d.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, cur *session.Current, status int, p web.Page, d accountData) error {
	ctx := r.Context()
	l := loc(r)
	emails, err := h.DB.EmailsOf(ctx, cur.Account.ID)
	if err != nil {
		return err
	}
	verified := 0
	for _, e := range emails {
		if e.VerifiedAt != nil {
			verified++
		}
	}
	for _, e := range emails {
		ev := emailView{Email: e, CanDelete: e.VerifiedAt == nil || verified > 1}
		d.Emails = append(d.Emails, ev)
	}
	sessions, err := h.DB.ListSessions(ctx, cur.Account.ID, h.Now())
	if err != nil {
		return err
	}
	for _, s := range sessions {
		if !s.Remember && h.Now().Sub(s.LastSeenAt) >= h.Sessions.IdleTimeout {
			continue // idle: already over
		}
		d.Sessions = append(d.Sessions, sessionView{ID: s.ID, Device: notify.Device(l, s.UserAgent), IP: s.IP,
			LastSeen: s.LastSeenAt, Created: s.CreatedAt, Current: s.ID == cur.Session.ID, Remember: s.Remember})
		if s.ID != cur.Session.ID {
			d.Others++
		}
	}
	d.Account = cur.Account
	if err := h.loadQuestion(ctx, l, cur.Account.ID, &d.Question); err != nil {
		return err
	}
	apps, err := h.loadApps(ctx, l, cur.Account.ID)
	if err != nil {
		return err
	}
	if d.Apps, err = h.loadDevices(ctx, l, cur.Account.ID, apps); err != nil {
		return err
	}
	if d.Policy.ID == "" {
		d.Policy = h.Accounts.Policy.View(l, nil, false)
	}
	p.Title = "account.title"
	p.Data = d
	return h.App.Render(w, r, status, "account", p)
}
