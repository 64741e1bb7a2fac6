package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"campusid/internal/config"
	"campusid/internal/store"
)

// Page security (issue 2, item 11) and operations (item 12).

// securityTour visits one of each kind of page, signed out and signed in,
// including error, refusal and throttling pages, and returns them by name.
func securityTour(t *testing.T) map[string]page {
	t.Helper()
	n := throttleNode(t, store.SQLite, func(c *config.Config) { c.Login.AccountFreeFailures = 1 })
	n.user("jdupont", goodPassword, "jean.dupont@univ.example")
	out := map[string]page{}
	anon := n.browser()
	out["login"] = anon.get("/login")
	out["login logged out"] = anon.get("/login?logged_out=1")
	p, _ := identifyStep(anon, "personne@univ.example", "")
	out["login unknown"] = p
	ref := mustIdentify(anon, "jdupont", "")
	out["password step"] = anon.get("/login/password?req=" + ref)
	out["wrong password"] = passwordStep(anon, ref, wrongPassword, false)
	out["throttled"] = passwordStep(anon, ref, goodPassword, false)
	out["expired flow"] = anon.get("/login/password?req=nonsense")
	out["verify"] = anon.get("/verify?token=abc")
	out["verify post"] = anon.post("/verify", url.Values{"token": {"abc"}})
	out["not found"] = anon.get("/no/such/page")
	out["dev mail"] = anon.get("/dev/mail")
	out["cross-site"] = anon.do("POST", "/login", url.Values{"login": {"jdupont"}}, "Sec-Fetch-Site", "cross-site")
	out["logout signed out"] = anon.get("/logout")

	n.clock.Advance(time.Second) // past the delay
	b := n.browser()
	b.mustSignIn("jean.dupont@univ.example", goodPassword)
	out["account"] = b.get("/account")
	out["logout confirm"] = b.get("/logout")
	out["password change refused"] = b.post("/account/password", url.Values{"current_password": {"nope"}})
	return out
}

func TestSecurityHeaders(t *testing.T) {
	for name, p := range securityTour(t) {
		h := p.Header
		csp := h.Get("Content-Security-Policy")
		directives := map[string]string{}
		for d := range strings.SplitSeq(csp, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[k] = v
		}
		switch {
		case csp == "":
			t.Errorf("%s: no Content-Security-Policy", name)
		case strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval"):
			t.Errorf("%s: CSP allows inline code: %s", name, csp)
		case directives["frame-ancestors"] != "'none'":
			t.Errorf("%s: CSP without frame-ancestors 'none': %s", name, csp)
		case directives["script-src"] == "" && directives["default-src"] == "":
			t.Errorf("%s: CSP does not restrict scripts: %s", name, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", name, h.Get("X-Content-Type-Options"))
		}
		if !strings.Contains(h.Get("Cache-Control"), "no-store") {
			t.Errorf("%s: Cache-Control %q", name, h.Get("Cache-Control"))
		}
	}
}

var (
	scriptTagRe  = regexp.MustCompile(`(?is)<script\b[^>]*>(.*?)</script>`)
	eventAttrRe  = regexp.MustCompile(`(?i)<[a-z][^>]*\son[a-z]+\s*=`)
	scriptSrcRe  = regexp.MustCompile(`(?i)^<script\b[^>]*\ssrc="/static/[^"]+"`)
	jsHrefAttrRe = regexp.MustCompile(`(?i)\shref\s*=\s*"\s*javascript:`)
)

func TestNoInlineScripts(t *testing.T) {
	pages := 0
	for name, p := range securityTour(t) {
		if !strings.Contains(p.Header.Get("Content-Type"), "text/html") || p.Body == "" {
			continue
		}
		pages++
		for _, m := range scriptTagRe.FindAllStringSubmatch(p.Body, -1) {
			if !scriptSrcRe.MatchString(m[0]) || strings.TrimSpace(m[1]) != "" {
				t.Errorf("%s: inline script %q", name, m[0])
			}
		}
		if m := eventAttrRe.FindString(p.Body); m != "" {
			t.Errorf("%s: inline event handler in %q", name, m)
		}
		if jsHrefAttrRe.MatchString(p.Body) {
			t.Errorf("%s: javascript: link", name)
		}
	}
	if pages < 10 {
		t.Fatalf("only %d HTML pages checked", pages)
	}
}

func TestNoReferrerOnTokenPages(t *testing.T) {
	tour := securityTour(t)
	for _, name := range []string{"password step", "wrong password", "throttled", "verify", "verify post"} {
		if got := tour[name].Header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("%s: Referrer-Policy %q, want no-referrer", name, got)
		}
	}
	// Other pages keep a referrer for the site itself only, never a full URL to other sites.
	for _, name := range []string{"login", "account"} {
		if got := tour[name].Header.Get("Referrer-Policy"); got != "same-origin" && got != "no-referrer" && got != "strict-origin" {
			t.Errorf("%s: Referrer-Policy %q", name, got)
		}
	}
}

