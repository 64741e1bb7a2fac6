package login

// Sign-in by a link sent by email (setting self_service.login_link):
//
//	GET /login/password?req=R
//	     │ POST /login/link/send {req, remember}   (also "send again")
//	     ▼
//	GET /login/link/sent?req=R: where and when it left, that it may take a few
//	minutes, when another may be asked; a new link never ends the earlier ones
//
//	(mail) GET /login/link?token=T ── a button only: a mail scanner that
//	     │    fetches the link uses nothing; in another browser than the one
//	     │    that asked, a warning to continue only if it is you
//	     ▼
//	POST /login/link {token, remember} ── used once (the account's other sign-in
//	links end with it) ──▶ h.complete (method "link") ──▶ the flow's return_to
//
// Browser binding: step 1 stores in the flow's BrowserHash the SHA-256 of the
// browser's device cookie (campusid_device, set then when the browser has
// none; the same cookie serves the new-device notices). The link page
// compares it with the cookie of the browser that opens the link.
//
// A link lives its own 24 hours: the flow it was asked from (30 minutes) need
// not be live any more, its return_to is still honoured. If that flow has
// completed another way meanwhile, the link still signs in, through a new
// flow with the same return_to.

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"campusid/internal/account"
	"campusid/internal/i18n"
	"campusid/internal/notify"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// deviceCookieAge is the lifetime of the device cookie set at step 1 (as in seeDevice).
const deviceCookieAge = 2 * 365 * 24 * time.Hour

// loginBrowserHash is the SHA-256 of the browser's device cookie, or "".
func loginBrowserHash(r *http.Request) string {
	if c, err := r.Cookie(deviceCookie); err == nil && len(c.Value) >= 32 && len(c.Value) <= 100 {
		return session.HashToken(c.Value)
	}
	return ""
}

// bindLoginBrowser returns loginBrowserHash, giving the browser its device
// cookie first when it has none. Step 1 stores it in the flow.
func (h *Handler) bindLoginBrowser(w http.ResponseWriter, r *http.Request) string {
	if b := loginBrowserHash(r); b != "" {
		return b
	}
	token := session.NewToken()
	http.SetCookie(w, &http.Cookie{Name: deviceCookie, Value: token, Path: "/", MaxAge: int(deviceCookieAge.Seconds()),
		HttpOnly: true, Secure: h.Sessions.Secure, SameSite: http.SameSiteLaxMode})
	return session.HashToken(token)
}

// sameLoginBrowser reports whether r comes from the browser that started f.
func sameLoginBrowser(r *http.Request, f *store.LoginFlow) bool {
	b := loginBrowserHash(r)
	return b != "" && f.BrowserHash != "" && subtle.ConstantTimeCompare([]byte(b), []byte(f.BrowserHash)) == 1
}

type loginLinkData struct {
	Token        string
	Who          string // the address the link was sent to
	OtherBrowser string // the warning, when another browser asked for it
	Remember     bool
	Dead         bool
	LoginURL     string
}

func (h *Handler) sendLoginLink(w http.ResponseWriter, r *http.Request) error {
	if !h.LoginLink {
		return web.NotFound()
	}
	return h.sendWay(w, r, byLink)
}

func (h *Handler) showLoginLinkSent(w http.ResponseWriter, r *http.Request) error {
	if !h.LoginLink {
		return web.NotFound()
	}
	return h.showWay(w, r, byLink)
}

