package portal

import (
	"context"
	"errors"
	"time"

	"campusid/internal/audit"
	"campusid/internal/i18n"
	"campusid/internal/onetime"
	"campusid/internal/store"
	"campusid/internal/web"
)

// Why an administrator's reset cannot be sent.
var (
	ErrResetDisabled    = errors.New("the account is disabled: enable it first")
	ErrResetProvisioned = errors.New("the account is not activated yet: it has no password to reset; the person activates it from the sign-in page")
	ErrResetNoAddress   = errors.New("the account has no verified address to send to")
	ErrResetExpired     = errors.New("the temporary account has ended: extend it first")
)

// SentReset says where an administrator's reset went.
type SentReset struct {
	To       string
	Validity time.Duration
	CodeURL  string // with a code: the page where the person types it
}

// SendAdminReset sends a reset link, or a code with the page to type it in,
// to the account's primary verified address, whatever its kind: this is
// how support helps temporary accounts, which have no self-service reset.
// The code's flow is bound to no browser: whoever has the page's address
// and the code may use it. It returns onetime.ErrTooSoon when a reset
// message of the same kind left less than the resend interval ago.
func SendAdminReset(ctx context.Context, tokens *onetime.Issuer, al *audit.Log, a store.Account, code bool, actor string) (SentReset, error) {
	switch {
	case a.State == store.StateDisabled:
		return SentReset{}, ErrResetDisabled
	case a.State == store.StateProvisioned || a.PasswordHash == "":
		return SentReset{}, ErrResetProvisioned
	case a.ExpiresAt != nil && !tokens.Now().Before(*a.ExpiresAt):
		return SentReset{}, ErrResetExpired
	}
	emails, err := tokens.DB.EmailsOf(ctx, a.ID)
	if err != nil {
		return SentReset{}, err
	}
	var to store.Email
	for _, e := range emails { // primary first
		if e.VerifiedAt != nil {
			to = e
			break
		}
	}
	if to.ID == "" {
		return SentReset{}, ErrResetNoAddress
	}
	lang := web.Info(ctx).Lang
	if i18n.Supported(a.Locale) {
		lang = a.Locale
	}
	now := tokens.Now()
	m := onetime.Message{Lang: lang, To: to.Address, AccountID: a.ID, EmailID: to.ID,
		Data: map[string]any{"Name": a.DisplayName, "Identifier": a.Identifier, "ByAdmin": true, "Tries": tokens.MaxCodeTries}}
	out := SentReset{To: to.Address}
	err = tokens.DB.InTx(ctx, func(tx *store.DB) error {
		if code {
			f, ref, err := newRecoverFlow(ctx, tx, now, a.ID, to.Address, "", recoverData{EmailID: to.ID, SentAt: now.UnixMilli()})
			if err != nil {
				return err
			}
			m.Purpose, m.FlowID = store.PurposeResetCode, f.ID
			// The page's address goes to the administrator, who passes it on
			// by another channel; the mail has only the code.
			out.CodeURL, out.Validity = tokens.PublicURL+"/recover/code?flow="+ref, tokens.CodeValidity()
			if err := tokens.SendCode(ctx, tx, m, ""); err != nil {
				return err
			}
		} else {
			m.Purpose, m.Path = store.PurposeResetLink, "/recover/link"
			out.Validity = tokens.Validity[store.PurposeResetLink]
			if err := tokens.SendLink(ctx, tx, m, ""); err != nil {
				return err
			}
		}
		kind := "link"
		if code {
			kind = "code"
		}
		return al.Record(ctx, tx, store.AuditEvent{Type: "recover." + kind + "_sent", AccountID: a.ID, Actor: actor,
			Details: map[string]string{"to": web.MaskEmail(to.Address), "email_id": to.ID}})
	})
	return out, err
}