// crossSiteHeaders are what a browser sends with a form posted from another site.
var crossSiteHeaders = []struct {
	name string
	hdr  []string
}{
	{"Sec-Fetch-Site cross-site", []string{"Sec-Fetch-Site", "cross-site"}},
	{"Sec-Fetch-Site same-site", []string{"Sec-Fetch-Site", "same-site"}}, // a sibling sub-domain
	{"foreign Origin", []string{"Origin", "https://evil.example"}},
}

const newPassword = "Nv8#kT2!qZ5m"

func TestCrossSiteFormsRefused(t *testing.T) {
	n := newNode(t, store.SQLite)
	a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
	ctx := context.Background()
	for _, h := range crossSiteHeaders {
		t.Run(h.name, func(t *testing.T) {
			b := n.browser()
			b.mustSignIn("jdupont", goodPassword)
			ref := mustIdentify(n.browser(), "jdupont", "")
			before, _ := n.srv.db.ListAudit(ctx, store.AuditFilter{Limit: 1000})
			pwBefore, _ := n.srv.db.AccountByID(ctx, a.ID)

			for _, tc := range []struct {
				path string
				form url.Values
				lang string
			}{
				{"/login", url.Values{"login": {"personne@univ.example"}}, "fr"},
				{"/login/password", url.Values{"req": {ref}, "password": {goodPassword}}, "en"},
				{"/logout", url.Values{}, "fr"},
				{"/account/password", url.Values{"current_password": {goodPassword}, "new_password": {newPassword},
					"confirm_password": {newPassword}, "signout_others": {"on"}}, "en"},
			} {
				b.lang = tc.lang
				p := b.do("POST", tc.path, tc.form, h.hdr...)
				want := map[string]string{"fr": "envoyé depuis un autre site", "en": "sent from another site"}[tc.lang]
				expectPage(t, tc.path, p, http.StatusForbidden, want)
				if c := setCookie(p, "campusid_session"); c != nil {
					t.Fatalf("%s: refused request touched the session cookie: %q", tc.path, c.Raw)
				}
			}
			// Nothing happened: no event, the session lives, the password and the flow are unchanged.
			after, _ := n.srv.db.ListAudit(ctx, store.AuditFilter{Limit: 1000})
			if len(after) != len(before) {
				t.Fatalf("refused requests left audit events: %v", auditTypes(after[:len(after)-len(before)]))
			}
			expectPage(t, "session after refused logout", b.get("/account"), http.StatusOK)
			if pwAfter, _ := n.srv.db.AccountByID(ctx, a.ID); pwAfter.PasswordHash != pwBefore.PasswordHash {
				t.Fatal("the password changed through a cross-site form")
			}
			expectRedirect(t, "flow after refused submission", passwordStep(n.browser(), ref, goodPassword, false), "/account")
		})
	}
}

