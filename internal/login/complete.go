package login

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"campusid/internal/notify"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// deviceCookie marks a browser, so a sign-in from a new one can be told to
// the account's owner. It carries no authority.
const deviceCookie = "campusid_device"

// complete ends a flow whose person has proved who they are (by password,
// code, link...): the flow is used once, the browser's session is renewed
// (same account) or replaced (another one), the owner is told about a new device, and the
// browser goes back where it came from.
func (h *Handler) complete(w http.ResponseWriter, r *http.Request, f *store.LoginFlow, a store.Account, method string, remember bool) error {
	ctx := r.Context()
	// A reference signs in once, even when two submissions race.
	if err := h.DB.AdvanceLoginFlow(ctx, f.ID, f.State, StateDone); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return web.Redirect(w, r, loginURL("", url.Values{"expired": {"1"}}))
		}
		return err
	}
	h.PerAccount.Reset(ctx, a.ID)
	var s store.Session
	var err error
	if cur := session.FromContext(ctx); cur != nil && cur.Account.ID == a.ID {
		// The same person again (renew, prompt=login): the session goes on
		// with a new token, and the applications signed in through it stay.
		s, err = h.Sessions.Reauthenticate(ctx, w, cur, method, remember)
	} else {
		if cur != nil {
			h.Sessions.End(ctx, w, cur) // someone else: the previous session ends (no session fixation either)
		}
		s, err = h.Sessions.Start(ctx, w, a.ID, method, remember)
	}
	if err != nil {
		return err
	}
	h.count("success")
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.success", AccountID: a.ID,
		Details: map[string]string{"method": method, "remember": fmt.Sprint(remember), "session_id": s.ID}})
	if err := h.seeDevice(w, r, a); err != nil {
		h.App.Log.Error("new device check", "account_id", a.ID, "error", err.Error())
	}
	return web.Redirect(w, r, orAccount(f.ReturnTo))
}

// seeDevice records the browser for the account and, when it is a new one
// for an account that had others, notifies the owner.
func (h *Handler) seeDevice(w http.ResponseWriter, r *http.Request, a store.Account) error {
	token := ""
	if c, err := r.Cookie(deviceCookie); err == nil && len(c.Value) >= 32 && len(c.Value) <= 100 {
		token = c.Value
	} else {
		token = session.NewToken()
		http.SetCookie(w, &http.Cookie{Name: deviceCookie, Value: token, Path: "/", MaxAge: int((2 * 365 * 24 * time.Hour).Seconds()),
			HttpOnly: true, Secure: h.Sessions.Secure, SameSite: http.SameSiteLaxMode})
	}
	sum := sha256.Sum256([]byte(token))
	ctx := r.Context()
	isNew, hadOthers, err := h.DB.SeeDevice(ctx, a.ID, hex.EncodeToString(sum[:]), h.Now())
	if err != nil || !isNew || !hadOthers || !h.NotifyNewDevice || h.Notify == nil {
		return err
	}
	return h.Notify.Send(ctx, h.DB, a, notify.NewDevice, web.Info(ctx).Lang, nil)
}
