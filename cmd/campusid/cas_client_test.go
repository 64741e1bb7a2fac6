package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	cas "gopkg.in/cas.v2"

	"campusid/internal/store"
)

// CAS with a real client library (issue 5, "Tests that must exist"): test
// applications protected by the go-cas client (gopkg.in/cas.v2), the way a
// Go web application uses it, sign people in through campusid's /cas/.

// casClientAttributes are the attributes the test applications are
// registered with.
const casClientAttributes = "uid,mail,displayName,eduPersonPrincipalName"

// casClientApp is a test application protected by the go-cas middleware:
// the client sends the browser to campusid's /cas/login, validates the
// ticket with /cas/serviceValidate, keeps the person in its own session (the
// _cas_session cookie) and handles campusid's single logout POSTs. The
// application lives under /<id>/ on its own server and its cookie is scoped
// to that path, so two applications never share a session (the cookie name
// is the same for every go-cas client, and cookies ignore ports).
type casClientApp struct {
	id, name string
	URL      string // the service URL, as registered in campusid

	mu       sync.Mutex
	requests []string       // method and request URI of every request, in order
	tickets  []string       // tickets of the requests that the client authenticated
	logouts  []casLogoutHit // logoutRequests received
}

// casLogoutHit is one single logout POST as the application saw it.
type casLogoutHit struct {
	status       int    // the go-cas client's answer
	sessionIndex string // the ticket named by the logoutRequest
}

