package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"campusid/internal/account"
	"campusid/internal/i18n"
	"campusid/internal/notify"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// recoverPasswordPage is the data of the new-password form, reached by a
// reset link (Token) or by a verified code (Flow).
type recoverPasswordPage struct {
	Action string
	Token  string
	Flow   string
	Login  string // the address, for password managers
	Policy web.PolicyView
}

// resetAccount returns the account a reset is for, or the page that says
// why it may not reset now.
func (h *Handler) resetAccount(r *http.Request, id string) (store.Account, error) {
	a, err := h.DB.AccountByID(r.Context(), id)
	if err != nil {
		return a, err
	}
	switch problem := account.SignInProblem(a, h.Now()); problem {
	case "":
		return a, nil
	case "expired":
		return a, &web.Error{Status: http.StatusForbidden, Key: "recover.account_expired"}
	default:
		return a, &web.Error{Status: http.StatusForbidden, Key: "recover.account_" + problem}
	}
}

// linkDead shows /recover with the form and why the link no longer works.
func (h *Handler) linkDead(w http.ResponseWriter, r *http.Request) error {
	return h.App.Render(w, r, http.StatusGone, "recover", web.Page{Title: "recover.title",
		Error: loc(r).T("recover.link_invalid"), Data: recoverPage{Method: "link"}})
}

// showResetLink shows the new-password form; a mail scanner that fetches
// the link uses nothing, the POST does.
func (h *Handler) showResetLink(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w)
	tok := r.URL.Query().Get("token")
	t, err := h.Tokens.PeekLink(r.Context(), tok, store.PurposeResetLink)
	if errors.Is(err, store.ErrNotFound) {
		return h.linkDead(w, r)
	}
	if err != nil {
		return err
	}
	if _, err := h.resetAccount(r, t.AccountID); err != nil {
		return err
	}
	return h.App.Render(w, r, http.StatusOK, "recover_password", web.Page{Title: "recover.password_title",
		Data: recoverPasswordPage{Action: "/recover/link", Token: tok, Login: t.SentTo, Policy: h.Accounts.Policy.View(loc(r), nil, false)}})
}

func (h *Handler) submitResetLink(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w)
	ctx := r.Context()
	tok := r.PostFormValue("token")
	t, err := h.Tokens.PeekLink(ctx, tok, store.PurposeResetLink)
	if errors.Is(err, store.ErrNotFound) {
		return h.linkDead(w, r)
	}
	if err != nil {
		return err
	}
	a, err := h.resetAccount(r, t.AccountID)
	if err != nil {
		return err
	}
	d := recoverPasswordPage{Action: "/recover/link", Token: tok, Login: t.SentTo}
	hash, err := h.newPasswordHash(w, r, a, d)
	if err != nil || hash == "" {
		return err
	}
	err = h.resetPassword(ctx, a, hash, "link", func(tx *store.DB) error {
		used, err := h.Tokens.RedeemLink(ctx, tx, tok, store.PurposeResetLink)
		if err == nil && used.AccountID != a.ID {
			err = store.ErrNotFound
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) { // used by a concurrent submission
		return h.linkDead(w, r)
	}
	if err != nil {
		return err
	}
	return h.signInAfterReset(w, r, a)
}

func (h *Handler) showRecoverPassword(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w)
	ref := r.URL.Query().Get("flow")
	f, err := h.recoverFlow(r, ref, recoverPassword)
	if err != nil {
		return h.flowFailed(w, r, err)
	}
	if _, err := h.resetAccount(r, f.AccountID); err != nil {
		return err
	}
	return h.App.Render(w, r, http.StatusOK, "recover_password", web.Page{Title: "recover.password_title",
		Data: recoverPasswordPage{Action: "/recover/password", Flow: ref, Login: f.Identifier, Policy: h.Accounts.Policy.View(loc(r), nil, false)}})
}

func (h *Handler) submitRecoverPassword(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w)
	ctx := r.Context()
	ref := r.PostFormValue("flow")
	f, err := h.recoverFlow(r, ref, recoverPassword)
	if err != nil {
		return h.flowFailed(w, r, err)
	}
	a, err := h.resetAccount(r, f.AccountID)
	if err != nil {
		return err
	}
	d := recoverPasswordPage{Action: "/recover/password", Flow: ref, Login: f.Identifier}
	hash, err := h.newPasswordHash(w, r, a, d)
	if err != nil || hash == "" {
		return err
	}
	err = h.resetPassword(ctx, a, hash, "code", func(tx *store.DB) error {
		return tx.AdvanceLoginFlow(ctx, f.ID, recoverPassword, recoverDone)
	})
	if errors.Is(err, store.ErrNotFound) { // used by a concurrent submission
		return h.flowFailed(w, r, errRecoverExpired)
	}
	if err != nil {
		return err
	}
	return h.signInAfterReset(w, r, a)
}

