package login

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"

	"campusid/internal/account"
	"campusid/internal/i18n"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

type passwordData struct {
	Req      string
	Name     string // who is signing in
	Login    string // what they typed
	Remember bool
	NotYou   string // link back to step 1
	Code     bool   // offer "email me a code" (code.go)
	Link     bool   // offer "email me a sign-in link" (link.go)
	App      string // where the sign-in leads (Handler.Destination)
}

// flow returns the live flow of the request's reference, or nil.
func (h *Handler) flow(r *http.Request, ref string) (*store.LoginFlow, error) {
	if ref == "" || len(ref) > 100 {
		return nil, nil
	}
	f, err := h.DB.LoginFlowByID(r.Context(), session.HashToken(ref))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if f.State != StatePassword || !h.Now().Before(f.ExpiresAt) {
		return nil, nil
	}
	return &f, nil
}

func (h *Handler) passwordPage(r *http.Request, f *store.LoginFlow, ref string, remember bool) (passwordData, error) {
	d := passwordData{Req: ref, Login: f.Identifier, Remember: remember,
		NotYou: loginURL(f.ReturnTo, url.Values{"login": {""}}), Code: h.LoginCode, Link: h.LoginLink,
		App: h.destination(r.Context(), f.ReturnTo)}
	d.Name = f.Identifier
	// With unknown accounts hidden, the page must not tell a known
	// identifier from an unknown one: it shows what was typed, never the name.
	if f.AccountID != "" && h.RevealUnknown {
		a, err := h.DB.AccountByID(r.Context(), f.AccountID)
		if err != nil {
			return d, err
		}
		d.Name = a.DisplayName
	}
	return d, nil
}

func (h *Handler) showPassword(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w)
	ref := r.URL.Query().Get("req")
	f, err := h.flow(r, ref)
	if err != nil {
		return err
	}
	if f == nil {
		return web.Redirect(w, r, loginURL("", url.Values{"expired": {"1"}}))
	}
	d, err := h.passwordPage(r, f, ref, false)
	if err != nil {
		return err
	}
	return h.App.Render(w, r, http.StatusOK, "login_password", web.Page{Title: "login.password_title", Data: d})
}

func (h *Handler) submitPassword(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w)
	ctx := r.Context()
	ref := r.PostFormValue("req")
	remember := r.PostFormValue("remember") == "on"
	f, err := h.flow(r, ref)
	if err != nil {
		return err
	}
	if f == nil {
		return web.Redirect(w, r, loginURL("", url.Values{"expired": {"1"}}))
	}
	l := i18n.Localizer{Lang: web.Info(ctx).Lang}
	d, err := h.passwordPage(r, f, ref, remember)
	if err != nil {
		return err
	}
	again := func(status int, msg string) error {
		return h.App.Render(w, r, status, "login_password", web.Page{Title: "login.password_title", Error: msg, Data: d})
	}
	now := h.Now()
	ip := web.Info(ctx).ClientIP

	// An identifier that matches no account is slowed down like an account,
	// so the delays do not tell which accounts exist.
	acctKey := f.AccountID
	if acctKey == "" {
		acctKey = "unknown:" + strings.ToLower(f.Identifier)
	}

	// Refuse early, without hashing, while a delay is running.
	waitAcct, err := h.PerAccount.Wait(ctx, acctKey, now)
	if err != nil {
		return err
	}
	waitIP, err := h.PerClient.Wait(ctx, ip, now)
	if err != nil {
		return err
	}
	if wait := max(waitAcct, waitIP); wait > 0 {
		h.count("throttled")
		secs := int(math.Ceil(wait.Seconds()))
		web.RetryAfter(w, wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.throttled", AccountID: f.AccountID,
			Details: map[string]string{"wait_seconds": fmt.Sprint(secs)}})
		return again(http.StatusTooManyRequests, l.T("login.too_many", l.Seconds(secs)))
	}

	password := r.PostFormValue("password")
	var a store.Account
	if f.AccountID != "" {
		if a, err = h.DB.AccountByID(ctx, f.AccountID); err != nil {
			return err
		}
	}
	ok := false
	if len(password) > 0 && len(password) <= 1024 {
		ok, err = h.Accounts.CheckPassword(ctx, a, password)
	} else {
		err = h.Accounts.Hasher.DummyVerify(ctx, password)
	}
	if err != nil {
		h.count("busy")
		return busy(err)
	}
	if ok {
		// The account may have been disabled or have ended since the first
		// step; the right password earns the real reason.
		if problem := account.SignInProblem(a, now); problem != "" {
			h.count(problem)
			h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.refused", AccountID: a.ID, Details: map[string]string{"reason": problem}})
			return again(http.StatusForbidden, problemMessage(l, a, problem))
		}
	}
	if !ok {
		h.count("wrong_password")
		h.PerAccount.Fail(ctx, acctKey, now)
		h.PerClient.Fail(ctx, ip, now)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.failure", AccountID: f.AccountID,
			Details: map[string]string{"reason": "password"}})
		h.padFailure(ctx)
		msg := l.T("login.wrong_password")
		if !h.RevealUnknown {
			msg = l.T("login.wrong_credentials")
		}
		return again(http.StatusUnauthorized, msg)
	}

	return h.complete(w, r, f, a, "pwd", remember)
}