func TestSameOriginFormsAccepted(t *testing.T) {
	n := newNode(t, store.SQLite)
	n.user("jdupont", goodPassword, "jean.dupont@univ.example")
	for _, h := range []struct {
		name string
		hdr  []string
	}{
		{"Sec-Fetch-Site same-origin", []string{"Sec-Fetch-Site", "same-origin"}},
		{"own Origin", []string{"Origin", n.URL}},
		{"no header (not a browser)", nil},
	} {
		t.Run(h.name, func(t *testing.T) {
			b := n.browser()
			ref := mustIdentify(b, "jdupont", "", h.hdr...)
			expectRedirect(t, "password", passwordStep(b, ref, goodPassword, false, h.hdr...), "/account")
			p := b.do("POST", "/account/password", url.Values{"current_password": {goodPassword}, "new_password": {newPassword},
				"confirm_password": {newPassword}}, h.hdr...)
			if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/account?done=password") {
				t.Fatalf("password change: %d %q\n%s", p.Status, p.Location, p.Body)
			}
			p = b.do("POST", "/account/password", url.Values{"current_password": {newPassword}, "new_password": {goodPassword},
				"confirm_password": {goodPassword}}, h.hdr...)
			if p.Status != http.StatusSeeOther {
				t.Fatalf("password change back: %d\n%s", p.Status, p.Body)
			}
			expectRedirect(t, "logout", b.do("POST", "/logout", url.Values{}, h.hdr...), "/login?logged_out=1")
			expectRedirect(t, "account after logout", b.get("/account"), toLogin)
		})
	}
}

func TestLanguageSwitcher(t *testing.T) {
	n := newNode(t, store.SQLite)
	n.user("jdupont", goodPassword, "jean.dupont@univ.example")
	b := n.browser() // Accept-Language: fr-FR
	p := b.get("/lang/en?return_to=/login")
	expectRedirect(t, "switch to English", p, "/login")
	c := setCookie(p, "campusid_lang")
	if c == nil || c.Value != "en" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
		t.Fatalf("language cookie: %+v", c)
	}
	expectPage(t, "login after switching", b.follow(p), http.StatusOK, "Email address or identifier", `lang="en"`)

	// The switcher on a page carries the whole page address back, here a password step.
	fr := n.browser()
	ref := mustIdentify(fr, "jdupont", "")
	step := fr.get("/login/password?req=" + ref)
	expectPage(t, "password step in French", step, http.StatusOK, "Mot de passe")
	p = fr.get(linkTo(t, step, "English"))
	expectRedirect(t, "switch on the password step", p, "/login/password?req="+ref)
	expectPage(t, "password step in English", fr.follow(p), http.StatusOK, "Signing in as", "Remember me")
	p = fr.get(linkTo(t, fr.get("/login/password?req="+ref), "Français"))
	expectPage(t, "back in French", fr.follow(p), http.StatusOK, "Se souvenir de moi")

	for _, target := range []string{"https://evil.example", "//evil.example", `/\evil.example`, "javascript:alert(1)"} {
		p := n.browser().get("/lang/en?return_to=" + url.QueryEscape(target))
		expectRedirect(t, "switch with return_to "+target, p, "/login")
	}
	if p := n.browser().get("/lang/xx?return_to=/login"); p.Status != http.StatusNotFound || setCookie(p, "campusid_lang") != nil {
		t.Fatalf("unsupported language: %d, cookie %v", p.Status, setCookie(p, "campusid_lang"))
	}
}

// Operations.

func TestHealthz(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		p := n.browser().get("/healthz")
		if p.Status != http.StatusOK || strings.TrimSpace(p.Body) != "ok" {
			t.Fatalf("/healthz: %d %q", p.Status, p.Body)
		}
		n.srv.db.Close()
		if p := n.browser().get("/healthz"); p.Status != http.StatusServiceUnavailable {
			t.Fatalf("/healthz with the database closed: %d %q", p.Status, p.Body)
		}
	})
}

