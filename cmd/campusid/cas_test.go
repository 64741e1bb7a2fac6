package main

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"campusid/internal/store"
)

// CAS server tests (issue 5): the protocol through HTTP against a running node.

const casApp = "https://ent.univ.example/portail/"

type casResp struct {
	XMLName xml.Name `xml:"serviceResponse"`
	Success *struct {
		User  string `xml:"user"`
		Attrs struct {
			Any []struct {
				XMLName xml.Name
				Value   string `xml:",chardata"`
			} `xml:",any"`
		} `xml:"attributes"`
		PGTIOU  string   `xml:"proxyGrantingTicket"`
		Proxies []string `xml:"proxies>proxy"`
	} `xml:"authenticationSuccess"`
	Failure *struct {
		Code string `xml:"code,attr"`
	} `xml:"authenticationFailure"`
	ProxySuccess *struct {
		Ticket string `xml:"proxyTicket"`
	} `xml:"proxySuccess"`
	ProxyFailure *struct {
		Code string `xml:"code,attr"`
	} `xml:"proxyFailure"`
}

func casValidate(t *testing.T, n *node, path, ticket, service string, extra ...string) casResp {
	t.Helper()
	q := url.Values{"ticket": {ticket}, "service": {service}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return casGet(t, n, path, q)
}

// casGet GETs a CAS endpoint and decodes its XML answer.
func casGet(t *testing.T, n *node, path string, q url.Values) casResp {
	t.Helper()
	resp, err := http.Get(n.URL + path + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r casResp
	if err := xml.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func code(r casResp) string {
	switch {
	case r.Failure != nil:
		return r.Failure.Code
	case r.ProxyFailure != nil:
		return r.ProxyFailure.Code
	case r.ProxySuccess != nil:
		return "proxy:" + r.ProxySuccess.Ticket[:3]
	case r.Success != nil:
		return "success:" + r.Success.User
	}
	return "no answer"
}

// attrMap is a success's attributes by name (the last value of each).
func attrMap(r casResp) map[string]string {
	m := map[string]string{}
	if r.Success != nil {
		for _, a := range r.Success.Attrs.Any {
			m[a.XMLName.Local] = a.Value
		}
	}
	return m
}

// casTicket reads the ticket from a redirect to the service.
func casTicket(t *testing.T, p page) string {
	t.Helper()
	return casTicketFor(t, p, casApp)
}

// casTicketFor reads the ticket from a redirect to service.
func casTicketFor(t *testing.T, p page, service string) string {
	t.Helper()
	if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, service) {
		t.Fatalf("want a redirect to the service, got %d %q\n%s", p.Status, p.Location, p.Body)
	}
	u, _ := url.Parse(p.Location)
	tk := u.Query().Get("ticket")
	if !ticketRe.MatchString(tk) {
		t.Fatalf("no ticket, or not in the specification's alphabet (CAS 3.0, 3.7), in %q", p.Location)
	}
	return tk
}

// ticketRe: ST- and letters, digits and '-' only, at most 256 characters.
var ticketRe = regexp.MustCompile(`^ST-[A-Za-z0-9-]{32,253}$`)

func TestCAS(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		if _, err := n.cli("cas-service", "add", "--id", "ent", "--name", "ENT", "--url", casApp, "--match", "prefix",
			"--attributes", "uid,mail,givenName,sn,eduPersonPrincipalName"); err != nil {
			t.Fatal(err)
		}
		if out, err := n.cli("cas-service", "list"); err != nil || !strings.Contains(out, "ent") {
			t.Fatalf("list: %v %s", err, out)
		}
		if _, err := n.cli("cas-service", "add", "--id", "bad", "--name", "B", "--url", "x", "--match", "nope"); err == nil {
			t.Fatal("invalid service accepted")
		}
		login := "/cas/login?service=" + url.QueryEscape(casApp)

		// Without a session: through the sign-in, and back with a ticket.
		b := n.browser()
		p := b.get(login)
		if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/login?") {
			t.Fatalf("no session: %d %q", p.Status, p.Location)
		}
		tk := casTicket(t, localFollow(b, casSignIn(b, p.Location)))
		r := casValidate(t, n, "/cas/p3/serviceValidate", tk, casApp)
		if code(r) != "success:jdupont" {
			t.Fatalf("p3: %s", code(r))
		}
		attrs := attrMap(r)
		if attrs["mail"] != "jean.dupont@univ.example" || attrs["uid"] != "jdupont" || attrs["isFromNewLogin"] != "true" ||
			!strings.HasPrefix(attrs["eduPersonPrincipalName"], "jdupont@") {
			t.Fatalf("attributes: %v", attrs)
		}
		// Used: INVALID_TICKET.
		if c := code(casValidate(t, n, "/cas/serviceValidate", tk, casApp)); c != "INVALID_TICKET" {
			t.Fatalf("reuse: %s", c)
		}

		// Live session: a ticket at once, no sign-in page; single sign-on, not a new login.
		tk = casTicket(t, b.get(login))
		if r := casValidate(t, n, "/cas/serviceValidate", tk, casApp); code(r) != "success:jdupont" || attrMap(r)["isFromNewLogin"] != "false" {
			t.Fatalf("serviceValidate: %s %v", code(r), attrMap(r))
		}
		// CAS 1.0.
		tk = casTicket(t, b.get(login))
		resp, _ := http.Get(n.URL + "/cas/validate?" + url.Values{"ticket": {tk}, "service": {casApp}}.Encode())
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "yes\njdupont\n" {
			t.Fatalf("validate: %q", body)
		}
		// JSON.
		tk = casTicket(t, b.get(login))
		resp, _ = http.Get(n.URL + "/cas/p3/serviceValidate?" + url.Values{"ticket": {tk}, "service": {casApp}, "format": {"JSON"}}.Encode())
		var js struct {
			ServiceResponse struct {
				AuthenticationSuccess struct {
					User       string
					Attributes map[string][]string
				}
			}
		}
		json.NewDecoder(resp.Body).Decode(&js)
		resp.Body.Close()
		if js.ServiceResponse.AuthenticationSuccess.User != "jdupont" || js.ServiceResponse.AuthenticationSuccess.Attributes["sn"][0] != "Test" {
			t.Fatalf("json: %+v", js)
		}

		// Error codes.
		if c := code(casValidate(t, n, "/cas/serviceValidate", "", casApp)); c != InvalidRequestCode {
			t.Fatalf("missing ticket: %s", c)
		}
		if c := code(casValidate(t, n, "/cas/serviceValidate", "ST-nope", casApp)); c != "INVALID_TICKET" {
			t.Fatalf("unknown: %s", c)
		}
		if c := code(casValidate(t, n, "/cas/serviceValidate", "PT-x", casApp)); c != "INVALID_TICKET_SPEC" {
			t.Fatalf("PT to serviceValidate: %s", c)
		}
		tk = casTicket(t, b.get(login))
		if c := code(casValidate(t, n, "/cas/serviceValidate", tk, casApp+"other")); c != "INVALID_SERVICE" {
			t.Fatalf("other service: %s", c)
		}
		// Normalised encoding: the same service spelled differently.
		svcQ := casApp + "?p=a%20b"
		tk = casTicket(t, b.get("/cas/login?service="+url.QueryEscape(svcQ)))
		if c := code(casValidate(t, n, "/cas/serviceValidate", tk, "HTTPS://ENT.univ.example:443/portail/?p=a+b")); c != "success:jdupont" {
			t.Fatalf("normalised: %s", c)
		}

		// Expiry with the injected clock.
		tk = casTicket(t, b.get(login))
		n.clock.Advance(9 * time.Second)
		if c := code(casValidate(t, n, "/cas/serviceValidate", tk, casApp)); c != "success:jdupont" {
			t.Fatalf("9 s: %s", c)
		}
		tk = casTicket(t, b.get(login))
		n.clock.Advance(11 * time.Second)
		if c := code(casValidate(t, n, "/cas/serviceValidate", tk, casApp)); c != "INVALID_TICKET" {
			t.Fatalf("11 s: %s", c)
		}

		// 50 concurrent validations: exactly one success.
		tk = casTicket(t, b.get(login))
		var wins, fails atomic.Int32
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				q := url.Values{"ticket": {tk}, "service": {casApp}}
				resp, err := http.Get(n.URL + "/cas/serviceValidate?" + q.Encode())
				if err != nil {
					return
				}
				defer resp.Body.Close()
				var r casResp
				if xml.NewDecoder(resp.Body).Decode(&r) != nil {
					return
				}
				if r.Success != nil {
					wins.Add(1)
				} else if r.Failure.Code == "INVALID_TICKET" {
					fails.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 || fails.Load() != 49 {
			t.Fatalf("concurrent: %d successes, %d INVALID_TICKET", wins.Load(), fails.Load())
		}

		// renew=true: a fresh sign-in even with a session; the ticket says so.
		p = b.get(login + "&renew=true")
		if p.Status != http.StatusSeeOther || !strings.Contains(p.Location, "reauth=1") {
			t.Fatalf("renew: %d %q", p.Status, p.Location)
		}
		tk0 := casTicket(t, b.get(login)) // a ticket without renew
		if c := code(casValidate(t, n, "/cas/serviceValidate", tk0, casApp, "renew", "true")); c != "INVALID_TICKET" {
			t.Fatalf("non-renewed ticket with renew=true: %s", c)
		}
		n.clock.Advance(time.Second)
		tk = casTicket(t, localFollow(b, casSignIn(b, p.Location)))
		r = casValidate(t, n, "/cas/p3/serviceValidate", tk, casApp, "renew", "true")
		if code(r) != "success:jdupont" {
			t.Fatalf("renewed: %s", code(r))
		}

		// gateway=true without a session: back to the service without a ticket.
		b2 := n.browser()
		p = b2.get(login + "&gateway=true")
		if p.Status != http.StatusFound || p.Location != casApp {
			t.Fatalf("gateway: %d %q", p.Status, p.Location)
		}

		// Unknown service: a campusid page, never a ticket.
		p = b.get("/cas/login?service=" + url.QueryEscape("https://evil.example/"))
		if p.Status != http.StatusForbidden || strings.Contains(p.Location, "ticket") || !strings.Contains(p.Body, "campusid ne connaît pas") {
			t.Fatalf("unknown service: %d %q", p.Status, p.Location)
		}
		// A prefix does not match across a host boundary.
		p = b.get("/cas/login?service=" + url.QueryEscape("https://ent.univ.example/portail-evil"))
		if p.Status != http.StatusForbidden {
			t.Fatalf("prefix boundary: %d %q", p.Status, p.Location)
		}

		// Logout: to a registered service only; the session is over.
		p = b.get("/cas/logout?service=" + url.QueryEscape("https://evil.example/"))
		if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/login") {
			t.Fatalf("logout to unknown: %d %q", p.Status, p.Location)
		}
		b3 := n.browser()
		b3.mustSignIn("jdupont", goodPassword)
		p = b3.get("/cas/logout?service=" + url.QueryEscape(casApp))
		if p.Status != http.StatusFound || p.Location != casApp {
			t.Fatalf("logout to service: %d %q", p.Status, p.Location)
		}
		if p = b3.get(login); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/login?") {
			t.Fatalf("after logout: %d %q", p.Status, p.Location)
		}
		if out, err := n.cli("cas-service", "delete", "ent"); err != nil || !strings.Contains(out, "deleted") {
			t.Fatalf("delete: %v %s", err, out)
		}
	})
}

