package portal

import (
	"errors"
	"net/http"
	"net/url"

	"campusid/internal/account"
	"campusid/internal/notify"
	"campusid/internal/onetime"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

func (h *Handler) addEmail(w http.ResponseWriter, r *http.Request, cur *session.Current) error {
	ctx := r.Context()
	l := loc(r)
	raw := r.PostFormValue("email")
	again := func(msg string) error {
		return h.render(w, r, cur, http.StatusUnprocessableEntity, web.Page{},
			accountData{NewEmail: raw, EmailError: msg, SignOutOthers: true})
	}
	addr, err := account.NormalizeEmail(raw)
	if err != nil {
		return again(l.T("account.email_invalid"))
	}
	kind := store.EmailPersonal
	if r.PostFormValue("kind") == store.EmailInstitutional {
		kind = store.EmailInstitutional
	}
	now := h.Now()
	err = h.DB.InTx(ctx, func(tx *store.DB) error {
		e := store.Email{AccountID: cur.Account.ID, Address: addr, Kind: kind, CreatedAt: now}
		if err := tx.AddEmail(ctx, &e); err != nil {
			return err
		}
		if err := h.sendVerification(r, tx, cur.Account, e); err != nil {
			return err
		}
		if err := h.Audit.Record(ctx, tx, store.AuditEvent{Type: "email.add", AccountID: cur.Account.ID,
			Details: map[string]string{"email_id": e.ID, "kind": kind}}); err != nil {
			return err
		}
		return h.Notify.Send(ctx, tx, cur.Account, notify.EmailAdded, web.Info(ctx).Lang, map[string]any{"Address": addr})
	})
	if errors.Is(err, store.ErrConflict) {
		// Same words whether the address is this account's or another's.
		return again(l.T("account.email_taken"))
	}
	if err != nil {
		return err
	}
	return done(w, r, "email_added", "emails")
}

// sendVerification creates a verification link for e and queues its
// message, in tx.
func (h *Handler) sendVerification(r *http.Request, tx *store.DB, a store.Account, e store.Email) error {
	ctx := r.Context()
	now := h.Now()
	token := session.NewToken()
	t := store.EmailToken{TokenHash: session.HashToken(token), Purpose: store.PurposeVerifyEmail, AccountID: a.ID,
		EmailID: e.ID, CreatedAt: now, ExpiresAt: now.Add(h.VerifyValidity)}
	if err := tx.CreateEmailToken(ctx, &t); err != nil {
		return err
	}
	lang := web.Info(ctx).Lang
	link := h.PublicURL + "/verify?token=" + url.QueryEscape(token)
	return h.Mailer.Enqueue(ctx, tx, store.PurposeVerifyEmail, lang, e.Address, a.ID, map[string]any{
		"Name": a.DisplayName, "Address": e.Address, "Link": link, "Validity": onetime.Human(loc(r), h.VerifyValidity),
	})
}

func (h *Handler) resendEmail(w http.ResponseWriter, r *http.Request, cur *session.Current) error {
	ctx := r.Context()
	e, err := h.DB.EmailByID(ctx, cur.Account.ID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return web.NotFound()
	}
	if err != nil {
		return err
	}
	if e.VerifiedAt != nil {
		return done(w, r, "resent", "emails")
	}
	last, err := h.DB.LastMailTo(ctx, cur.Account.ID, store.PurposeVerifyEmail)
	if err != nil {
		return err
	}
	if wait := last.Add(h.ResendEvery).Sub(h.Now()); !last.IsZero() && wait > 0 {
		web.RetryAfter(w, wait)
		return h.render(w, r, cur, http.StatusTooManyRequests, web.Page{},
			accountData{EmailError: loc(r).T("account.resend_wait", loc(r).WaitSeconds(wait)), SignOutOthers: true})
	}
	err = h.DB.InTx(ctx, func(tx *store.DB) error {
		if err := h.sendVerification(r, tx, cur.Account, e); err != nil {
			return err
		}
		return h.Audit.Record(ctx, tx, store.AuditEvent{Type: "email.verification_sent", AccountID: cur.Account.ID,
			Details: map[string]string{"email_id": e.ID}})
	})
	if err != nil {
		return err
	}
	return done(w, r, "resent", "emails")
}

func (h *Handler) deleteEmail(w http.ResponseWriter, r *http.Request, cur *session.Current) error {
	ctx := r.Context()
	id := r.PathValue("id")
	refused := false
	err := h.DB.InTx(ctx, func(tx *store.DB) error {
		emails, err := tx.EmailsOf(ctx, cur.Account.ID)
		if err != nil {
			return err
		}
		var target *store.Email
		verified := 0
		for i, e := range emails {
			if e.ID == id {
				target = &emails[i]
			}
			if e.VerifiedAt != nil {
				verified++
			}
		}
		if target == nil {
			return web.NotFound()
		}
		if target.VerifiedAt != nil && verified <= 1 {
			refused = true // the last verified address is the way back in
			return nil
		}
		if err := tx.DeleteEmail(ctx, cur.Account.ID, id); err != nil {
			return err
		}
		if target.Primary {
			for _, e := range emails {
				if e.ID != id && e.VerifiedAt != nil {
					if err := tx.SetPrimaryEmail(ctx, cur.Account.ID, e.ID); err != nil {
						return err
					}
					break
				}
			}
		}
		return h.Audit.Record(ctx, tx, store.AuditEvent{Type: "email.remove", AccountID: cur.Account.ID,
			Details: map[string]string{"email_id": id}})
	})
	if err != nil {
		return err
	}
	if refused {
		return h.render(w, r, cur, http.StatusConflict, web.Page{},
			accountData{EmailError: loc(r).T("account.email_last"), SignOutOthers: true})
	}
	return done(w, r, "email_removed", "emails")
}

func (h *Handler) primaryEmail(w http.ResponseWriter, r *http.Request, cur *session.Current) error {
	ctx := r.Context()
	e, err := h.DB.EmailByID(ctx, cur.Account.ID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return web.NotFound()
	}
	if err != nil {
		return err
	}
	if e.VerifiedAt == nil {
		return h.render(w, r, cur, http.StatusConflict, web.Page{},
			accountData{EmailError: loc(r).T("account.primary_unverified"), SignOutOthers: true})
	}
	err = h.DB.InTx(ctx, func(tx *store.DB) error {
		if err := tx.SetPrimaryEmail(ctx, cur.Account.ID, e.ID); err != nil {
			return err
		}
		return h.Audit.Record(ctx, tx, store.AuditEvent{Type: "email.primary", AccountID: cur.Account.ID,
			Details: map[string]string{"email_id": e.ID}})
	})
	if err != nil {
		return err
	}
	return done(w, r, "primary", "emails")
}
