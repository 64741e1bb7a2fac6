package outbox

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"path"
	"strings"
	texttemplate "text/template"
	"time"

	"campusid/internal/store"
	"campusid/internal/web"
)

//go:embed templates
var templateFS embed.FS

// Mailer renders the mail templates and queues the result in the outbox.
// Each kind has templates/KIND.txt (text/template with the blocks
// "subject.fr", "text.fr", "subject.en", "text.en") and templates/KIND.html
// (html/template with "html.fr" and "html.en"), both rendered inside the
// shared layout of templates/layout.html.
type Mailer struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
	Now  func() time.Time
	// Base data available to every template as .Site.
	Site SiteInfo
}

// SiteInfo is what every message may mention.
type SiteInfo struct {
	Name         string // "campusid" or the university's name
	PublicURL    string
	SupportEmail string
}

// Kinds lists the message kinds: one per templates/KIND.txt.
func Kinds() []string {
	names, _ := fs.Glob(templateFS, "templates/*.txt")
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, strings.TrimSuffix(path.Base(n), ".txt"))
	}
	return out
}

// NewMailer parses every template; a broken one stops the start.
func NewMailer(site SiteInfo, now func() time.Time) (*Mailer, error) {
	m := &Mailer{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}, Now: now, Site: site}
	for _, k := range Kinds() {
		t, err := texttemplate.ParseFS(templateFS, "templates/"+k+".txt")
		if err != nil {
			return nil, fmt.Errorf("outbox: template %s: %w", k, err)
		}
		h, err := htmltemplate.ParseFS(templateFS, "templates/layout.html", "templates/"+k+".html")
		if err != nil {
			return nil, fmt.Errorf("outbox: template %s: %w", k, err)
		}
		m.text[k], m.html[k] = t, h
	}
	return m, nil
}

// Rendered is one message ready to queue.
type Rendered struct{ Subject, Text, HTML string }

// Render renders kind in lang ("fr" or "en") with data (available as .D).
func (m *Mailer) Render(kind, lang string, data any) (Rendered, error) {
	if lang != "en" {
		lang = "fr"
	}
	t, ok := m.text[kind]
	if !ok {
		return Rendered{}, fmt.Errorf("outbox: no mail template %q", kind)
	}
	v := map[string]any{"D": data, "Site": m.Site, "Lang": lang}
	var subj, text, html bytes.Buffer
	if err := t.ExecuteTemplate(&subj, "subject."+lang, v); err != nil {
		return Rendered{}, fmt.Errorf("outbox: render %s: %w", kind, err)
	}
	if err := t.ExecuteTemplate(&text, "text."+lang, v); err != nil {
		return Rendered{}, fmt.Errorf("outbox: render %s: %w", kind, err)
	}
	v["Body"] = "html." + lang
	if err := m.html[kind].ExecuteTemplate(&html, "layout", v); err != nil {
		return Rendered{}, fmt.Errorf("outbox: render %s: %w", kind, err)
	}
	return Rendered{Subject: strings.TrimSpace(subj.String()), Text: strings.TrimSpace(text.String()) + "\n", HTML: html.String()}, nil
}

// Enqueue renders kind and queues it through db: pass the transaction of
// the change that causes the message, so both land or neither does.
func (m *Mailer) Enqueue(ctx context.Context, db *store.DB, kind, lang, to, accountID string, data any) error {
	r, err := m.Render(kind, lang, data)
	if err != nil {
		return err
	}
	web.Info(ctx).MailQueued = true
	return db.EnqueueMail(ctx, &store.OutboxMessage{To: to, Subject: r.Subject, Text: r.Text, HTML: r.HTML,
		Lang: lang, Purpose: kind, AccountID: accountID, CreatedAt: m.Now()})
}
