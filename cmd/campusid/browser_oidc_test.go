package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"campusid/internal/browsertest"
)

// TestBrowserOIDCConsentFormPostLogout is an application signing a person
// in, in headless Chromium: sign-in, the "Autoriser l'accès" page, the
// form_post page that the small script submits to the application's origin
// (its per-page CSP allows it: no violation in the console), then the
// application's logout with the confirmation page.
func TestBrowserOIDCConsentFormPostLogout(t *testing.T) {
	t.Parallel()
	n := browserNode(t)
	var (
		mu  sync.Mutex
		got url.Values
	)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/cb" {
			r.ParseForm()
			mu.Lock()
			got = r.Form
			mu.Unlock()
			msg := "code reçu par " + r.Method
			if e := r.Form.Get("error"); e != "" {
				msg = "erreur " + e
			}
			w.Write([]byte(`<!doctype html><html lang="fr"><title>App</title><p>Application : ` + msg + `</p></html>`))
			return
		}
		w.Write([]byte(`<!doctype html><html lang="fr"><title>App</title><p>Application : au revoir</p></html>`))
	}))
	t.Cleanup(app.Close)
	secret := n.app("--id", "moodle", "--name", "Moodle de test", "--redirect-uri", app.URL+"/cb", "--post-logout-uri", app.URL+"/bye")
	conf := n.oauthConfig("moodle", secret, "openid", "profile", "email", "offline_access")
	conf.RedirectURL = app.URL + "/cb"

	b := browsertest.New(t, browsertest.WithLang("fr-FR"))
	b.Go(conf.AuthCodeURL("st-browser", oauthParam("response_mode", "form_post"), oauthParam("nonce", "nb")))
	b.WaitText(frMsg.T("login.login_label"))
	b.Fill(`input[autocomplete="username"]`, bPrimary)
	b.Click(`form[action="/login"] button[type="submit"]`)
	b.WaitText(frMsg.T("login.password_label"))
	b.Fill(`input[autocomplete="current-password"]`, bPassword)
	b.Click(`form[action="/login/password"] button[type="submit"]`)

	b.WaitText(frMsg.T("oidc.consent.title"))
	for _, s := range []string{frMsg.T("oidc.consent.intro", "Moodle de test"), bName, bPrimary, frMsg.T("oidc.scope.email"),
		frMsg.T("oidc.scope.offline_access"), frMsg.T("oidc.consent.not_you")} {
		if !b.HasText(s) {
			t.Errorf("consent page lacks %q", s)
		}
	}
	reviewPage(t, b, "fr", "/oidc/consent")
	b.Screenshot("consent")

	b.Click(`button[name=decision][value=allow]`)
	b.WaitText("Application : code reçu par POST")
	received := func(what, state string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if got.Get("state") != state || (got.Get("code") == "" && got.Get("error") == "") {
			t.Errorf("%s: the application received %v", what, got)
		}
	}
	received("form_post", "st-browser")
	noConsoleErrors(t, b, "sign-in, consent and form_post")

	// Query mode after a fresh sign-in (prompt=login): the chain of redirects
	// that follows the password form ends at the application.
	b.Go(conf.AuthCodeURL("st-query", oauthParam("prompt", "login")))
	b.WaitText(frMsg.T("login.login_label"))
	b.Fill(`input[autocomplete="username"]`, bPrimary)
	b.Click(`form[action="/login"] button[type="submit"]`)
	b.WaitText(frMsg.T("login.password_label"))
	b.Fill(`input[autocomplete="current-password"]`, bPassword)
	b.Click(`form[action="/login/password"] button[type="submit"]`)
	b.WaitText("Application : code reçu par GET")
	received("query mode after the password form", "st-query")
	noConsoleErrors(t, b, "query mode after a sign-in")

	// Refusing on the consent page: access_denied reaches the application.
	b.Go(conf.AuthCodeURL("st-deny", oauthParam("prompt", "consent")))
	b.WaitText(frMsg.T("oidc.consent.title"))
	b.Click(`button[name=decision][value=deny]`)
	b.WaitText("Application : erreur access_denied")
	received("refusal", "st-deny")
	noConsoleErrors(t, b, "refusal")

	// RP-initiated logout, confirmed by the person.
	b.Go(n.URL + "/oauth2/end_session?" + url.Values{"client_id": {"moodle"}, "post_logout_redirect_uri": {app.URL + "/bye"}}.Encode())
	b.WaitText(frMsg.T("oidc.logout.text_app", "Moodle de test"))
	reviewPage(t, b, "fr", "/oidc/logout")
	b.Screenshot("logout-confirmation")
	b.Click(`form[action="/oidc/logout"] button[type="submit"]`)
	b.WaitText("Application : au revoir")
	b.Go(n.URL + "/account")
	b.WaitText(frMsg.T("login.login_label"))
	if !strings.Contains(b.URL(), "/login") {
		t.Errorf("after the logout: %s, want the sign-in page", b.URL())
	}
	noConsoleErrors(t, b, "logout")
}

func oauthParam(k, v string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam(k, v) }
