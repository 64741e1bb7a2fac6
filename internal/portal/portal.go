// Package portal is the self-service account page (/account): profile,
// addresses and their verification, password change, sessions.
package portal

import (
	"net/http"
	"net/url"
	"time"

	"campusid/internal/account"
	"campusid/internal/audit"
	"campusid/internal/i18n"
	"campusid/internal/notify"
	"campusid/internal/onetime"
	"campusid/internal/outbox"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/throttle"
	"campusid/internal/web"
)

// Handler serves the account pages.
type Handler struct {
	App            *web.App
	DB             *store.DB
	Accounts       *account.Service
	Sessions       *session.Manager
	Audit          *audit.Log
	Mailer         *outbox.Mailer
	PublicURL      string
	VerifyValidity time.Duration // lifetime of an address verification link
	ResendEvery    time.Duration // at most one message per purpose and account in this time
	PasswordTries  throttle.Backoff
	Now            func() time.Time
	Notify         *notify.Notifier
	Tokens         *onetime.Issuer
	// RevealUnknown says "no account uses this address" on /recover and
	// /whoami; by default both answer the same whether or not it exists.
	RevealUnknown       bool
	QuestionMaxFailures int
	QuestionLock        time.Duration
	AnswerTries         throttle.Backoff // wrong secret answers per client address, over every account
	// Wrong password reset codes per client address and per account.
	CodeGuessesClient  throttle.Backoff
	CodeGuessesAccount throttle.Backoff
}

// Register adds the routes.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("GET /account", h.signedIn(h.show))
	mux.Handle("POST /account/emails", h.signedIn(h.addEmail))
	mux.Handle("POST /account/emails/{id}/delete", h.signedIn(h.deleteEmail))
	mux.Handle("POST /account/emails/{id}/primary", h.signedIn(h.primaryEmail))
	mux.Handle("POST /account/emails/{id}/resend", h.signedIn(h.resendEmail))
	mux.Handle("POST /account/password", h.signedIn(h.changePassword))
	mux.Handle("POST /account/sessions/{id}/revoke", h.signedIn(h.revokeSession))
	mux.Handle("POST /account/sessions/revoke-others", h.signedIn(h.revokeOthers))
	mux.Handle("POST /account/apps/{client}/revoke", h.signedIn(h.revokeApp))
	mux.Handle("POST /account/devices/{id}/signout", h.signedIn(h.signOutDevice)) // devices.go
	mux.Handle("GET /verify", h.App.Handle(h.showVerify))
	mux.Handle("POST /verify", h.App.Handle(h.submitVerify))
	h.registerRecover(mux) // /recover, /recover/link, /recover/code, /recover/password, /whoami
	mux.Handle("POST /account/question", h.signedIn(h.setQuestion))
	mux.Handle("GET /recover/question", h.App.Handle(h.showQuestionRecover))
	mux.Handle("POST /recover/question", h.App.Handle(h.submitQuestionRecover))
	mux.Handle("GET /recover/question/answer", h.App.Handle(h.showQuestionAnswer))
	mux.Handle("POST /recover/question/answer", h.App.Handle(h.submitQuestionAnswer))
	mux.Handle("GET /recover/question/password", h.App.Handle(h.showQuestionPassword))
	mux.Handle("POST /recover/question/password", h.App.Handle(h.submitQuestionPassword))
}

type signedInFunc func(w http.ResponseWriter, r *http.Request, cur *session.Current) error

// signedIn sends people without a session to the sign-in page, back here after.
func (h *Handler) signedIn(fn signedInFunc) http.Handler {
	return h.App.Handle(func(w http.ResponseWriter, r *http.Request) error {
		cur := session.FromContext(r.Context())
		if cur == nil {
			back := "/account"
			if r.Method == http.MethodGet {
				back = r.URL.RequestURI()
			}
			return web.Redirect(w, r, "/login?return_to="+url.QueryEscape(back))
		}
		return fn(w, r, cur)
	})
}

// notices are the confirmations /account?done=X may show.
var notices = map[string]string{
	"password": "account.done_password", "email_added": "account.done_email_added",
	"email_removed": "account.done_email_removed", "primary": "account.done_primary",
	"resent": "account.done_resent", "session_ended": "account.done_session_ended",
	"others_ended": "account.done_others_ended",
	"app_revoked":  "account.done_app_revoked",
	"activated":    "activate.done", // the end of an activation (login/activate.go)
}

func done(w http.ResponseWriter, r *http.Request, what, anchor string) error {
	return web.Redirect(w, r, "/account?done="+what+"#"+anchor)
}

// localizer of the request.
func loc(r *http.Request) i18n.Localizer { return i18n.Localizer{Lang: web.Info(r.Context()).Lang} }
