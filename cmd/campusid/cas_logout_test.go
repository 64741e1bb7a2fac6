package main

import (
	"context"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"campusid/internal/cas"
	"campusid/internal/store"
)

// CAS single logout (issue 5, item 4): the back-channel logoutRequest.

// sloServer is the logout URL of test CAS services: every path is one
// service; fail[path] answers 503 that many times first.
type sloServer struct {
	*httptest.Server
	mu     sync.Mutex
	got    map[string][]string // path -> logoutRequest values accepted
	fail   map[string]int
	badReq []string
}

func newSLOServer(t *testing.T) *sloServer {
	s := &sloServer{got: map[string][]string{}, fail: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			s.badReq = append(s.badReq, r.Method+" "+r.Header.Get("Content-Type"))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if s.fail[r.URL.Path] > 0 {
			s.fail[r.URL.Path]--
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		s.got[r.URL.Path] = append(s.got[r.URL.Path], r.PostFormValue("logoutRequest"))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sloServer) requests(path string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got[path]...)
}

func (s *sloServer) waitFor(t *testing.T, n *node, path string, want int) []string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got := s.requests(path); len(got) >= want {
			return got
		}
		n.clock.Advance(time.Second)
		n.srv.delivery.Signal()
	}
	t.Fatalf("%s received %d logoutRequests, want %d", path, len(s.requests(path)), want)
	return nil
}

// samlLogoutRequest is the specification's logoutRequest, namespaces checked.
type samlLogoutRequest struct {
	XMLName      xml.Name `xml:"urn:oasis:names:tc:SAML:2.0:protocol LogoutRequest"`
	ID           string   `xml:"ID,attr"`
	Version      string   `xml:"Version,attr"`
	IssueInstant string   `xml:"IssueInstant,attr"`
	NameID       string   `xml:"urn:oasis:names:tc:SAML:2.0:assertion NameID"`
	SessionIndex string   `xml:"urn:oasis:names:tc:SAML:2.0:protocol SessionIndex"`
}

func checkLogoutRequest(t *testing.T, n *node, raw, ticket string) samlLogoutRequest {
	t.Helper()
	var r samlLogoutRequest
	if err := xml.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatalf("logoutRequest %q: %v", raw, err)
	}
	if r.SessionIndex != ticket || r.Version != "2.0" || r.NameID != "@NOT_USED@" || r.ID == "" ||
		!strings.HasPrefix(raw, "<samlp:LogoutRequest ") {
		t.Fatalf("logoutRequest %q (want SessionIndex %s)", raw, ticket)
	}
	at, err := time.Parse(time.RFC3339, r.IssueInstant)
	if err != nil || at.After(n.clock.Now()) || at.Before(n.clock.Now().Add(-time.Hour)) {
		t.Fatalf("IssueInstant %q (now %v): %v", r.IssueInstant, n.clock.Now(), err)
	}
	return r
}

// serviceTicket asks /cas/login for service in a signed-in browser.
func serviceTicket(t *testing.T, b *browser, service string) string {
	t.Helper()
	p := b.get("/cas/login?service=" + url.QueryEscape(service))
	u, _ := url.Parse(p.Location)
	if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, service) || !strings.HasPrefix(u.Query().Get("ticket"), "ST-") {
		t.Fatalf("%s: want a redirect with a ticket, got %d %q", service, p.Status, p.Location)
	}
	return u.Query().Get("ticket")
}

