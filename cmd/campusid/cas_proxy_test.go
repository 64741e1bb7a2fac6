package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

// CAS proxy tickets (issue 5): pgtUrl callbacks over TLS, PGT/PGTIOU,
// /cas/proxy, PT validation with the proxy chain, and every error code the
// specification names for them.

// pgtReceiver is a service's proxy callback: it keeps the pgtIou -> pgtId
// pairs it receives, as the CAS client libraries do.
type pgtReceiver struct {
	mu    sync.Mutex
	pairs map[string]string
	extra []string // the callback URL's own query parameter "x", kept by campusid
}

func (p *pgtReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasSuffix(r.URL.Path, "/broken"):
		http.Error(w, "down", http.StatusInternalServerError)
		return
	case strings.HasSuffix(r.URL.Path, "/moved"):
		http.Redirect(w, r, "/portail/cb", http.StatusFound)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	q := r.URL.Query()
	if q.Get("pgtIou") != "" {
		p.pairs[q.Get("pgtIou")] = q.Get("pgtId")
		p.extra = append(p.extra, q.Get("x"))
	}
	w.WriteHeader(http.StatusOK)
}

func (p *pgtReceiver) pgt(iou string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pairs[iou]
}

// selfSignedTLS starts an HTTPS server whose certificate no one trusts.
func selfSignedTLS(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "untrusted"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(h)
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	return hs
}