// casSignIn signs in from a /login?return_to=... location, keeping return_to.
func casSignIn(b *browser, loc string) page {
	b.t.Helper()
	u, _ := url.Parse(loc)
	p := b.post("/login", url.Values{"login": {"jdupont"}, "return_to": {u.Query().Get("return_to")}})
	if p.Status != http.StatusSeeOther || !strings.Contains(p.Location, "/login/password?req=") {
		b.t.Fatalf("identify: %d %q", p.Status, p.Location)
	}
	ref := p.Location[strings.Index(p.Location, "req=")+4:]
	return b.post("/login/password", url.Values{"req": {ref}, "password": {goodPassword}})
}

// localFollow follows redirects while they stay on the node.
func localFollow(b *browser, p page) page {
	b.t.Helper()
	for i := 0; i < 10 && p.Status >= 300 && p.Status < 400 && strings.HasPrefix(p.Location, "/"); i++ {
		p = b.get(p.Location)
	}
	return p
}

const InvalidRequestCode = "INVALID_REQUEST"

// TestCASMethodPost: method=POST sends the ticket in a form posted to the
// service (CAS 3.0, 2.1.1), which CSP allows to leave for the service only.
func TestCASMethodPost(t *testing.T) {
	n, b := casSignedIn(t)
	p := b.get("/cas/login?method=POST&service=" + url.QueryEscape(casApp))
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `<form method="post" action="`+casApp+`"`) {
		t.Fatalf("method=POST: %d\n%s", p.Status, p.Body)
	}
	if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action") || !strings.Contains(csp, "https://ent.univ.example") {
		t.Fatalf("CSP does not let the form reach the service: %q", csp)
	}
	m := regexp.MustCompile(`name="ticket" value="(ST-[^"]+)"`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no ticket in the form:\n%s", p.Body)
	}
	if c := code(casValidate(t, n, "/cas/serviceValidate", m[1], casApp)); c != "success:jdupont" {
		t.Fatalf("posted ticket: %s", c)
	}
}