func metricsText(t *testing.T, n *node) string {
	t.Helper()
	resp, err := http.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	return string(body)
}

func TestMetrics(t *testing.T) {
	n := newNode(t, store.SQLite)
	n.user("jdupont", goodPassword, "jean.dupont@univ.example")
	m := metricsText(t, n)
	for _, re := range []string{
		`(?m)^campusid_password_hashes_in_flight 0$`,
		`(?m)^campusid_outbox_backlog \d+$`,
	} {
		if !regexp.MustCompile(re).MatchString(m) {
			t.Errorf("/metrics lacks %s", re)
		}
	}
	if strings.Contains(m, "campusid_sign_ins_total{") {
		t.Errorf("sign-ins counted before any sign-in:\n%s", m)
	}

	b := n.browser()
	b.mustSignIn("jdupont", goodPassword)
	b.get("/account") // signed in: the route must survive the middlewares that copy the request
	ref := mustIdentify(n.browser(), "jdupont", "")
	passwordStep(n.browser(), ref, wrongPassword, false)
	m = metricsText(t, n)
	for _, re := range []string{
		`(?m)^campusid_sign_ins_total\{result="success"\} 1$`,
		`(?m)^campusid_sign_ins_total\{result="wrong_password"\} 1$`,
		`(?m)^campusid_http_requests_total\{code="303",method="POST",route="POST /login/password"\} 1$`,
		`(?m)^campusid_http_requests_total\{code="200",method="GET",route="GET /account"\} 1$`,
		`(?m)^campusid_http_requests_total\{code="401",method="POST",route="POST /login/password"\} 1$`,
		`(?m)^campusid_http_requests_total\{code="303",method="POST",route="POST /login"\} 2$`,
		`(?m)^campusid_password_hashes_in_flight 0$`,
	} {
		if !regexp.MustCompile(re).MatchString(m) {
			t.Errorf("/metrics lacks %s", re)
		}
	}
}

var requestIDRe = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestRequestIDs(t *testing.T) {
	n := newNode(t, store.SQLite)
	b := n.browser()
	seen := map[string]string{}
	for _, r := range []struct{ method, path string }{
		{"GET", "/login"}, {"POST", "/login"}, {"GET", "/healthz"}, {"GET", "/metrics"}, {"GET", "/static/campusid.css"},
		{"GET", "/no/such/page"}, {"GET", "/lang/en?return_to=/login"}, {"GET", "/"}, {"GET", "/account"},
	} {
		var form url.Values
		if r.method == "POST" {
			form = url.Values{"login": {""}}
		}
		p := b.do(r.method, r.path, form)
		id := p.Header.Get("X-Request-Id")
		if !requestIDRe.MatchString(id) {
			t.Errorf("%s %s: X-Request-Id %q", r.method, r.path, id)
		}
		if prev, dup := seen[id]; dup {
			t.Errorf("%s %s: X-Request-Id %q already given to %s", r.method, r.path, id, prev)
		}
		seen[id] = r.path
	}
	// The error page gives the id as the reference for support.
	p := b.get("/no/such/page")
	if id := p.Header.Get("X-Request-Id"); !strings.Contains(p.Body, id) {
		t.Errorf("404 page does not show its request id %s", id)
	}
	// An id sent by a client that is not a trusted proxy is not believed.
	if p := b.do("GET", "/login", nil, "X-Request-Id", "forged-id"); p.Header.Get("X-Request-Id") == "forged-id" {
		t.Error("a client chose its own request id")
	}
}

func TestRequestIDFromTrustedProxy(t *testing.T) {
	n := throttleNode(t, store.SQLite, nil) // trusts the loopback address
	p := n.browser().do("GET", "/login", nil, "X-Request-Id", "lb-7f3a9c")
	if got := p.Header.Get("X-Request-Id"); got != "lb-7f3a9c" {
		t.Fatalf("request id from the trusted proxy: got %q", got)
	}
}