// newCASClientApp starts the application id and registers it in n as a
// prefix-matched CAS service with the test attributes and its own URL as
// logout URL.
func newCASClientApp(t *testing.T, n *node, id, name string) *casClientApp {
	t.Helper()
	a := &casClientApp{id: id, name: name}
	casURL, err := url.Parse(n.URL + "/cas/")
	if err != nil {
		t.Fatal(err)
	}
	base := "/" + id + "/"
	client := cas.NewClient(&cas.Options{URL: casURL, Cookie: &http.Cookie{Path: base, HttpOnly: true}})
	protected := client.Handle(http.HandlerFunc(a.serve))
	mux := http.NewServeMux()
	mux.HandleFunc(base, func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.requests = append(a.requests, r.Method+" "+r.URL.RequestURI())
		a.mu.Unlock()
		if r.Method != http.MethodPost {
			protected.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		protected.ServeHTTP(sw, r)
		var lr struct {
			SessionIndex string `xml:"SessionIndex"`
		}
		xml.Unmarshal([]byte(r.PostFormValue("logoutRequest")), &lr)
		a.mu.Lock()
		a.logouts = append(a.logouts, casLogoutHit{status: sw.status, sessionIndex: strings.TrimSpace(lr.SessionIndex)})
		a.mu.Unlock()
	})
	// Browsers ask for it; an answer keeps their console free of 404s.
	mux.HandleFunc("/favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	a.URL = srv.URL + base
	if _, err := n.cli("cas-service", "add", "--id", id, "--name", name, "--url", a.URL, "--match", "prefix",
		"--attributes", casClientAttributes, "--logout-url", a.URL); err != nil {
		t.Fatal(err)
	}
	return a
}

// serve is the application itself, behind the go-cas middleware: without a
// CAS session it sends the browser to campusid; with one it greets the
// person by the displayName attribute and lists what the client got from
// /cas/serviceValidate.
func (a *casClientApp) serve(w http.ResponseWriter, r *http.Request) {
	if !cas.IsAuthenticated(r) {
		cas.RedirectToLogin(w, r)
		return
	}
	if tk := r.URL.Query().Get("ticket"); tk != "" {
		a.mu.Lock()
		a.tickets = append(a.tickets, tk)
		a.mu.Unlock()
	}
	attrs := cas.Attributes(r)
	var lines []string
	for k, vs := range attrs {
		for _, v := range vs {
			lines = append(lines, "<li>"+html.EscapeString(k+"="+v)+"</li>")
		}
	}
	sort.Strings(lines)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><html lang="fr"><title>%s</title>
<p>Application %s : Bonjour %s</p>
<p>Identifiant : <span id="user">%s</span></p>
<p>Authentification : <span id="auth-date">%s</span></p>
<ul id="attributes">%s</ul>
</html>`, html.EscapeString(a.name), html.EscapeString(a.name), html.EscapeString(attrs.Get("displayName")),
		html.EscapeString(cas.Username(r)), cas.AuthenticationDate(r).UTC().Format(time.RFC3339), strings.Join(lines, ""))
}

func (a *casClientApp) snapshot() (requests, tickets []string, logouts []casLogoutHit) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.requests), slices.Clone(a.tickets), slices.Clone(a.logouts)
}

// waitLogout waits for the application's first logoutRequest, nudging the
// node's delivery queue.
func (a *casClientApp) waitLogout(t *testing.T, n *node) casLogoutHit {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, _, l := a.snapshot(); len(l) > 0 {
			return l[0]
		}
		n.srv.delivery.Signal()
	}
	t.Fatalf("%s received no logoutRequest", a.name)
	return casLogoutHit{}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// casAppView is what a test application shows.
type casAppView struct {
	greeting string   // "Application NAME : Bonjour DISPLAYNAME"
	user     string   // cas.Username
	authDate string   // cas.AuthenticationDate, RFC 3339
	attrs    []string // cas.Attributes as sorted name=value
}

var (
	casGreetingRe = regexp.MustCompile(`<p>(Application [^<]*)</p>`)
	casUserRe     = regexp.MustCompile(`<span id="user">([^<]*)</span>`)
	casAuthDateRe = regexp.MustCompile(`<span id="auth-date">([^<]*)</span>`)
	casAttrRe     = regexp.MustCompile(`<li>([^<]*)</li>`)
)

// casAppPage reads an application page, failing unless p is one.
func casAppPage(t *testing.T, what string, p page) casAppView {
	t.Helper()
	g, u, d := casGreetingRe.FindStringSubmatch(p.Body), casUserRe.FindStringSubmatch(p.Body), casAuthDateRe.FindStringSubmatch(p.Body)
	if p.Status != http.StatusOK || g == nil || u == nil || d == nil {
		t.Fatalf("%s: want the application page, got %d %q\n%s", what, p.Status, p.Location, p.Body)
	}
	v := casAppView{greeting: html.UnescapeString(g[1]), user: html.UnescapeString(u[1]), authDate: d[1]}
	for _, m := range casAttrRe.FindAllStringSubmatch(p.Body, -1) {
		v.attrs = append(v.attrs, html.UnescapeString(m[1]))
	}
	return v
}

// casNavigate GETs target with b and follows the redirects wherever they
// lead (the node, the applications), as a browser does. It returns the last
// page and the URLs requested, in order.
func casNavigate(b *browser, target string) (page, []string) {
	b.t.Helper()
	visited := []string{target}
	return casFollow(b, visited, b.get(target))
}

// casFollow follows the redirects of p, the answer to the last of visited.
func casFollow(b *browser, visited []string, p page) (page, []string) {
	b.t.Helper()
	for p.Status >= 300 && p.Status < 400 {
		if len(visited) > 10 {
			b.t.Fatalf("too many redirects: %q", visited)
		}
		base, err := url.Parse(visited[len(visited)-1])
		if err != nil {
			b.t.Fatal(err)
		}
		next, err := base.Parse(p.Location)
		if err != nil {
			b.t.Fatalf("redirect to %q: %v", p.Location, err)
		}
		visited = append(visited, next.String())
		p = b.get(next.String())
	}
	return p, visited
}

var (
	returnToRe = regexp.MustCompile(`name="return_to" value="([^"]*)"`)
	pwReqRe    = regexp.MustCompile(`name="req" value="([^"]*)"`)
)