func TestCASProxy(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		recv := &pgtReceiver{pairs: map[string]string{}}
		cb := httptest.NewTLSServer(recv) // its certificate goes in cas.proxy_ca_file
		t.Cleanup(cb.Close)
		untrusted := selfSignedTLS(t, recv)
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cb.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t, storetest.URL(t, d))
		cfg.CAS.ProxyCAFile = caFile
		n := startNode(t, cfg, nil)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")

		portail, annuaire, webmail := cb.URL+"/portail/", cb.URL+"/annuaire/", "https://webmail.univ.example/"
		for _, args := range [][]string{
			{"--id", "portail", "--name", "Portail", "--url", portail, "--match", "prefix", "--proxy"},
			{"--id", "annuaire", "--name", "Annuaire", "--url", annuaire, "--match", "prefix", "--proxy", "--attributes", "uid"},
			{"--id", "webmail", "--name", "Webmail", "--url", webmail, "--match", "prefix", "--attributes", "mail"},
			{"--id", "noproxy", "--name", "Sans proxy", "--url", cb.URL + "/other/", "--match", "prefix"},
			{"--id", "untrusted", "--name", "Untrusted", "--url", untrusted.URL + "/", "--match", "prefix", "--proxy"},
		} {
			if _, err := n.cli(append([]string{"cas-service", "add"}, args...)...); err != nil {
				t.Fatal(err)
			}
		}
		b := n.browser()
		b.mustSignIn("jdupont", goodPassword)
		st := func(service string) string {
			t.Helper()
			return casTicketFor(t, b.get("/cas/login?service="+url.QueryEscape(service)), service)
		}
		validate := func(path, ticket, service, pgtURL string) casResp {
			t.Helper()
			if pgtURL != "" {
				return casValidate(t, n, path, ticket, service, "pgtUrl", pgtURL)
			}
			return casValidate(t, n, path, ticket, service)
		}
		proxy := func(pgt, target string) casResp {
			t.Helper()
			return casGet(t, n, "/cas/proxy", url.Values{"pgt": {pgt}, "targetService": {target}})
		}

		// A PGT through the callback: the IOU in the answer, the PGT at the
		// callback, the callback's own query kept.
		cbURL := portail + "cb?x=kept"
		r := validate("/cas/serviceValidate", st(portail), portail, cbURL)
		if code(r) != "success:jdupont" || !strings.HasPrefix(r.Success.PGTIOU, "PGTIOU-") {
			t.Fatalf("validation with pgtUrl: %s %+v", code(r), r.Success)
		}
		pgt := recv.pgt(r.Success.PGTIOU)
		if !strings.HasPrefix(pgt, "PGT-") || len(pgt) > 64 || recv.extra[0] != "kept" {
			t.Fatalf("callback got pgt %q, x=%v", pgt, recv.extra)
		}

		// A proxy ticket for a back-end service, validated at proxyValidate
		// only, with the chain and the back-end's attributes.
		pr := proxy(pgt, webmail+"inbox")
		if code(pr) != "proxy:PT-" {
			t.Fatalf("/cas/proxy: %s", code(pr))
		}
		pt := pr.ProxySuccess.Ticket
		// At serviceValidate a proxy ticket is refused, and spent: one
		// validation attempt per ticket (CAS 3.0, 3.2.1).
		if c := code(validate("/cas/serviceValidate", pt, webmail+"inbox", "")); c != "INVALID_TICKET_SPEC" {
			t.Fatalf("PT at serviceValidate: %s", c)
		}
		if c := code(validate("/cas/proxyValidate", pt, webmail+"inbox", "")); c != "INVALID_TICKET" {
			t.Fatalf("PT after serviceValidate: %s", c)
		}
		pt = proxy(pgt, webmail+"inbox").ProxySuccess.Ticket
		r = validate("/cas/p3/proxyValidate", pt, webmail+"inbox", "")
		if code(r) != "success:jdupont" || !slices.Equal(r.Success.Proxies, []string{cbURL}) {
			t.Fatalf("proxyValidate: %s %+v", code(r), r.Success)
		}
		if attrs := attrMap(r); attrs["mail"] != "jean.dupont@univ.example" || attrs["uid"] != "" {
			t.Fatalf("back-end attributes: %v", attrs)
		}
		if c := code(validate("/cas/proxyValidate", pt, webmail+"inbox", "")); c != "INVALID_TICKET" {
			t.Fatalf("PT reused: %s", c)
		}
		if c := code(validate("/cas/proxyValidate", proxy(pgt, webmail).ProxySuccess.Ticket, webmail+"other", "")); c != "INVALID_SERVICE" {
			t.Fatalf("PT for another service: %s", c)
		}
		// A PGT is not a ticket to validate.
		if c := code(validate("/cas/proxyValidate", pgt, portail, "")); c != "INVALID_TICKET_SPEC" {
			t.Fatalf("PGT validated: %s", c)
		}

		// A chain of two proxies: the most recent first.
		pt = proxy(pgt, annuaire).ProxySuccess.Ticket
		r = validate("/cas/proxyValidate", pt, annuaire, annuaire+"cb")
		if code(r) != "success:jdupont" || r.Success.PGTIOU == "" {
			t.Fatalf("PT with pgtUrl: %s", code(r))
		}
		pgt2 := recv.pgt(r.Success.PGTIOU)
		r = validate("/cas/proxyValidate", proxy(pgt2, webmail).ProxySuccess.Ticket, webmail, "")
		if code(r) != "success:jdupont" || !slices.Equal(r.Success.Proxies, []string{annuaire + "cb", cbURL}) {
			t.Fatalf("chain: %s %+v", code(r), r.Success)
		}

		// JSON answers.
		resp, err := http.Get(n.URL + "/cas/proxy?" + url.Values{"pgt": {pgt}, "targetService": {webmail}, "format": {"JSON"}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		var js struct {
			ServiceResponse struct{ ProxySuccess struct{ ProxyTicket string } }
		}
		json.NewDecoder(resp.Body).Decode(&js)
		resp.Body.Close()
		jpt := js.ServiceResponse.ProxySuccess.ProxyTicket
		if !strings.HasPrefix(jpt, "PT-") {
			t.Fatalf("proxy JSON: %+v", js)
		}
		resp, err = http.Get(n.URL + "/cas/proxyValidate?" + url.Values{"ticket": {jpt}, "service": {webmail}, "format": {"JSON"}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		var jv struct {
			ServiceResponse struct {
				AuthenticationSuccess struct {
					User    string
					Proxies []string
				}
			}
		}
		json.NewDecoder(resp.Body).Decode(&jv)
		resp.Body.Close()
		if s := jv.ServiceResponse.AuthenticationSuccess; s.User != "jdupont" || !slices.Equal(s.Proxies, []string{cbURL}) {
			t.Fatalf("proxyValidate JSON: %+v", jv)
		}

		// Refused callbacks: no PGT, the validation fails.
		for _, c := range []struct{ name, service, pgtURL, want string }{
			{"service without proxy", cb.URL + "/other/", cb.URL + "/other/cb", "UNAUTHORIZED_SERVICE_PROXY"},
			{"http callback", portail, strings.Replace(portail, "https:", "http:", 1) + "cb", "INVALID_PROXY_CALLBACK"},
			{"callback outside the service", portail, cb.URL + "/other/cb", "INVALID_PROXY_CALLBACK"},
			{"callback answering 500", portail, portail + "broken", "INVALID_PROXY_CALLBACK"},
			{"callback redirecting", portail, portail + "moved", "INVALID_PROXY_CALLBACK"},
			{"untrusted certificate", untrusted.URL + "/", untrusted.URL + "/cb", "INVALID_PROXY_CALLBACK"},
		} {
			before := len(recv.pairs)
			if got := code(validate("/cas/serviceValidate", st(c.service), c.service, c.pgtURL)); got != c.want {
				t.Errorf("%s: %s, want %s", c.name, got, c.want)
			}
			if len(recv.pairs) != before {
				t.Errorf("%s: a PGT reached the receiver", c.name)
			}
		}

		// /cas/proxy errors.
		if c := code(proxy("", webmail)); c != "INVALID_REQUEST" {
			t.Fatalf("no pgt: %s", c)
		}
		if c := code(proxy("PGT-unknown", webmail)); c != "INVALID_TICKET" {
			t.Fatalf("unknown pgt: %s", c)
		}
		if c := code(proxy(pgt, "https://evil.example/")); c != "UNAUTHORIZED_SERVICE" {
			t.Fatalf("unregistered target: %s", c)
		}
		// A service that loses the right to proxy cannot use its PGT.
		if out, err := n.cli("cas-service", "update", "annuaire", "--proxy=false"); err != nil || !strings.Contains(out, "updated") {
			t.Fatalf("update: %v %s", err, out)
		}
		if out, _ := n.cli("cas-service", "show", "annuaire"); !strings.Contains(out, "proxy:       false") || !strings.Contains(out, "uid") {
			t.Fatalf("update changed more than --proxy:\n%s", out)
		}
		if c := code(proxy(pgt2, webmail)); c != "UNAUTHORIZED_SERVICE" {
			t.Fatalf("PGT of a service no longer proxying: %s", c)
		}
		// A sign-out ends the PGTs of the session.
		if c := code(proxy(pgt, webmail)); c != "proxy:PT-" {
			t.Fatalf("before sign-out: %s", c)
		}
		b.post("/logout", url.Values{})
		if c := code(proxy(pgt, webmail)); c != "INVALID_TICKET" {
			t.Fatalf("after sign-out: %s", c)
		}
	})
}