// TestCASInternalError: a database failure is INTERNAL_ERROR (CAS 1.0: "no"),
// never a success nor a ticket error.
func TestCASInternalError(t *testing.T) {
	n, b := casSignedIn(t)
	tk := casTicket(t, b.get("/cas/login?service="+url.QueryEscape(casApp)))
	n.srv.db.Close()
	if c := code(casValidate(t, n, "/cas/serviceValidate", tk, casApp)); c != "INTERNAL_ERROR" {
		t.Fatalf("serviceValidate: %s", c)
	}
	if c := code(casGet(t, n, "/cas/proxy", url.Values{"pgt": {"PGT-x"}, "targetService": {casApp}})); c != "INTERNAL_ERROR" {
		t.Fatalf("proxy: %s", c)
	}
	resp, err := http.Get(n.URL + "/cas/validate?" + url.Values{"ticket": {tk}, "service": {casApp}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "no\n" {
		t.Fatalf("validate: %q", body)
	}
}

// casSignedIn is a SQLite node with the ENT registered and a browser signed in.
func casSignedIn(t *testing.T) (*node, *browser) {
	n := newNode(t, store.SQLite)
	n.user("jdupont", goodPassword, "jean.dupont@univ.example")
	if _, err := n.cli("cas-service", "add", "--id", "ent", "--name", "ENT", "--url", casApp, "--match", "prefix"); err != nil {
		t.Fatal(err)
	}
	b := n.browser()
	b.mustSignIn("jdupont", goodPassword)
	return n, b
}

// TestCASNewLogin: a ticket issued right after the person signed in for it
// comes from primary credentials: isFromNewLogin, and valid for renew=true
// (CAS 3.0, 2.5.1), even though the service did not ask for renew.
func TestCASNewLogin(t *testing.T) {
	n, _ := casSignedIn(t)
	b := n.browser()
	p := b.get("/cas/login?service=" + url.QueryEscape(casApp))
	tk := casTicket(t, localFollow(b, casSignIn(b, p.Location)))
	if r := casValidate(t, n, "/cas/serviceValidate", tk, casApp, "renew", "true"); code(r) != "success:jdupont" ||
		attrMap(r)["isFromNewLogin"] != "true" {
		t.Fatalf("ticket after sign-in, renew=true: %s %v", code(r), attrMap(r))
	}
	// A trip's start time is MACed: moved back before the sign-in, it does
	// not turn a renew trip of a session already there into a new login.
	p = b.get("/cas/login?renew=true&service=" + url.QueryEscape(casApp))
	u, _ := url.Parse(p.Location)
	trip, _ := url.Parse(u.Query().Get("return_to"))
	q := trip.Query()
	rt, _ := strconv.ParseInt(q.Get("rt"), 10, 64)
	q.Set("rt", strconv.FormatInt(rt-60_000, 10))
	if p := b.get(trip.Path + "?" + q.Encode()); p.Status != http.StatusSeeOther || !strings.Contains(p.Location, "reauth=1") {
		t.Fatalf("trip with its start moved back: %d %q", p.Status, p.Location)
	}
}

// TestCASServiceOrder: of two services matching a URL, the lower --order
// answers (its attributes are released); at equal order the prefix beats the
// regular expression.
func TestCASServiceOrder(t *testing.T) {
	n, b := casSignedIn(t) // ent: prefix casApp, order 0, no attributes
	if _, err := n.cli("cas-service", "add", "--id", "catchall", "--name", "Tout", "--url", `https://ent\.univ\.example/.*`,
		"--match", "regex", "--attributes", "uid"); err != nil {
		t.Fatal(err)
	}
	uid := func() string {
		t.Helper()
		tk := casTicket(t, b.get("/cas/login?service="+url.QueryEscape(casApp)))
		return attrMap(casValidate(t, n, "/cas/serviceValidate", tk, casApp))["uid"]
	}
	if got := uid(); got != "" {
		t.Fatalf("equal order: the regex answered (uid %q)", got)
	}
	if _, err := n.cli("cas-service", "update", "catchall", "--order", "-5"); err != nil {
		t.Fatal(err)
	}
	if got := uid(); got != "jdupont" {
		t.Fatalf("order -5: the prefix still answered")
	}
	if out, _ := n.cli("cas-service", "list"); strings.Index(out, "catchall") > strings.Index(out, "ent ") {
		t.Fatalf("list is not in evaluation order:\n%s", out)
	}
}

// TestSignInNamesTheApplication: the sign-in pages reached from an
// application say where the person is going (CAS service or OpenID Connect
// client name), and say nothing for campusid's own pages.
func TestSignInNamesTheApplication(t *testing.T) {
	n, _ := casSignedIn(t)
	b := n.browser()
	start := b.get("/cas/login?service=" + url.QueryEscape(casApp))
	if p := b.get(start.Location); !strings.Contains(p.Body, `<p class="destination">Pour continuer vers ENT</p>`) {
		t.Fatalf("identifier page from CAS:\n%s", p.Body)
	}
	u, _ := url.Parse(start.Location)
	pw := b.follow(b.post("/login", url.Values{"login": {"jdupont"}, "return_to": {u.Query().Get("return_to")}}))
	if !strings.Contains(pw.Body, "Pour continuer vers ENT") {
		t.Fatalf("password page from CAS:\n%s", pw.Body)
	}
	if p := b.get("/login"); strings.Contains(p.Body, `class="destination"`) {
		t.Fatalf("plain sign-in page names an application:\n%s", p.Body)
	}
}
