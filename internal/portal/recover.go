package portal

// Password recovery by email (/recover) and the identifier reminder
// (/whoami, in whoami.go).
//
// By link:
//
//	GET /recover ── POST {email, method=link} ──▶ same "sent" page whether or not
//	     │                                         the address is an account's
//	     ▼ (a verified address of an active account)
//	mail with /recover/link?token=T (reset_link_validity, single use)
//	GET /recover/link?token=T ── shows the new-password form, uses nothing
//	POST /recover/link {token, password} ── one transaction: the link is used
//	     (and every other reset link of the account ends), the password set,
//	     every session and reset or sign-in token ended, the owner notified
//	     ──▶ signed in, /account?done=reset
//
// By code, a flow (store.LoginFlow, Purpose "recover") bound to the browser
// by the campusid_recover cookie:
//
//	POST /recover {email, method=code} ──▶ flow in state email_code ──▶ /recover/code?flow=R
//	email_code ── POST /recover/code {code} ── wrong: same page; 5 wrong: the code is dead
//	      │        POST /recover/code/resend: a new code, the old one still works
//	      ▼ right
//	email_password ── POST /recover/password {password} ──▶ email_done, as above
//
// An unknown or unverified address, a temporary, provisioned or disabled
// account get the same pages and the same flow, but no code: the flow is
// "silent" (no account in it) and counts tries and expiry as a real code
// would, so every code fails exactly as a wrong one does. Temporary and
// provisioned accounts get a message saying why self-service reset is not
// for them (reset_unavailable); only RevealUnknown says it on the page.
//
// Limits: one recovery message per address (whatever it is) and per
// account and purpose every ResendEvery; messages per client address
// (onetime's PerClient, counted whether or not anything is sent); wrong
// codes per client address and per account (CodeGuessesClient,
// CodeGuessesAccount), on top of the code's own 5 tries.
//
// Decisions: a provisioned account (no password yet) is pointed to
// activation rather than reset, which would skip the activation steps; a
// disabled account gets nothing. An administrator's `campusid user
// send-reset` (SendAdminReset) reaches any active account, temporary ones
// included; its code flow is bound to no browser, the page's address being
// given to the person by the administrator.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"campusid/internal/i18n"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// Recovery flow states (prefixed: the secret question's flows share the purpose "recover").
const (
	recoverCode     = "email_code"
	recoverPassword = "email_password"
	recoverDone     = "email_done"
)

// recoverFlowLifetime bounds a recovery by code from request to new password.
const recoverFlowLifetime = 30 * time.Minute

// recoverCookie binds a recovery flow to the browser that asked for it.
const recoverCookie = "campusid_recover"

// Mail kinds that are not tokens (their outbox purpose is the kind).
const (
	mailResetUnavailable = "reset_unavailable"
	mailWhoami           = "whoami"
)

func init() {
	notices["reset"] = "recover.done"
}

func (h *Handler) registerRecover(mux *http.ServeMux) {
	mux.Handle("GET /recover", h.App.Handle(h.showRecover))
	mux.Handle("POST /recover", h.App.Handle(h.submitRecover))
	mux.Handle("GET /recover/link", h.App.Handle(h.showResetLink))
	mux.Handle("POST /recover/link", h.App.Handle(h.submitResetLink))
	mux.Handle("GET /recover/code", h.App.Handle(h.showRecoverCode))
	mux.Handle("POST /recover/code", h.App.Handle(h.submitRecoverCode))
	mux.Handle("POST /recover/code/resend", h.App.Handle(h.resendRecoverCode))
	mux.Handle("GET /recover/password", h.App.Handle(h.showRecoverPassword))
	mux.Handle("POST /recover/password", h.App.Handle(h.submitRecoverPassword))
	mux.Handle("GET /whoami", h.App.Handle(h.showWhoami))
	mux.Handle("POST /whoami", h.App.Handle(h.submitWhoami))
}

// recoverData is the JSON of a recovery flow's Data.
type recoverData struct {
	EmailID string `json:"email_id,omitempty"`
	SentAt  int64  `json:"sent_at"` // Unix ms of the latest code asked for
	// A silent flow (no account) acts out a code: its wrong tries and end.
	Tries int   `json:"tries,omitempty"`
	Until int64 `json:"until,omitempty"`
}

func readRecoverData(f store.LoginFlow) recoverData {
	var d recoverData
	json.Unmarshal([]byte(f.Data), &d)
	return d
}

func (d recoverData) encode() string {
	b, _ := json.Marshal(d)
	return string(b)
}