// newPasswordHash checks the submitted new password against the policy and
// hashes it. When it is refused it shows the form again (checklist states
// filled) and returns "".
func (h *Handler) newPasswordHash(w http.ResponseWriter, r *http.Request, a store.Account, d recoverPasswordPage) (string, error) {
	ctx := r.Context()
	l := loc(r)
	next := r.PostFormValue("new_password")
	confirm := r.PostFormValue("confirm_password")
	emails, err := h.DB.EmailsOf(ctx, a.ID)
	if err != nil {
		return "", err
	}
	v := h.Accounts.Policy.Check(next, account.Personal(a, emails))
	if next != confirm {
		v = append(v, account.Violation{Code: "match"})
	}
	if len(v) > 0 {
		return "", h.refusePassword(w, r, l, d, v)
	}
	hash, err := h.Accounts.Hasher.Hash(ctx, h.Accounts.Policy.Normalize(next))
	if err != nil {
		return "", busyOr(err)
	}
	return hash, nil
}

func (h *Handler) refusePassword(w http.ResponseWriter, r *http.Request, l i18n.Localizer, d recoverPasswordPage, v []account.Violation) error {
	d.Policy = h.Accounts.Policy.View(l, v, true)
	return h.App.Render(w, r, http.StatusUnprocessableEntity, "recover_password", web.Page{Title: "recover.password_title",
		Error: l.T("account.password_refused"), Data: d})
}

// resetPassword sets the new password in one transaction with claim (the
// link used, or the flow moved to "done"): every session and every pending
// reset or sign-in token of the account end, the event is audited and the
// owner is told at every verified address.
func (h *Handler) resetPassword(ctx context.Context, a store.Account, hash, method string, claim func(tx *store.DB) error) error {
	now := h.Now()
	return h.DB.InTx(ctx, func(tx *store.DB) error {
		if err := claim(tx); err != nil {
			return err
		}
		if err := tx.SetPassword(ctx, a.ID, hash, now); err != nil {
			return err
		}
		ended, err := tx.RevokeOtherSessions(ctx, a.ID, "", now)
		if err != nil {
			return err
		}
		// Applications and devices (OpenID Connect grants and tokens) end too.
		lang := web.Info(ctx).Lang
		devices, grants, err := account.EndDevices(ctx, tx, a.ID, "password_reset", lang, now)
		if err != nil {
			return err
		}
		if err := tx.EndTokens(ctx, a.ID, now, store.PurposeResetLink, store.PurposeResetCode,
			store.PurposeLoginLink, store.PurposeLoginCode); err != nil {
			return err
		}
		if err := h.Audit.Record(ctx, tx, store.AuditEvent{Type: "password.reset", AccountID: a.ID,
			Details: map[string]string{"method": method, "sessions_ended": fmt.Sprint(ended), "grants_ended": fmt.Sprint(grants)}}); err != nil {
			return err
		}
		// The email lists the devices signed out and how to reconnect them.
		return h.Notify.Send(ctx, tx, a, notify.PasswordChanged, lang,
			map[string]any{"DevicesReported": true, "DevicesEnded": devices})
	})
}

// signInAfterReset starts a session for the account in this browser (the
// person just proved they hold its address and chose its password) and
// lands on the account page.
func (h *Handler) signInAfterReset(w http.ResponseWriter, r *http.Request, a store.Account) error {
	ctx := r.Context()
	if cur := session.FromContext(ctx); cur != nil && cur.Account.ID != a.ID {
		// Someone else was signed in here: that session ends (the account's
		// own sessions all ended with the reset). The new cookie replaces its.
		if err := h.DB.RevokeSession(ctx, cur.Account.ID, cur.Session.ID, h.Now()); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	s, err := h.Sessions.Start(ctx, w, a.ID, "reset", false)
	if err != nil {
		return err
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.success", AccountID: a.ID,
		Details: map[string]string{"method": "reset", "remember": "false", "session_id": s.ID}})
	return web.Redirect(w, r, "/account?done=reset")
}