// TestCASSingleLogout: after POST /logout, each CAS service of the session
// with a logout URL receives one logoutRequest naming its ticket, the one
// that is down for a while gets it on retry, the one without a logout URL
// gets nothing, and the OpenID Connect application signed in by the same
// session still gets its logout token.
func TestCASSingleLogout(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		slo := newSLOServer(t)
		slo.fail["/wiki"] = 2
		rp := newRPServer(t)
		const wikiApp, plainApp = "https://wiki.univ.example/", "https://plain.univ.example/"
		for _, args := range [][]string{
			{"--id", "ent", "--name", "ENT", "--url", casApp, "--match", "prefix", "--logout-url", slo.URL + "/ent"},
			{"--id", "wiki", "--name", "Wiki", "--url", wikiApp, "--match", "prefix", "--logout-url", slo.URL + "/wiki"},
			{"--id", "plain", "--name", "Plain", "--url", plainApp, "--match", "prefix"},
		} {
			if _, err := n.cli(append([]string{"cas-service", "add"}, args...)...); err != nil {
				t.Fatal(err)
			}
		}
		n.app("--id", "cloud", "--name", "UNCloud", "--public", "--redirect-uri", appRedirect, "--backchannel-logout-uri", rp.URL+"/cloud")

		b, tok := signedInFlow(t, n, n.oauthConfig("cloud", ""), "jdupont")
		_, idc := verifyID(t, n.provider(), "cloud", tok, "n0")
		entTicket := serviceTicket(t, b, casApp)
		if code(casValidate(t, n, "/cas/serviceValidate", entTicket, casApp)) != "success:jdupont" {
			t.Fatal("ent ticket does not validate")
		}
		wikiTicket := serviceTicket(t, b, wikiApp)
		serviceTicket(t, b, plainApp)
		settle(n)
		if len(slo.requests("/ent")) != 0 {
			t.Fatal("logoutRequest before any logout")
		}

		expectRedirect(t, "logout", b.post("/logout", url.Values{}), "/login?logged_out=1")
		checkLogoutRequest(t, n, slo.waitFor(t, n, "/ent", 1)[0], entTicket)
		checkLogoutRequest(t, n, slo.waitFor(t, n, "/wiki", 1)[0], wikiTicket)
		verifyLogoutToken(t, n, rp.waitFor(t, n, "/cloud", 1)[0], "cloud", idc["sid"].(string), a.ID)
		settle(n)
		if len(slo.requests("/ent")) != 1 || len(slo.requests("/wiki")) != 1 || len(slo.requests("/plain")) != 0 ||
			len(slo.badReq) != 0 || len(rp.tokens("/cloud")) != 1 {
			t.Fatalf("received ent %d wiki %d plain %d cloud %d, bad %v", len(slo.requests("/ent")), len(slo.requests("/wiki")),
				len(slo.requests("/plain")), len(rp.tokens("/cloud")), slo.badReq)
		}

		var ds []store.Delivery
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			var err error
			if ds, err = n.srv.db.ListDeliveries(context.Background(), cas.DeliveryKindLogout); err != nil {
				t.Fatal(err)
			}
			if len(ds) == 2 && ds[0].State != store.DeliveryPending && ds[1].State != store.DeliveryPending || time.Now().After(deadline) {
				break
			}
		}
		if len(ds) != 2 {
			t.Fatalf("%d CAS logout deliveries, want 2 (none for the service without a logout URL)", len(ds))
		}
		attempts := map[string]int{}
		for _, dl := range ds {
			if dl.State != store.DeliveryDelivered {
				t.Fatalf("delivery %+v", dl)
			}
			attempts[dl.Subject] = dl.Attempts
			if dl.Subject == "wiki" {
				att, err := n.srv.db.DeliveryAttempts(context.Background(), dl.ID)
				if err != nil {
					t.Fatal(err)
				}
				if len(att) != 3 || att[0].Status != 503 || att[1].Status != 503 || att[2].Status != 200 {
					t.Fatalf("wiki attempts %+v", att)
				}
			}
		}
		if attempts["ent"] != 1 || attempts["wiki"] != 3 {
			t.Fatalf("attempts %v, want ent 1 and wiki 3", attempts)
		}
	})
}

// TestCASLogoutRequestEscapes: the ticket id is escaped by the encoder.
func TestCASLogoutRequestEscapes(t *testing.T) {
	raw, err := cas.LogoutRequest(`ST-<a>&"`, time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	var r samlLogoutRequest
	if err := xml.Unmarshal([]byte(raw), &r); err != nil || r.SessionIndex != `ST-<a>&"` || r.IssueInstant != "2026-11-23T16:00:00Z" {
		t.Fatalf("%q: %v %+v", raw, err, r)
	}
}