// browserBinding returns the hash of the browser's recovery cookie,
// setting a new cookie when it has none.
func (h *Handler) browserBinding(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(recoverCookie); err == nil && len(c.Value) >= 32 && len(c.Value) <= 100 {
		return session.HashToken(c.Value)
	}
	v := session.NewToken()
	http.SetCookie(w, &http.Cookie{Name: recoverCookie, Value: v, Path: "/recover", HttpOnly: true,
		Secure: h.Sessions.Secure, SameSite: http.SameSiteLaxMode})
	return session.HashToken(v)
}

// errRecoverExpired: the flow reference is unknown, done or past its end.
var errRecoverExpired = errors.New("portal: recovery flow expired")

// recoverFlow loads the flow of reference ref in state, checking it is a
// live recovery flow of this browser. Flows made by an administrator (no
// binding) work in any browser that has the reference.
func (h *Handler) recoverFlow(r *http.Request, ref, state string) (store.LoginFlow, error) {
	if ref == "" || len(ref) > 100 {
		return store.LoginFlow{}, errRecoverExpired
	}
	f, err := h.DB.LoginFlowByID(r.Context(), session.HashToken(ref))
	if errors.Is(err, store.ErrNotFound) {
		return f, errRecoverExpired
	}
	if err != nil {
		return f, err
	}
	if f.Purpose != "recover" || f.State != state || !h.Now().Before(f.ExpiresAt) {
		return f, errRecoverExpired
	}
	if f.BrowserHash != "" {
		c, err := r.Cookie(recoverCookie)
		if err != nil || session.HashToken(c.Value) != f.BrowserHash {
			return f, &web.Error{Status: http.StatusForbidden, Key: "recover.other_browser"}
		}
	}
	return f, nil
}

// flowFailed answers a dead or foreign flow: back to /recover with a notice.
func (h *Handler) flowFailed(w http.ResponseWriter, r *http.Request, err error) error {
	if errors.Is(err, errRecoverExpired) {
		return web.Redirect(w, r, "/recover?expired=1")
	}
	return err
}

func newRef() string            { return session.NewToken() }
func hashRef(ref string) string { return session.HashToken(ref) }

// addressWait says when the last message of kind ("recover", "whoami") was
// asked for addr, whether or not an account uses it, and how long before
// another may be. Keyed on the address's hash, it behaves the same for
// every address, so it reveals nothing.
func (h *Handler) addressWait(ctx context.Context, kind, addr string) (time.Time, time.Duration, error) {
	now := h.Now()
	t, err := h.DB.GetThrottle(ctx, kind+":to:"+session.HashToken(addr), now, h.ResendEvery)
	if err != nil || t.Count == 0 {
		return time.Time{}, 0, err
	}
	return t.LastAt, max(t.LastAt.Add(h.ResendEvery).Sub(now), 0), nil
}

// asked records a request of kind for addr from the client: the address's
// resend interval starts, and the client's count of messages grows (also
// when nothing is sent, so the limits do not tell either).
func (h *Handler) asked(ctx context.Context, kind, addr string) error {
	now := h.Now()
	if _, err := h.DB.HitThrottle(ctx, kind+":to:"+session.HashToken(addr), now, h.ResendEvery); err != nil {
		return err
	}
	if ip := web.Info(ctx).ClientIP; ip != "" {
		return h.Tokens.PerClient.Fail(ctx, ip, now)
	}
	return nil
}

// clientWait is how long the client address must wait before asking for
// another message.
func (h *Handler) clientWait(ctx context.Context) (time.Duration, error) {
	ip := web.Info(ctx).ClientIP
	if ip == "" {
		return 0, nil
	}
	return h.Tokens.ClientWait(ctx, ip)
}

// waitText says when a new message may be asked: "à partir de 14:05 (dans 45 secondes)".
func waitText(l i18n.Localizer, now time.Time, wait time.Duration) string {
	return l.T("recover.when", web.ClockTimeUp(now.Add(wait)), l.WaitSeconds(wait))
}

// lookupAddress finds the account of a verified address and that address's
// record; ErrNotFound when no account has it verified.
func (h *Handler) lookupAddress(ctx context.Context, addr string) (store.Account, store.Email, error) {
	a, err := h.DB.AccountByLogin(ctx, addr)
	if err != nil {
		return a, store.Email{}, err
	}
	emails, err := h.DB.EmailsOf(ctx, a.ID)
	if err != nil {
		return a, store.Email{}, err
	}
	for _, e := range emails {
		if e.Address == addr && e.VerifiedAt != nil {
			return a, e, nil
		}
	}
	return a, store.Email{}, store.ErrNotFound
}

// recoverProblem says why self-service reset is not for the account ("" when it is).
func recoverProblem(a store.Account) string {
	switch {
	case a.State == store.StateDisabled:
		return "disabled"
	case a.Kind == store.KindTemporary:
		return "temporary"
	case a.State == store.StateProvisioned || a.PasswordHash == "":
		return "provisioned"
	}
	return ""
}
