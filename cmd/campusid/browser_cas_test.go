package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"campusid/internal/browsertest"
)

// TestBrowserCASSingleSignOn is single sign-on across two CAS applications,
// in headless Chromium: the first application (protected by the go-cas
// client, see cas_client_test.go) sends the browser to campusid's sign-in
// page, the person signs in with the identifier then the password page, and
// lands back on the application, which greets them by name. Opening the
// second application then shows the person at once: the browser goes
// through /cas/login and back, and campusid's sign-in page is never served.
func TestBrowserCASSingleSignOn(t *testing.T) {
	t.Parallel()
	n := browserNode(t)
	ent := newCASClientApp(t, n, "ent", "ENT")
	wiki := newCASClientApp(t, n, "wiki", "Wiki")

	b := browsertest.New(t, browsertest.WithLang("fr-FR"))
	b.Go(ent.URL)
	b.WaitText(frMsg.T("login.login_label"))
	if u := b.URL(); !strings.HasPrefix(u, n.URL+"/login?") {
		t.Fatalf("ENT without a session: at %s, want campusid's sign-in page", u)
	}
	b.Screenshot("sign-in")
	b.Fill(`input[autocomplete="username"]`, bPrimary)
	b.Click(`form[action="/login"] button[type="submit"]`)
	b.WaitText(frMsg.T("login.password_label"))
	b.Fill(`input[autocomplete="current-password"]`, bPassword)
	b.Click(`form[action="/login/password"] button[type="submit"]`)

	b.WaitText("Application ENT : Bonjour " + bName)
	wantTicketLanding(t, "ENT after the sign-in", ent, b.URL())
	for _, s := range []string{"uid=" + bIdent, "mail=" + bPrimary} {
		if !b.HasText(s) {
			t.Errorf("ENT does not show the attribute %q", s)
		}
	}
	b.Screenshot("ent")
	noConsoleErrors(t, b, "sign-in through ENT")
	if reqs, _, _ := ent.snapshot(); len(reqs) != 2 || reqs[0] != "GET /ent/" || !strings.HasPrefix(reqs[1], "GET /ent/?ticket=ST-") {
		t.Errorf("ENT served %q, want its page without then with a ticket", reqs)
	}

	// The second application: no sign-in page, the person at once.
	pages, signIns := loginPageViews(t, n), signInCount(t, n)
	if pages < 1 || signIns != 1 {
		t.Fatalf("the metrics count %d views of the sign-in page and %d sign-ins so far, want at least 1 and 1", pages, signIns)
	}
	b.Go(wiki.URL)
	b.WaitText("Application Wiki : Bonjour " + bName)
	wantTicketLanding(t, "Wiki", wiki, b.URL())
	if b.HasText(frMsg.T("login.login_label")) {
		t.Error("the Wiki page shows the sign-in form")
	}
	if got := loginPageViews(t, n); got != pages {
		t.Errorf("campusid served its sign-in page %d times while the browser opened the Wiki", got-pages)
	}
	if got := signInCount(t, n); got != signIns {
		t.Errorf("%d sign-ins while the browser opened the Wiki, want none", got-signIns)
	}
	if reqs, _, _ := wiki.snapshot(); len(reqs) != 2 || reqs[0] != "GET /wiki/" || !strings.HasPrefix(reqs[1], "GET /wiki/?ticket=ST-") {
		t.Errorf("the Wiki served %q, want its page without then with a ticket", reqs)
	}
	b.Screenshot("wiki")
	noConsoleErrors(t, b, "single sign-on to the Wiki")
}

var (
	httpRequestsRe = regexp.MustCompile(`(?m)^campusid_http_requests_total\{code="\d+",method="GET",route="(?:GET )?/login"\} (\d+)$`)
	signInsRe      = regexp.MustCompile(`(?m)^campusid_sign_ins_total\{result="success"\} (\d+)$`)
)

// loginPageViews is how many times the node answered GET /login (its
// sign-in page), from its metrics.
func loginPageViews(t *testing.T, n *node) int {
	t.Helper()
	total := 0
	for _, m := range httpRequestsRe.FindAllStringSubmatch(metricsText(t, n), -1) {
		c, _ := strconv.Atoi(m[1])
		total += c
	}
	return total
}

// signInCount is how many sign-ins succeeded on the node, from its metrics.
func signInCount(t *testing.T, n *node) int {
	t.Helper()
	m := signInsRe.FindStringSubmatch(metricsText(t, n))
	if m == nil {
		return 0
	}
	c, _ := strconv.Atoi(m[1])
	return c
}
