package main

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"campusid/internal/config"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

// Two nodes, one database (issue 2, item 13): two campusid servers on one
// PostgreSQL database behave as one. The browser shares its cookies between
// them, as behind a load balancer.

// twoNodes starts two nodes on one fresh PostgreSQL database with one clock.
func twoNodes(t *testing.T, edit func(*config.Config)) (*node, *node) {
	t.Helper()
	dbURL := storetest.URL(t, store.Postgres)
	c := newClock()
	start := func() *node {
		cfg := testConfig(t, dbURL)
		if edit != nil {
			edit(&cfg)
		}
		return startNode(t, cfg, c)
	}
	return start(), start()
}

func TestTwoNodesShareSessions(t *testing.T) {
	a, b := twoNodes(t, nil)
	a.user("jdupont", goodPassword, "jean.dupont@univ.example")

	onA := a.browser()
	onA.mustSignIn("jean.dupont@univ.example", goodPassword)
	onB := onA.on(b)
	expectPage(t, "B opens the session made on A", onB.get("/account"), http.StatusOK, "jean.dupont@univ.example")
	expectRedirect(t, "B skips the sign-in", onB.get("/login?return_to=/account/x"), "/account/x")

	// A sign-in started on A finishes on B.
	other := a.browser()
	ref := mustIdentify(other, "jdupont", "")
	expectRedirect(t, "password step on B", passwordStep(other.on(b), ref, goodPassword, false), "/account")

	old := onA.cookie("campusid_session").Value
	expectRedirect(t, "logout on B", onB.post("/logout", url.Values{}), "/login?logged_out=1")
	p := a.browser().do("GET", "/account", nil, "Cookie", "campusid_session="+old)
	expectRedirect(t, "A after the logout on B", p, toLogin)
	expectRedirect(t, "A with the browser's jar", onA.get("/account"), toLogin)
	// The other browser's session is untouched.
	expectPage(t, "other session on A", other.get("/account"), http.StatusOK)
}

func TestTwoNodesShareThrottle(t *testing.T) {
	a, b := twoNodes(t, func(c *config.Config) {
		c.Login.AccountFreeFailures = 3
		c.Login.AccountMaxDelay = config.Duration(8 * time.Second)
	})
	a.user("jdupont", goodPassword, "jean.dupont@univ.example")
	onA := a.browser()
	ref := mustIdentify(onA, "jdupont", "")
	for range 3 {
		expectPage(t, "failure on A", passwordStep(onA, ref, wrongPassword, false), http.StatusUnauthorized)
	}
	onB := b.browser()
	bref := mustIdentify(onB, "jdupont", "")
	p := passwordStep(onB, bref, goodPassword, false)
	expectPage(t, "B after the failures on A", p, http.StatusTooManyRequests, "Patientez 1 seconde")
	a.clock.Advance(time.Second)
	expectRedirect(t, "B after the delay", passwordStep(onB, bref, goodPassword, false), "/account")
}

// TestTwoNodesShareCAS: a CAS sign-in started on A, finished on B, gives a
// ticket (from a new login, good for renew) that A validates once.
func TestTwoNodesShareCAS(t *testing.T) {
	a, b := twoNodes(t, nil)
	a.user("jdupont", goodPassword, "jean.dupont@univ.example")
	if _, err := a.cli("cas-service", "add", "--id", "ent", "--name", "ENT", "--url", casApp, "--match", "prefix"); err != nil {
		t.Fatal(err)
	}
	onA := a.browser()
	p := onA.get("/cas/login?renew=true&service=" + url.QueryEscape(casApp))
	tk := casTicket(t, localFollow(onA.on(b), casSignIn(onA.on(b), p.Location)))
	if c := code(casValidate(t, a, "/cas/serviceValidate", tk, casApp, "renew", "true")); c != "success:jdupont" {
		t.Fatalf("ticket from B validated on A: %s", c)
	}
	if c := code(casValidate(t, b, "/cas/serviceValidate", tk, casApp)); c != "INVALID_TICKET" {
		t.Fatalf("the same ticket again on B: %s", c)
	}
}