// casSignInPage fills in the sign-in page p (the last of visited) as a
// person does: the identifier page, then the password page. It follows the
// redirects that come after, and returns the last page and all the URLs.
func casSignInPage(t *testing.T, b *browser, visited []string, p page, login, password string) (page, []string) {
	t.Helper()
	m := returnToRe.FindStringSubmatch(p.Body)
	if p.Status != http.StatusOK || m == nil || !strings.HasPrefix(visited[len(visited)-1], b.n.URL+"/login?") {
		t.Fatalf("want campusid's sign-in page, got %d at %q\n%s", p.Status, visited[len(visited)-1], p.Body)
	}
	p = b.post("/login", url.Values{"login": {login}, "return_to": {html.UnescapeString(m[1])}})
	visited = append(visited, b.n.URL+"/login") // the form's POST
	p, visited = casFollow(b, visited, p)
	m = pwReqRe.FindStringSubmatch(p.Body)
	if p.Status != http.StatusOK || m == nil || !strings.HasPrefix(visited[len(visited)-1], b.n.URL+"/login/password?") {
		t.Fatalf("want the password page, got %d at %q\n%s", p.Status, visited[len(visited)-1], p.Body)
	}
	p = b.post("/login/password", url.Values{"req": {html.UnescapeString(m[1])}, "password": {password}})
	visited = append(visited, b.n.URL+"/login/password") // the form's POST
	return casFollow(b, visited, p)
}

// casToSignIn checks that visited went from app to campusid's /cas/login
// for app's service, then to campusid's sign-in page, and nowhere else.
func casToSignIn(t *testing.T, what string, n *node, app *casClientApp, visited []string) {
	t.Helper()
	if len(visited) != 3 || visited[0] != app.URL || !strings.HasPrefix(visited[2], n.URL+"/login?") {
		t.Fatalf("%s: want %s, campusid's /cas/login, then its sign-in page; visited %q", what, app.URL, visited)
	}
	wantCASLogin(t, what, n, app, visited[1])
}

// wantCASLogin checks that u is campusid's /cas/login for app's service.
func wantCASLogin(t *testing.T, what string, n *node, app *casClientApp, u string) {
	t.Helper()
	if !strings.HasPrefix(u, n.URL+"/cas/login?") {
		t.Fatalf("%s: %q is not campusid's /cas/login", what, u)
	}
	pu, _ := url.Parse(u)
	if s := pu.Query().Get("service"); s != app.URL {
		t.Fatalf("%s: /cas/login for service %q, want %q", what, s, app.URL)
	}
}

// wantTicketLanding checks that u is app's URL with a service ticket, and
// returns the ticket.
func wantTicketLanding(t *testing.T, what string, app *casClientApp, u string) string {
	t.Helper()
	pu, err := url.Parse(u)
	tk := ""
	if err == nil {
		tk = pu.Query().Get("ticket")
	}
	if !strings.HasPrefix(u, app.URL+"?ticket=") || !strings.HasPrefix(tk, "ST-") {
		t.Fatalf("%s: want %s with a service ticket, landed on %q", what, app.URL, u)
	}
	return tk
}

