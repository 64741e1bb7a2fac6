package login

import (
	"errors"
	"math"
	"net/http"
	"strings"

	"campusid/internal/account"
	"campusid/internal/i18n"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

type identifyData struct {
	Login    string
	ReturnTo string
	App      string // where the sign-in leads (Handler.Destination)
}

func (h *Handler) showIdentify(w http.ResponseWriter, r *http.Request) error {
	returnTo := safeReturn(r.URL.Query().Get("return_to"))
	// reauth=1 asks for a sign-in even with a live session (an application's
	// prompt=login or max_age, "use another account"): the new session
	// replaces it when the sign-in completes.
	reauth := r.URL.Query().Get("reauth") == "1"
	if session.FromContext(r.Context()) != nil && !reauth {
		return web.Redirect(w, r, orAccount(returnTo))
	}
	p := web.Page{Title: "login.title", Data: identifyData{Login: r.URL.Query().Get("login"), ReturnTo: returnTo,
		App: h.destination(r.Context(), returnTo)}}
	switch {
	case reauth && session.FromContext(r.Context()) != nil:
		p.Notice = "login.reauth"
	case r.URL.Query().Has("logged_out"):
		p.Notice = "logout.done"
	case r.URL.Query().Has("expired"):
		p.Notice = "login.flow_expired"
	}
	return h.App.Render(w, r, http.StatusOK, "login", p)
}

func (h *Handler) submitIdentify(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	login := strings.TrimSpace(r.PostFormValue("login"))
	returnTo := safeReturn(r.PostFormValue("return_to"))
	l := i18n.Localizer{Lang: web.Info(ctx).Lang}
	again := func(status int, msg string) error {
		return h.App.Render(w, r, status, "login", web.Page{Title: "login.title", Error: msg,
			Data: identifyData{Login: login, ReturnTo: returnTo, App: h.destination(r.Context(), returnTo)}})
	}
	if login == "" || len(login) > 320 {
		return again(http.StatusUnprocessableEntity, l.T("login.login_required"))
	}
	now := h.Now()
	ip := web.Info(ctx).ClientIP
	// Probing which addresses exist is slowed down per client address.
	if wait, err := h.Lookups.Wait(ctx, ip, now); err != nil {
		return err
	} else if wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		web.RetryAfter(w, wait)
		return again(http.StatusTooManyRequests, l.T("login.too_many", l.Seconds(secs)))
	}
	a, err := h.DB.AccountByLogin(ctx, login)
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.count("unknown")
		h.Lookups.Fail(ctx, ip, now)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.unknown", Details: map[string]string{"login": truncate(login, 100)}})
		if h.RevealUnknown {
			return again(http.StatusUnprocessableEntity, l.T("login.unknown"))
		}
		a = store.Account{} // ask for a password anyway; it will never match
	case err != nil:
		return err
	}
	if a.ID != "" {
		if problem := account.SignInProblem(a, now); problem == "provisioned" {
			// Not activated yet: the activation leads the way (activate.go).
			return h.startActivation(w, r, a, login, returnTo, "login")
		} else if problem != "" {
			h.count(problem)
			h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.refused", AccountID: a.ID, Details: map[string]string{"reason": problem}})
			return again(http.StatusForbidden, problemMessage(l, a, problem))
		}
	}
	ref := session.NewToken()
	f := store.LoginFlow{ID: session.HashToken(ref), AccountID: a.ID, Identifier: login, ReturnTo: returnTo,
		State: StatePassword, CreatedAt: now, ExpiresAt: now.Add(h.FlowLifetime)}
	f.BrowserHash = h.bindLoginBrowser(w, r) // see link.go
	if err := h.DB.CreateLoginFlow(ctx, &f); err != nil {
		return err
	}
	return web.Redirect(w, r, "/login/password?req="+ref)
}

// problemMessage says why the account may not sign in.
func problemMessage(l i18n.Localizer, a store.Account, problem string) string {
	if problem == "expired" {
		return l.T("login.expired", web.LastDay(*a.ExpiresAt))
	}
	return l.T("login." + problem)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
