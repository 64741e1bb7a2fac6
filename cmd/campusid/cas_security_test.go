package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// CAS attacks from a review of the server (issue 5): service URLs that lead
// elsewhere than their pattern seems to allow, replayed sign-in trips,
// tickets outliving their session, and the loose ends of the specification.

func TestCASServiceConfusion(t *testing.T) {
	n, b := casSignedIn(t) // ent: prefix https://ent.univ.example/portail/
	for _, args := range [][]string{
		{"--id", "wide", "--name", "Sous-domaines", "--url", `https://.*\.univ\.example/.*`, "--match", "regex"},
		{"--id", "sloppy", "--name", "Appli", "--url", `https://app\.univ\.example.*`, "--match", "regex"},
	} {
		if _, err := n.cli(append([]string{"cas-service", "add"}, args...)...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.cli("cas-service", "add", "--id", "all", "--name", "Tout", "--url", `https://.*`, "--match", "regex"); err == nil ||
		!strings.Contains(err.Error(), "accepts any site") {
		t.Fatalf("a catch-all pattern was registered: %v", err)
	}
	login := func(service string) page { return b.get("/cas/login?service=" + url.QueryEscape(service)) }
	for _, service := range []string{
		"https://evil.example#.univ.example/",           // the fragment stood in for the host
		"https://evil.example/x.univ.example/",          // the wildcard ran from the host into the path
		"https://evil.example/?.univ.example/",          // or into the query
		"https://app.univ.example.evil.example/",        // the host did not end where the pattern seemed to
		"https://ent.univ.example/portail/../~mallory/", // dot segments out of a prefix
		"https://ent.univ.example/portail/%2e%2e/~mallory/",
		"https://ent.univ.example/portail/..%2f~mallory/",
		`https://ent.univ.example/portail/..\~mallory/`,
		"https://ent.univ.example/portail/;jsessionid=x/../../admin/", // the parameter hid the rest of the path
		"https://ent.univ.example/portail/..;/admin/",                 // Tomcat's dot segment
		"https://eviluniv.example/",                                   // not a pattern's host (no pattern covers it)
	} {
		if p := login(service); p.Status != http.StatusForbidden {
			t.Errorf("%s: %d %q, want the unknown-service page", service, p.Status, p.Location)
		}
	}
	for _, service := range []string{"https://www.univ.example/x", "https://app.univ.example/", "https://app.univ.example:8443/x"} {
		casTicketFor(t, login(service), service)
	}
	// The browser goes where the registry looked: the normalised URL, with
	// the fragment as sent; never to a 500 for odd characters.
	p := login("HTTPS://WWW.univ.example:443/a%7Eb;jsessionid=1?x=a%20b#frag")
	if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, "https://www.univ.example/a~b?x=a+b&ticket=ST-") ||
		!strings.HasSuffix(p.Location, "#frag") {
		t.Errorf("redirect to %d %q, want the normalised URL", p.Status, p.Location)
	}
	if p := login(casApp + strings.Repeat("Ⱥ", 20) + ";jsessionid=1"); p.Status != http.StatusFound {
		t.Errorf("non-ASCII path with jsessionid: %d", p.Status)
	}
	if p := b.get("/cas/logout?service=" + url.QueryEscape("https://evil.example/x.univ.example/")); p.Location != "/login?logged_out=1" {
		t.Errorf("logout redirected to %q", p.Location)
	}

	// cas-service match explains it to the administrator.
	out, err := n.cli("cas-service", "match", "https://evil.example/x.univ.example/")
	if err == nil || !strings.Contains(out, "refused:    wide: the pattern would accept this URL with any host") {
		t.Errorf("match evil: %v\n%s", err, out)
	}
	out, err = n.cli("cas-service", "match", "https://app.univ.example.evil.example/")
	if err == nil || !strings.Contains(out, "refused:    sloppy: the pattern would accept this URL with its host cut short") {
		t.Errorf("match sloppy: %v\n%s", err, out)
	}
	out, err = n.cli("cas-service", "match", "HTTPS://App.univ.example/x")
	if err != nil || !strings.Contains(out, "normalised: https://app.univ.example/x") || !strings.Contains(out, "answers:    sloppy") ||
		!strings.Contains(out, "also:       wide") {
		t.Errorf("match app: %v\n%s", err, out)
	}
	if _, err := n.cli("cas-service", "match", "https://ent.univ.example/portail/../x"); err == nil || !strings.Contains(err.Error(), "refused before any pattern") {
		t.Errorf("match with a dot segment: %v", err)
	}
}

func TestCASReplayedSignInTrip(t *testing.T) {
	n, _ := casSignedIn(t)
	b := n.browser()
	p := b.get("/cas/login?renew=true&service=" + url.QueryEscape(casApp))
	back, _ := url.Parse(p.Location)
	trip := back.Query().Get("return_to") // /cas/login?renew=true&rt=...&rmac=...&service=...
	tk := casTicket(t, localFollow(b, casSignIn(b, p.Location)))
	if c := code(casValidate(t, n, "/cas/serviceValidate", tk, casApp, "renew", "true")); c != "success:jdupont" {
		t.Fatalf("renewed: %s", c)
	}
	// The same return URL again, from the history: the password is asked.
	if p := b.get(trip); p.Status != http.StatusSeeOther || !strings.Contains(p.Location, "reauth=1") {
		t.Fatalf("replayed trip: %d %q", p.Status, p.Location)
	}
	// Another browser with its own session and someone else's trip: not a new login.
	b2 := n.browser()
	b2.mustSignIn("jdupont", goodPassword)
	if p := b2.get(trip); p.Status != http.StatusSeeOther || !strings.Contains(p.Location, "reauth=1") {
		t.Fatalf("trip in another browser: %d %q", p.Status, p.Location)
	}
	// Another service with the same trip: the MAC covers the service.
	other := strings.Replace(trip, url.QueryEscape(casApp), url.QueryEscape(casApp+"autre"), 1)
	if p := b.get(other); p.Status != http.StatusSeeOther {
		t.Fatalf("trip for another service: %d %q", p.Status, p.Location)
	}
	// Two trips in two tabs of one browser: each keeps its own.
	tab1 := b.get("/cas/login?renew=true&service=" + url.QueryEscape(casApp))
	b.get("/cas/login?renew=true&service=" + url.QueryEscape(casApp+"cours")) // a second trip, in another tab
	tk = casTicket(t, localFollow(b, casSignIn(b, tab1.Location)))
	if c := code(casValidate(t, n, "/cas/serviceValidate", tk, casApp, "renew", "true")); c != "success:jdupont" {
		t.Fatalf("first tab after a second trip began: %s", c)
	}
	// A new login is one that just happened: not 2 minutes later.
	p = b.get("/cas/login?renew=true&service=" + url.QueryEscape(casApp))
	signedIn := casSignIn(b, p.Location)
	n.clock.Advance(3 * time.Minute)
	if p := b.get(signedIn.Location); p.Status != http.StatusSeeOther || !strings.Contains(p.Location, "reauth=1") {
		t.Fatalf("3 minutes after the sign-in: %d %q", p.Status, p.Location)
	}
}

func TestCASTicketOfEndedSession(t *testing.T) {
	n, b := casSignedIn(t)
	tk := casTicket(t, b.get("/cas/login?service="+url.QueryEscape(casApp)))
	b.post("/logout", url.Values{})
	if c := code(casValidate(t, n, "/cas/serviceValidate", tk, casApp)); c != "INVALID_TICKET" {
		t.Fatalf("ticket of a session signed out: %s", c)
	}
}

func TestCASSpecificationDetails(t *testing.T) {
	n, b := casSignedIn(t)
	login := "/cas/login?service=" + url.QueryEscape(casApp)
	// renew is set by any value but false or 0.
	if c := code(casValidate(t, n, "/cas/serviceValidate", casTicket(t, b.get(login)), casApp, "renew", "TRUE")); c != "INVALID_TICKET" {
		t.Fatalf("renew=TRUE with a single sign-on ticket: %s", c)
	}
	// An unknown format is INVALID_REQUEST, and does not spend the ticket.
	tk := casTicket(t, b.get(login))
	if c := code(casValidate(t, n, "/cas/serviceValidate", tk, casApp, "format", "YAML")); c != "INVALID_REQUEST" {
		t.Fatalf("format=YAML: %s", c)
	}
	if c := code(casValidate(t, n, "/cas/serviceValidate", tk, casApp)); c != "success:jdupont" {
		t.Fatalf("after format=YAML: %s", c)
	}
	// ;jsessionid= added by a Java container at login but not at validation.
	tk = casTicketFor(t, b.get("/cas/login?service="+url.QueryEscape(casApp+"index.jsp;jsessionid=0A1B")), casApp)
	if c := code(casValidate(t, n, "/cas/serviceValidate", tk, casApp+"index.jsp")); c != "success:jdupont" {
		t.Fatalf("jsessionid: %s", c)
	}
	// warn: single sign-on is not transparent; a page names the application.
	p := b.get(login + "&warn=true")
	if p.Status != http.StatusOK || p.Header.Get("Refresh") != "" || !strings.Contains(p.Body, "Vous allez vous connecter à ENT avec le compte jdupont") ||
		!strings.Contains(p.Body, `href="`+casApp+`?ticket=ST-`) {
		t.Fatalf("warn: %d %q\n%s", p.Status, p.Header.Get("Refresh"), p.Body)
	}
	// Counted for Prometheus.
	m := metricsText(t, n)
	for _, want := range []string{`campusid_cas_validations_total{result="success"} 2`, `campusid_cas_validations_total{result="INVALID_TICKET"} 1`,
		`campusid_cas_validations_total{result="INVALID_REQUEST"} 1`, `campusid_cas_tickets_total{kind="ST"} 4`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// warn with method=POST: the form waits for the person.
	p = b.get(login + "&warn=true&method=POST")
	if p.Status != http.StatusOK || strings.Contains(p.Body, "data-autosubmit") || !strings.Contains(p.Body, "Vous allez vous connecter à ENT") {
		t.Fatalf("warn + POST: %d\n%s", p.Status, p.Body)
	}
	// Failures are audited.
	casValidate(t, n, "/cas/serviceValidate", casTicket(t, b.get(login)), "https://ent.univ.example/ailleurs/")
	if out, err := n.cli("audit", "--type", "cas.validate_failure"); err != nil || !strings.Contains(out, "INVALID_SERVICE") {
		t.Fatalf("audit: %v\n%s", err, out)
	}
}

// TestCASRenewKeepsTheSession: an application asking for renew gets a fresh
// password step, but the person stays signed in to the others: the session
// goes on (with a new token) and its tickets stay valid (a ticket of an
// ended session does not validate, and an ended session means single logout).
func TestCASRenewKeepsTheSession(t *testing.T) {
	n, b := casSignedIn(t)
	login := "/cas/login?service=" + url.QueryEscape(casApp)
	earlier := casTicket(t, b.get(login))
	before := b.cookie("campusid_session").Value
	p := b.get(login + "&renew=true")
	renewed := casTicket(t, localFollow(b, casSignIn(b, p.Location)))
	if c := code(casValidate(t, n, "/cas/serviceValidate", renewed, casApp, "renew", "true")); c != "success:jdupont" {
		t.Fatalf("renewed ticket: %s", c)
	}
	if c := code(casValidate(t, n, "/cas/serviceValidate", earlier, casApp)); c != "success:jdupont" {
		t.Fatalf("a ticket of the session from before the renew: %s", c)
	}
	if after := b.cookie("campusid_session").Value; after == before {
		t.Fatal("the session token did not change with the new sign-in")
	}
}