// TestCASClient: two applications protected by the go-cas client share one
// campusid sign-in. The first sends the browser to campusid's sign-in page
// and, after it, shows the person with the attributes that
// /cas/serviceValidate released (exactly the registered ones); the second
// gets the person without the sign-in page. Signing out of campusid sends
// each application a logoutRequest that the client accepts, after which both
// have forgotten the person and send the browser back to campusid's sign-in.
func TestCASClient(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		acct := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		if acct.DisplayName == "" {
			t.Fatal("the test account has no display name")
		}
		host, _ := url.Parse(n.URL)
		wantAttrs := []string{"displayName=" + acct.DisplayName, "eduPersonPrincipalName=jdupont@" + host.Hostname(),
			"mail=jean.dupont@univ.example", "uid=jdupont"}
		ent := newCASClientApp(t, n, "ent", "ENT")
		wiki := newCASClientApp(t, n, "wiki", "Wiki")
		b := n.browser()

		// No session anywhere: the application sends the browser to campusid's sign-in page.
		p, visited := casNavigate(b, ent.URL)
		casToSignIn(t, "ENT without a session", n, ent, visited)

		// Signing in lands back on the application, which validated its ticket.
		start := n.clock.Now()
		p, visited = casSignInPage(t, b, visited, p, "jdupont", goodPassword)
		landing := visited[len(visited)-1]
		tk := wantTicketLanding(t, "ENT after the sign-in", ent, landing)
		if !slices.ContainsFunc(visited, func(u string) bool { return strings.HasPrefix(u, n.URL+"/cas/login?") }) {
			t.Fatalf("the sign-in did not go back through /cas/login: %q", visited)
		}
		v := casAppPage(t, "ENT after the sign-in", p)
		if v.user != "jdupont" || v.greeting != "Application ENT : Bonjour "+acct.DisplayName || !slices.Equal(v.attrs, wantAttrs) {
			t.Fatalf("ENT shows user %q, greeting %q, attributes %q; want jdupont and %q", v.user, v.greeting, v.attrs, wantAttrs)
		}
		if at, err := time.Parse(time.RFC3339, v.authDate); err != nil || at.Before(start.Add(-time.Second)) || at.After(n.clock.Now()) {
			t.Fatalf("ENT's authentication date %q, want the sign-in time %v: %v", v.authDate, start, err)
		}
		if _, tks, _ := ent.snapshot(); !slices.Equal(tks, []string{tk}) {
			t.Fatalf("ENT authenticated tickets %q, want [%s]", tks, tk)
		}

		// The same application again: its own session, no trip to campusid.
		p, visited = casNavigate(b, ent.URL)
		if len(visited) != 1 || casAppPage(t, "ENT again", p).user != "jdupont" {
			t.Fatalf("ENT again: visited %q", visited)
		}

		// A second application: campusid's session gives it a ticket at once, no sign-in page.
		p, visited = casNavigate(b, wiki.URL)
		if len(visited) != 3 || visited[0] != wiki.URL {
			t.Fatalf("Wiki: want the application, /cas/login and back; visited %q", visited)
		}
		wantCASLogin(t, "Wiki", n, wiki, visited[1])
		wikiTk := wantTicketLanding(t, "Wiki", wiki, visited[2])
		if v := casAppPage(t, "Wiki", p); v.user != "jdupont" || !slices.Equal(v.attrs, wantAttrs) {
			t.Fatalf("Wiki shows user %q, attributes %q; want jdupont and %q", v.user, v.attrs, wantAttrs)
		}
		if _, _, l := ent.snapshot(); len(l) != 0 {
			t.Fatalf("ENT received a logoutRequest before any logout: %+v", l)
		}

		// Single logout: signing out of campusid reaches both applications
		// through the delivery queue, and the go-cas client accepts it.
		expectRedirect(t, "logout", b.post("/logout", url.Values{}), "/login?logged_out=1")
		for _, c := range []struct {
			app    *casClientApp
			ticket string
		}{{ent, tk}, {wiki, wikiTk}} {
			if got := c.app.waitLogout(t, n); got.status != http.StatusOK || got.sessionIndex != c.ticket {
				t.Fatalf("%s: logoutRequest for %q answered %d; want %s accepted (200)", c.app.name, got.sessionIndex, got.status, c.ticket)
			}
		}
		if _, err := n.srv.delivery.Process(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, app := range []*casClientApp{ent, wiki} {
			if _, _, l := app.snapshot(); len(l) != 1 {
				t.Fatalf("%s received %d logoutRequests, want 1: %+v", app.name, len(l), l)
			}
		}

		// Both applications have forgotten the person: back to campusid,
		// whose session is over too, so its sign-in page shows.
		for _, app := range []*casClientApp{ent, wiki} {
			_, visited = casNavigate(b, app.URL)
			casToSignIn(t, app.name+" after the single logout", n, app, visited)
		}

		// Signing in again brings a new ticket to the application.
		p, visited = casNavigate(b, ent.URL)
		p, visited = casSignInPage(t, b, visited, p, "jdupont", goodPassword)
		if tk2 := wantTicketLanding(t, "ENT after signing in again", ent, visited[len(visited)-1]); tk2 == tk {
			t.Fatalf("ENT got the old ticket %s again", tk)
		}
		if v := casAppPage(t, "ENT after signing in again", p); v.user != "jdupont" {
			t.Fatalf("ENT after signing in again shows %q", v.user)
		}
	})
}
