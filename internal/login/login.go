// Package login is the interactive sign-in, identifier first:
//
//	GET /login ──(session live)──────────────────────────▶ return_to
//	     │ POST /login {login}
//	     ▼
//	identify ──unknown / disabled / expired──▶ same page, message
//	     │ ──provisioned──▶ activation (activate.go)
//	     │ flow created (state "password"), browser holds its reference
//	     ▼
//	GET /login/password?req=R ── POST {password, remember} ──wrong──▶ same page (delays grow)
//	     │ right
//	     ▼
//	state "done" (a reference is used once), session started ──▶ return_to
//
// The flow row keeps who is signing in and where to go back; the browser
// only carries a random reference whose SHA-256 is the row's id.
package login

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"campusid/internal/account"
	"campusid/internal/audit"
	"campusid/internal/notify"
	"campusid/internal/onetime"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/throttle"
	"campusid/internal/web"
)

// Flow states.
const (
	StatePassword = "password"
	StateDone     = "done"
)

// Handler serves the sign-in and sign-out pages.
type Handler struct {
	App             *web.App
	DB              *store.DB
	Accounts        *account.Service
	Sessions        *session.Manager
	Audit           *audit.Log
	RevealUnknown   bool
	FlowLifetime    time.Duration
	PerAccount      throttle.Backoff
	PerClient       throttle.Backoff
	Lookups         throttle.Backoff // unknown identifiers per client address
	MinFailureTime  time.Duration
	Now             func() time.Time
	SignIns         *prometheus.CounterVec // by result
	Notify          *notify.Notifier
	NotifyNewDevice bool
	Tokens          *onetime.Issuer
	LoginCode       bool // offer "email me a code"
	LoginLink       bool // offer "email me a sign-in link"
	// Activation steps beyond the proof and the password.
	ActivationQuestion      bool // choose a secret question
	ActivationPersonalEmail bool // add a personal address, verified by a code
	// Destination names the application a return_to leads to ("" when it
	// leads to campusid itself): the sign-in pages say where the person is
	// going, so that an unexpected application stands out.
	Destination func(ctx context.Context, returnTo string) string
}

func (h *Handler) destination(ctx context.Context, returnTo string) string {
	if h.Destination == nil || returnTo == "" {
		return ""
	}
	return h.Destination(ctx, returnTo)
}

// NewSignInCounter is the sign-ins metric, registered in reg.
func NewSignInCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "campusid_sign_ins_total", Help: "Password sign-in attempts by result.",
	}, []string{"result"})
	reg.MustRegister(c)
	return c
}

// Register adds the routes.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("GET /login", h.App.Handle(h.showIdentify))
	mux.Handle("POST /login", h.App.Handle(h.submitIdentify))
	mux.Handle("GET /login/password", h.App.Handle(h.showPassword))
	mux.Handle("POST /login/password", h.App.Handle(h.submitPassword))
	mux.Handle("POST /login/code/send", h.App.Handle(h.sendLoginCode))
	mux.Handle("GET /login/code", h.App.Handle(h.showLoginCode))
	mux.Handle("POST /login/code", h.App.Handle(h.submitLoginCode))
	mux.Handle("POST /login/link/send", h.App.Handle(h.sendLoginLink))
	mux.Handle("GET /login/link/sent", h.App.Handle(h.showLoginLinkSent))
	mux.Handle("GET /login/link", h.App.Handle(h.showLoginLink))
	mux.Handle("POST /login/link", h.App.Handle(h.submitLoginLink))
	h.registerActivation(mux) // /activate... (activate.go)
	mux.Handle("GET /logout", h.App.Handle(h.showLogout))
	mux.Handle("POST /logout", h.App.Handle(h.submitLogout))
}

func (h *Handler) count(result string) {
	if h.SignIns != nil {
		h.SignIns.WithLabelValues(result).Inc()
	}
}

// safeReturn keeps return_to only when it is a path on this server.
func safeReturn(s string) string {
	if web.LocalPath(s) {
		return s
	}
	return ""
}

func orAccount(s string) string {
	if s == "" {
		return "/account"
	}
	return s
}

// loginURL is the first step, keeping where to go back.
func loginURL(returnTo string, extra url.Values) string {
	q := url.Values{}
	for k, v := range extra {
		q[k] = v
	}
	if returnTo != "" {
		q.Set("return_to", returnTo)
	}
	if len(q) == 0 {
		return "/login"
	}
	return "/login?" + q.Encode()
}

// padFailure makes a failed attempt answer no sooner than MinFailureTime
// after the request began, so timing does not tell which check failed.
func (h *Handler) padFailure(ctx context.Context) {
	wait := h.MinFailureTime - time.Since(web.Info(ctx).Start)
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func busy(err error) error {
	if errors.Is(err, account.ErrBusy) {
		return web.Busy(err)
	}
	return err
}