// loginLinkFlow returns the flow a link was asked from, live or not, or nil.
func (h *Handler) loginLinkFlow(r *http.Request, t store.EmailToken) (*store.LoginFlow, error) {
	if t.FlowID == "" {
		return nil, nil
	}
	f, err := h.DB.LoginFlowByID(r.Context(), t.FlowID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && f.AccountID != t.AccountID) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// deadLoginLink is the page of a link that is unknown, used, ended or expired.
func (h *Handler) deadLoginLink(w http.ResponseWriter, r *http.Request, t store.EmailToken, msg string) error {
	returnTo := ""
	if t.ID != "" && t.Purpose == store.PurposeLoginLink {
		if f, err := h.loginLinkFlow(r, t); err == nil && f != nil {
			returnTo = f.ReturnTo
		}
	}
	return h.App.Render(w, r, http.StatusGone, "login_link", web.Page{Title: "login_link.dead_title", Error: msg,
		Data: loginLinkData{Dead: true, LoginURL: loginURL(returnTo, nil)}})
}

// showLoginLink serves GET /login/link?token=T: it uses nothing.
func (h *Handler) showLoginLink(w http.ResponseWriter, r *http.Request) error {
	if !h.LoginLink {
		return web.NotFound()
	}
	web.NoReferrer(w)
	token := r.URL.Query().Get("token")
	t, err := h.Tokens.PeekLink(r.Context(), token, store.PurposeLoginLink)
	if errors.Is(err, store.ErrNotFound) {
		return h.deadLoginLink(w, r, t, "")
	}
	if err != nil {
		return err
	}
	f, err := h.loginLinkFlow(r, t)
	if err != nil {
		return err
	}
	l := i18n.Localizer{Lang: web.Info(r.Context()).Lang}
	d := loginLinkData{Token: token, Who: t.SentTo}
	if f != nil {
		d.Remember = f.Remember
	}
	if f == nil || !sameLoginBrowser(r, f) {
		device := l.T("account.device_unknown")
		if f != nil {
			if ua := readWayMarks(f).LinkUA; ua != "" {
				device = notify.Device(l, ua)
			}
		}
		d.OtherBrowser = l.T("login_link.other_browser", device, h.wayClock(l, t.CreatedAt))
	}
	return h.App.Render(w, r, http.StatusOK, "login_link", web.Page{Title: "login_link.title", Data: d})
}

// submitLoginLink serves POST /login/link {token, remember}: the link signs in
// the browser that posts it.
func (h *Handler) submitLoginLink(w http.ResponseWriter, r *http.Request) error {
	if !h.LoginLink {
		return web.NotFound()
	}
	web.NoReferrer(w)
	ctx := r.Context()
	token := r.PostFormValue("token")
	remember := r.PostFormValue("remember") == "on"
	l := i18n.Localizer{Lang: web.Info(ctx).Lang}
	now := h.Now()
	ip := web.Info(ctx).ClientIP

	// Links cannot be guessed (256 bits), but a client that keeps posting
	// dead ones is slowed down like one that guesses passwords.
	if wait, err := h.PerClient.Wait(ctx, ip, now); err != nil {
		return err
	} else if wait > 0 {
		h.count("throttled")
		secs := int(math.Ceil(wait.Seconds()))
		web.RetryAfter(w, wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.throttled",
			Details: map[string]string{"wait_seconds": fmt.Sprint(secs), "method": "link"}})
		return h.App.Render(w, r, http.StatusTooManyRequests, "login_link", web.Page{Title: "login_link.title",
			Error: l.T("login.too_many", l.Seconds(secs)), Data: loginLinkData{Token: token, Remember: remember}})
	}

	t, err := h.Tokens.RedeemLink(ctx, h.DB, token, store.PurposeLoginLink)
	if errors.Is(err, store.ErrNotFound) {
		h.count("dead_link")
		h.PerClient.Fail(ctx, ip, now)
		dead, _ := h.Tokens.PeekLink(ctx, token, store.PurposeLoginLink) // to find the flow, if any
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.link_failure", AccountID: dead.AccountID,
			Details: map[string]string{"reason": "dead"}})
		h.padFailure(ctx)
		return h.deadLoginLink(w, r, dead, "")
	}
	if err != nil {
		return err
	}
	a, err := h.DB.AccountByID(ctx, t.AccountID)
	if err != nil {
		return err
	}
	if problem := account.SignInProblem(a, now); problem != "" {
		h.count(problem)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.refused", AccountID: a.ID, Details: map[string]string{"reason": problem}})
		return h.App.Render(w, r, http.StatusForbidden, "login_link", web.Page{Title: "login_link.dead_title",
			Error: problemMessage(l, a, problem), Data: loginLinkData{Dead: true, LoginURL: loginURL("", nil)}})
	}
	f, err := h.loginLinkFlow(r, t)
	if err != nil {
		return err
	}
	if f == nil || f.State != StatePassword {
		nf := store.LoginFlow{ID: session.HashToken(session.NewToken()), AccountID: a.ID, Identifier: t.SentTo,
			State: StatePassword, CreatedAt: now, ExpiresAt: now.Add(h.FlowLifetime)}
		if f != nil {
			nf.ReturnTo, nf.BrowserHash = f.ReturnTo, f.BrowserHash
		}
		if err := h.DB.CreateLoginFlow(ctx, &nf); err != nil {
			return err
		}
		f = &nf
	}
	return h.complete(w, r, f, a, "link", remember)
}
