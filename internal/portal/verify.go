package portal

import (
	"errors"
	"net/http"

	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

type verifyData struct {
	Token string
	Done  bool
}

// showVerify shows a button: a mail scanner that fetches the link must not
// use it up; the POST does.
func (h *Handler) showVerify(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w)
	tok := r.URL.Query().Get("token")
	if tok == "" || len(tok) > 100 {
		return web.BadRequest("verify.invalid")
	}
	return h.App.Render(w, r, http.StatusOK, "verify", web.Page{Title: "verify.title", Data: verifyData{Token: tok}})
}

func (h *Handler) submitVerify(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w)
	ctx := r.Context()
	tok := r.PostFormValue("token")
	if tok == "" || len(tok) > 100 {
		return web.BadRequest("verify.invalid")
	}
	now := h.Now()
	err := h.DB.InTx(ctx, func(tx *store.DB) error {
		t, err := tx.RedeemEmailToken(ctx, session.HashToken(tok), store.PurposeVerifyEmail, now)
		if err != nil {
			return err
		}
		if err := tx.MarkEmailVerified(ctx, t.EmailID, now); err != nil {
			return err
		}
		return h.Audit.Record(ctx, tx, store.AuditEvent{Type: "email.verified", AccountID: t.AccountID,
			Details: map[string]string{"email_id": t.EmailID}})
	})
	if errors.Is(err, store.ErrNotFound) {
		return h.App.Render(w, r, http.StatusGone, "verify", web.Page{Title: "verify.title", Error: loc(r).T("verify.invalid")})
	}
	if err != nil {
		return err
	}
	return h.App.Render(w, r, http.StatusOK, "verify", web.Page{Title: "verify.title", Notice: "verify.done", Data: verifyData{Done: true}})
}
