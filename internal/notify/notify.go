// Package notify tells an account's owner about security changes (password
// changed, address added, secret question changed, sign-in from a new
// device, recovery locked): one message to every verified address, saying
// what happened, when, from where, and what to do if it was not them.
package notify

import (
	"context"
	"time"

	"campusid/internal/i18n"
	"campusid/internal/outbox"
	"campusid/internal/store"
	"campusid/internal/web"
)

// Kinds of notification; each is a mail template notify_KIND.
const (
	PasswordChanged = "password_changed"
	EmailAdded      = "email_added"
	QuestionChanged = "question_changed"
	NewDevice       = "new_device"
	QuestionLocked  = "question_locked"
)

// Notifier queues notifications through the outbox.
type Notifier struct {
	Mailer    *outbox.Mailer
	PublicURL string
	Now       func() time.Time
}

// Send queues the notification kind to every verified address of the
// account, through tx (the transaction of the change), in lang. extra adds
// template data (e.g. "Address" for email_added, "Device").
func (n *Notifier) Send(ctx context.Context, tx *store.DB, a store.Account, kind, lang string, extra map[string]any) error {
	emails, err := tx.EmailsOf(ctx, a.ID)
	if err != nil {
		return err
	}
	info := web.Info(ctx)
	l := i18n.Localizer{Lang: lang}
	at := n.Now().Local()
	when := at.Format("02/01/2006 à 15:04")
	if lang == "en" {
		when = at.Format("2 January 2006 at 15:04")
	}
	data := map[string]any{
		"Name": a.DisplayName, "When": when, "IP": info.ClientIP, "Device": Device(l, info.UserAgent),
		"AccountURL": n.PublicURL + "/account", "RecoverURL": n.PublicURL + "/recover",
	}
	for k, v := range extra {
		data[k] = v
	}
	for _, e := range emails {
		if e.VerifiedAt == nil {
			continue
		}
		if err := n.Mailer.Enqueue(ctx, tx, "notify_"+kind, lang, e.Address, a.ID, data); err != nil {
			return err
		}
	}
	return nil
}
