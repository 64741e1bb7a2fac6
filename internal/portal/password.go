package portal

import (
	"errors"
	"net/http"

	"campusid/internal/account"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request, cur *session.Current) error {
	ctx := r.Context()
	l := loc(r)
	current := r.PostFormValue("current_password")
	next := r.PostFormValue("new_password")
	confirm := r.PostFormValue("confirm_password")
	others := r.PostFormValue("signout_others") == "on"
	devices := r.PostFormValue("signout_devices") == "on"
	d := accountData{SignOutOthers: others, SignOutDevices: devices}
	again := func(status int, msg string, v []account.Violation, submitted bool) error {
		d.PasswordError = msg
		d.Policy = h.Accounts.Policy.View(l, v, submitted)
		return h.render(w, r, cur, status, web.Page{}, d)
	}
	now := h.Now()
	if wait, err := h.PasswordTries.Wait(ctx, cur.Account.ID, now); err != nil {
		return err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		return again(http.StatusTooManyRequests, l.T("account.password_wait", l.WaitSeconds(wait)), nil, false)
	}
	ok, err := h.Accounts.CheckPassword(ctx, cur.Account, current)
	if err != nil {
		return busyOr(err)
	}
	if !ok {
		h.PasswordTries.Fail(ctx, cur.Account.ID, now)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "password.change_failure", AccountID: cur.Account.ID,
			Details: map[string]string{"reason": "current_password"}})
		return again(http.StatusUnprocessableEntity, l.T("account.current_wrong"), nil, false)
	}
	h.PasswordTries.Reset(ctx, cur.Account.ID)
	emails, err := h.DB.EmailsOf(ctx, cur.Account.ID)
	if err != nil {
		return err
	}
	v := h.Accounts.Policy.Check(next, account.Personal(cur.Account, emails))
	if next != confirm {
		v = append(v, account.Violation{Code: "match"})
	}
	if len(v) > 0 {
		return again(http.StatusUnprocessableEntity, l.T("account.password_refused"), v, true)
	}
	// Other sessions end when asked (recommended); connected devices and
	// applications only when asked too: the person knows the password, the
	// devices did not leak it (a reset, by contrast, ends them all).
	_, err = h.Accounts.ChangePassword(ctx, account.PasswordChange{AccountID: cur.Account.ID, Password: next, Actor: "self",
		KeepSession: cur.Session.ID, EndSessions: others, EndDevices: devices})
	var pe *account.PolicyError
	if errors.As(err, &pe) {
		return again(http.StatusUnprocessableEntity, l.T("account.password_refused"), pe.Violations, true)
	}
	if err != nil {
		return busyOr(err)
	}
	return done(w, r, "password", "password")
}

func busyOr(err error) error {
	if errors.Is(err, account.ErrBusy) {
		return web.Busy(err)
	}
	return err
}
