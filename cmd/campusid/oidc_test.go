package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"campusid/internal/config"
	"campusid/internal/store"
)

// OpenID Connect provider tests (issue 4): real clients, golang.org/x/oauth2
// and github.com/coreos/go-oidc/v3, against a running node, on SQLite and
// PostgreSQL. The browser is the harness's cookie jar, following each hop:
// authorize → /oidc/continue → /login → password → consent → callback →
// the application's redirect URI, which the test reads without serving it.

// zitadel/oidc logs through the default logger: quiet unless CAMPUSID_TEST_LOG is set.
func init() {
	if os.Getenv("CAMPUSID_TEST_LOG") == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
}

const appRedirect = "http://127.0.0.1:9/cb" // never served: the test reads the code from the Location

// cli runs a campusid command against the node's database and keys.
func (n *node) cli(args ...string) (string, error) {
	n.t.Helper()
	var out, errb bytes.Buffer
	cfg := n.srv.cfg
	e := &env{stdout: &out, stderr: &errb, now: n.clock.Now, environ: []string{
		"CAMPUSID_DATABASE_URL=" + cfg.Database.URL, "CAMPUSID_DATA_DIR=" + cfg.DataDir,
		"CAMPUSID_KEYS_ENCRYPTION_KEY=" + cfg.Keys.EncryptionKey, "CAMPUSID_PUBLIC_URL=" + cfg.PublicURL,
	}}
	if code := run(context.Background(), e, args); code != 0 {
		return out.String(), fmt.Errorf("campusid %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
	}
	return out.String(), nil
}

var secretRe = regexp.MustCompile(`client_secret: (\S+)`)

// app registers an application with `campusid client add` and returns its secret ("" for a public one).
func (n *node) app(args ...string) string {
	n.t.Helper()
	out, err := n.cli(append([]string{"client", "add"}, args...)...)
	if err != nil {
		n.t.Fatal(err)
	}
	if m := secretRe.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// oauthConfig is an x/oauth2 client of the node.
func (n *node) oauthConfig(id, secret string, scopes ...string) *oauth2.Config {
	if len(scopes) == 0 {
		scopes = []string{"openid", "profile", "email"}
	}
	style := oauth2.AuthStyleInHeader
	if secret == "" {
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{ClientID: id, ClientSecret: secret, RedirectURL: appRedirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: n.URL + "/oauth2/authorize", TokenURL: n.URL + "/oauth2/token", AuthStyle: style}}
}

func (n *node) provider() *gooidc.Provider {
	n.t.Helper()
	p, err := gooidc.NewProvider(context.Background(), n.URL)
	if err != nil {
		n.t.Fatalf("discovery: %v", err)
	}
	return p
}

// authFlow drives a browser through an authorization.
type authFlow struct {
	b        *browser
	login    string // who signs in when asked
	password string
	consent  string // "allow", "deny", or "" (being asked fails the test)
	visited  []string
}

// result is where a flow ended: a redirect to the application, or a page of the node.
type result struct {
	Redirect *url.URL // the application's redirect URI with the response
	Page     page     // the last page when it did not redirect to the application
	URL      string   // the URL of Page
}

func (r result) param(k string) string {
	if r.Redirect == nil {
		return ""
	}
	if r.Redirect.RawQuery == "" && r.Redirect.Fragment != "" { // an error of an implicit request
		q, _ := url.ParseQuery(r.Redirect.Fragment)
		return q.Get(k)
	}
	return r.Redirect.Query().Get(k)
}

func (f *authFlow) saw(path string) bool {
	for _, v := range f.visited {
		if v == path {
			return true
		}
	}
	return false
}

// run starts at start (an authorize URL) and follows hops until the
// browser leaves the node or stops on a page it cannot answer.
func (f *authFlow) run(start string) result {
	b := f.b
	b.t.Helper()
	cur := start
	p := b.get(cur)
	for i := 0; i < 30; i++ {
		u, _ := url.Parse(cur)
		f.visited = append(f.visited, u.Path)
		if p.Status >= 300 && p.Status < 400 {
			next := u.ResolveReference(mustURL(b.t, p.Location))
			if !strings.HasPrefix(next.String(), b.n.URL+"/") {
				return result{Redirect: next}
			}
			cur = next.String()
			p = b.get(cur)
			continue
		}
		switch {
		case p.Status == http.StatusOK && u.Path == "/login" && f.login != "":
			ref := mustIdentify(b, f.login, u.Query().Get("return_to"))
			f.visited = append(f.visited, "/login/password")
			p = passwordStep(b, ref, f.password, false)
			cur = b.n.URL + "/login/password"
			f.login = "" // once
			continue
		case p.Status == http.StatusOK && u.Path == "/oidc/consent" && f.consent != "":
			p = b.post("/oidc/consent", url.Values{"id": {u.Query().Get("id")}, "decision": {f.consent}})
			cur = b.n.URL + "/oidc/consent"
			f.consent = "" // once
			continue
		}
		return result{Page: p, URL: cur}
	}
	b.t.Fatalf("authorization does not end: %v", f.visited)
	return result{}
}

func mustURL(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// pkce returns a verifier and the options of its S256 challenge.
func pkce() (string, oauth2.AuthCodeOption) {
	v := oauth2.GenerateVerifier()
	return v, oauth2.S256ChallengeOption(v)
}

// code runs a flow and returns the code, failing unless the application got one with state.
func (f *authFlow) code(t testing.TB, authURL, state string) string {
	t.Helper()
	r := f.run(authURL)
	if r.Redirect == nil {
		t.Fatalf("no redirect to the application; stopped on %s (%d)\n%s", r.URL, r.Page.Status, r.Page.Body)
	}
	if !strings.HasPrefix(r.Redirect.String(), appRedirect+"?") {
		t.Fatalf("redirected to %s", r.Redirect)
	}
	if r.param("state") != state || r.param("code") == "" {
		t.Fatalf("application got %s, want a code and state %q", r.Redirect.RawQuery, state)
	}
	return r.param("code")
}

// tokenCall posts to an endpoint of the node with optional basic auth and decodes the JSON answer.
func (n *node) tokenCall(path string, form url.Values, id, secret string) (int, map[string]any) {
	n.t.Helper()
	req, _ := http.NewRequest("POST", n.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(body, &out)
	if out == nil {
		out = map[string]any{"raw": string(body)}
	}
	return resp.StatusCode, out
}

// introspect asks whether token is active, as the confidential client id.
func (n *node) introspect(token, id, secret string) bool {
	n.t.Helper()
	status, out := n.tokenCall("/oauth2/introspect", url.Values{"token": {token}}, id, secret)
	if status != http.StatusOK {
		n.t.Fatalf("introspect: %d %v", status, out)
	}
	return out["active"] == true
}

func (n *node) refresh(id, secret, rt string) (int, map[string]any) {
	n.t.Helper()
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	if secret == "" {
		f.Set("client_id", id)
	}
	return n.tokenCall("/oauth2/token", f, id, secret)
}

// verifyID checks an ID token with go-oidc (signature, issuer, audience, expiry) and its nonce.
func verifyID(t testing.TB, p *gooidc.Provider, clientID string, tok *oauth2.Token, nonce string) (*gooidc.IDToken, map[string]any) {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatalf("no id_token in %v", tok)
	}
	idt, err := p.Verifier(&gooidc.Config{ClientID: clientID}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("ID token does not verify: %v", err)
	}
	if idt.Nonce != nonce {
		t.Fatalf("nonce %q, want %q", idt.Nonce, nonce)
	}
	var claims map[string]any
	idt.Claims(&claims)
	return idt, claims
}

func jwtHeader(t testing.TB, raw string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.Unmarshal(b, &h)
	return h
}

func TestOIDCDiscoveryAndKeys(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		resp, err := http.Get(n.URL + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		var disc map[string]any
		json.NewDecoder(resp.Body).Decode(&disc)
		resp.Body.Close()
		for k, want := range map[string]string{
			"issuer": n.URL, "authorization_endpoint": n.URL + "/oauth2/authorize", "token_endpoint": n.URL + "/oauth2/token",
			"userinfo_endpoint": n.URL + "/oauth2/userinfo", "jwks_uri": n.URL + "/oauth2/keys",
			"introspection_endpoint": n.URL + "/oauth2/introspect", "revocation_endpoint": n.URL + "/oauth2/revoke",
			"end_session_endpoint": n.URL + "/oauth2/end_session",
		} {
			if disc[k] != want {
				t.Errorf("%s = %v, want %s", k, disc[k], want)
			}
		}
		for k, want := range map[string]string{
			"response_types_supported": "[code]", "code_challenge_methods_supported": "[S256]",
			"response_modes_supported": "[query form_post]", "id_token_signing_alg_values_supported": "[ES256]",
			"scopes_supported": "[openid profile email offline_access]",
		} {
			if got := fmt.Sprint(disc[k]); got != want {
				t.Errorf("%s = %s, want %s", k, got, want)
			}
		}
		if grants := fmt.Sprint(disc["grant_types_supported"]); strings.Contains(grants, "implicit") || !strings.Contains(grants, "refresh_token") {
			t.Errorf("grant_types_supported = %s", grants)
		}
		resp, err = http.Get(n.URL + "/oauth2/keys")
		if err != nil {
			t.Fatal(err)
		}
		var jwks struct{ Keys []map[string]any }
		json.NewDecoder(resp.Body).Decode(&jwks)
		resp.Body.Close()
		if len(jwks.Keys) != 1 || jwks.Keys[0]["alg"] != "ES256" || jwks.Keys[0]["use"] != "sig" || jwks.Keys[0]["kid"] == "" || jwks.Keys[0]["d"] != nil {
			t.Fatalf("JWKS: %v", jwks.Keys)
		}
		n.provider() // go-oidc accepts the document (issuer match)
	})
}

// TestOIDCCodeFlowPublicClient is the journey of an application using a
// standard library: code + PKCE for a public client, sign-in, consent,
// tokens, ID token verified by go-oidc, userinfo; then the consent is
// remembered, asked again with prompt=consent, and refused.
func TestOIDCCodeFlowPublicClient(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		n.app("--id", "cloud", "--name", "UNCloud", "--public", "--redirect-uri", appRedirect)
		conf := n.oauthConfig("cloud", "", "openid", "profile", "email", "offline_access")
		p := n.provider()
		ctx := context.Background()
		b := n.browser()

		verifier, challenge := pkce()
		f := &authFlow{b: b, login: "jean.dupont@univ.example", password: goodPassword, consent: "allow"}
		authURL := conf.AuthCodeURL("st-1", challenge, gooidc.Nonce("n-1"), oauth2.SetAuthURLParam("login_hint", "jean.dupont@univ.example"))
		code := f.code(t, authURL, "st-1")
		for _, step := range []string{"/oauth2/authorize", "/oidc/continue", "/login", "/login/password", "/oidc/consent", "/oauth2/authorize/callback"} {
			if !f.saw(step) {
				t.Errorf("the flow skipped %s: %v", step, f.visited)
			}
		}
		// The sign-in page names the application.
		if r := (&authFlow{b: n.browser()}).run(conf.AuthCodeURL("st-2", challenge)); !strings.Contains(r.Page.Body, "Pour continuer vers UNCloud") {
			t.Errorf("sign-in page of an authorization (%s):\n%s", r.URL, r.Page.Body)
		}
		tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		if tok.RefreshToken == "" {
			t.Fatal("offline_access gave no refresh token")
		}
		idt, claims := verifyID(t, p, "cloud", tok, "n-1")
		if idt.Subject != a.ID || claims["email"] != "jean.dupont@univ.example" || claims["email_verified"] != true ||
			claims["preferred_username"] != "jdupont" || claims["given_name"] != "Jdupont" || claims["sid"] == nil {
			t.Fatalf("ID token claims: %v", claims)
		}
		if h := jwtHeader(t, tok.Extra("id_token").(string)); h["alg"] != "ES256" {
			t.Fatalf("ID token header %v", h)
		}
		ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("userinfo: %v", err)
		}
		var uc map[string]any
		ui.Claims(&uc)
		if ui.Subject != a.ID || ui.Email != "jean.dupont@univ.example" || uc["family_name"] != "Test" || uc["name"] == "" {
			t.Fatalf("userinfo: %v", uc)
		}

		// The consent is remembered: the single sign-on session and the consent make it silent.
		f = &authFlow{b: b}
		verifier, challenge = pkce()
		code = f.code(t, conf.AuthCodeURL("st-2", challenge), "st-2")
		if f.saw("/login") || f.saw("/oidc/consent") {
			t.Fatalf("second authorization asked again: %v", f.visited)
		}
		if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err != nil {
			t.Fatal(err)
		}
		// prompt=consent asks again.
		f = &authFlow{b: b, consent: "allow"}
		_, challenge = pkce()
		f.code(t, conf.AuthCodeURL("st-3", challenge, oauth2.SetAuthURLParam("prompt", "consent")), "st-3")
		if !f.saw("/oidc/consent") {
			t.Fatalf("prompt=consent did not ask: %v", f.visited)
		}
		// Refusing sends access_denied to the application.
		f = &authFlow{b: b, consent: "deny"}
		_, challenge = pkce()
		r := f.run(conf.AuthCodeURL("st-4", challenge, oauth2.SetAuthURLParam("prompt", "consent")))
		if r.param("error") != "access_denied" || r.param("state") != "st-4" || r.param("code") != "" {
			t.Fatalf("refusal: %v %s", r.Redirect, r.Page.Body)
		}
	})
}

// signedIn returns a browser signed in as login, with the consent of app
// given (a first authorization), and the ID token it got.
func signedInFlow(t *testing.T, n *node, conf *oauth2.Config, login string) (*browser, *oauth2.Token) {
	t.Helper()
	b := n.browser()
	verifier, challenge := pkce()
	f := &authFlow{b: b, login: login, password: goodPassword, consent: "allow"}
	code := f.code(t, conf.AuthCodeURL("s0", challenge, gooidc.Nonce("n0")), "s0")
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return b, tok
}

// TestOIDCConfidentialClientAndFirstParty: a confidential client
// authenticates with its secret (PKCE optional), a wrong secret is
// invalid_client, and a first-party application skips the consent page.
func TestOIDCConfidentialClientAndFirstParty(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		secret := n.app("--id", "intranet", "--name", "Intranet", "--first-party", "--redirect-uri", appRedirect)
		if len(secret) < 43 {
			t.Fatalf("secret %q", secret)
		}
		conf := n.oauthConfig("intranet", secret)
		b := n.browser()
		f := &authFlow{b: b, login: "jdupont", password: goodPassword}
		code := f.code(t, conf.AuthCodeURL("s", gooidc.Nonce("nn")), "s")
		if f.saw("/oidc/consent") {
			t.Fatalf("a first-party application got a consent page: %v", f.visited)
		}
		bad := *conf
		bad.ClientSecret = "not-the-secret"
		if _, err := bad.Exchange(context.Background(), code); err == nil || !strings.Contains(err.Error(), "invalid_client") {
			t.Fatalf("wrong secret: %v", err)
		}
		tok, err := conf.Exchange(context.Background(), code)
		if err != nil {
			t.Fatalf("exchange with the secret: %v", err)
		}
		verifyID(t, n.provider(), "intranet", tok, "nn")
		if tok.RefreshToken != "" {
			t.Fatal("a refresh token without offline_access")
		}
		// The secret also works in the form (client_secret_post).
		f = &authFlow{b: b}
		code = f.code(t, conf.AuthCodeURL("s2"), "s2")
		status, out := n.tokenCall("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {appRedirect}, "client_id": {"intranet"}, "client_secret": {secret}}, "", "")
		if status != http.StatusOK || out["access_token"] == nil {
			t.Fatalf("client_secret_post: %d %v", status, out)
		}
	})
}

// TestOIDCAuthorizeErrors: errors before the redirect URI is known to be
// the application's are campusid pages; after, they go to the application.
func TestOIDCAuthorizeErrors(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		n.app("--id", "cloud", "--name", "UNCloud", "--public", "--redirect-uri", appRedirect)
		web := n.app("--id", "web", "--name", "Web", "--redirect-uri", "https://app.example/cb")
		conf := n.oauthConfig("cloud", "")
		b := n.browser()
		_, challenge := pkce()

		p := b.get(strings.Replace(conf.AuthCodeURL("s", challenge), "client_id=cloud", "client_id=nobody", 1))
		expectPage(t, "unknown client", p, http.StatusBadRequest, "n'est pas connue de campusid")
		wrong := *conf
		wrong.RedirectURL = "https://evil.example/cb"
		p = b.get(wrong.AuthCodeURL("s", challenge))
		expectPage(t, "unregistered redirect_uri", p, http.StatusBadRequest, "n'est pas enregistrée")
		if p.Location != "" {
			t.Fatalf("redirected to %s", p.Location)
		}
		// A confidential client's loopback or https URI is exact.
		wrongWeb := n.oauthConfig("web", web)
		wrongWeb.RedirectURL = "https://app.example/cb/other"
		expectPage(t, "confidential, other path", b.get(wrongWeb.AuthCodeURL("s")), http.StatusBadRequest, "n'est pas enregistrée")
		// A native application's loopback redirect may take any port (RFC 8252).
		otherPort := *conf
		otherPort.RedirectURL = "http://127.0.0.1:51234/cb"
		r := (&authFlow{b: b}).run(otherPort.AuthCodeURL("s", challenge, oauth2.SetAuthURLParam("prompt", "none")))
		if r.Redirect == nil || r.Redirect.Host != "127.0.0.1:51234" || r.param("error") != "login_required" || r.param("state") != "s" {
			t.Fatalf("prompt=none without a session on another loopback port: %v %s", r.Redirect, r.Page.Body)
		}

		for _, c := range []struct {
			name, url, want string
		}{
			{"public client without PKCE", conf.AuthCodeURL("s"), "invalid_request"},
			{"plain PKCE", conf.AuthCodeURL("s", oauth2.SetAuthURLParam("code_challenge", "abcdefghijabcdefghijabcdefghijabcdefghij123"),
				oauth2.SetAuthURLParam("code_challenge_method", "plain")), "invalid_request"},
			{"no openid scope", strings.Replace(conf.AuthCodeURL("s", challenge), "scope=openid+profile+email", "scope=profile", 1), "invalid_scope"},
			{"response_mode fragment", conf.AuthCodeURL("s", challenge, oauth2.SetAuthURLParam("response_mode", "fragment")), "invalid_request"},
			{"implicit flow", strings.Replace(conf.AuthCodeURL("s", challenge), "response_type=code", "response_type=id_token", 1), "unauthorized_client"},
		} {
			r := (&authFlow{b: b}).run(c.url)
			if r.Redirect == nil || !strings.HasPrefix(r.Redirect.String(), appRedirect) || r.param("error") != c.want || r.param("state") != "s" {
				t.Errorf("%s: %v (page %d %s), want %s at the redirect URI", c.name, r.Redirect, r.Page.Status, r.URL, c.want)
			}
		}

		// prompt=none: login_required without a session, consent_required without consent.
		r = (&authFlow{b: b}).run(conf.AuthCodeURL("s", challenge, oauth2.SetAuthURLParam("prompt", "none")))
		if r.param("error") != "login_required" {
			t.Fatalf("prompt=none without session: %v", r.Redirect)
		}
		b.mustSignIn("jdupont", goodPassword)
		r = (&authFlow{b: b}).run(conf.AuthCodeURL("s", challenge, oauth2.SetAuthURLParam("prompt", "none")))
		if r.param("error") != "consent_required" {
			t.Fatalf("prompt=none without consent: %v", r.Redirect)
		}

		// The code goes only to the browser session that completed the request.
		(&authFlow{b: b, consent: "allow"}).code(t, conf.AuthCodeURL("s", challenge), "s")
		p = b.get(conf.AuthCodeURL("s", challenge))
		cont := b.get(p.Location)
		if cont.Status != http.StatusSeeOther || !strings.Contains(cont.Location, "/oauth2/authorize/callback?id=") {
			t.Fatalf("continue: %d %s", cont.Status, cont.Location)
		}
		thief := n.browser()
		if p := thief.get(cont.Location); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/oidc/continue?id=") {
			t.Fatalf("another browser at the callback: %d %s", p.Status, p.Location)
		}
		if p := b.get(cont.Location); p.Status != http.StatusFound || !strings.HasPrefix(p.Location, appRedirect+"?code=") {
			t.Fatalf("the browser that signed in: %d %s", p.Status, p.Location)
		}
		if p := b.get(cont.Location); p.Status == http.StatusFound {
			t.Fatalf("a second code for one request: %s", p.Location)
		}
	})
}

// TestOIDCReauthentication: max_age and prompt=login ask for a fresh
// sign-in despite the session, and "Not you? Use another account" signs a
// second account in the same browser, without a private window.
func TestOIDCReauthentication(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		shared := n.user("partage", goodPassword, "partage.labo@univ.example")
		n.app("--id", "cloud", "--name", "UNCloud", "--public", "--redirect-uri", appRedirect)
		conf := n.oauthConfig("cloud", "")
		p := n.provider()
		ctx := context.Background()
		b, tok := signedInFlow(t, n, conf, "jean.dupont@univ.example")
		_, firstClaims := verifyID(t, p, "cloud", tok, "n0")

		n.clock.Advance(2 * time.Hour)
		// Within max_age: nothing asked.
		f := &authFlow{b: b}
		_, challenge := pkce()
		f.code(t, conf.AuthCodeURL("s", challenge, oauth2.SetAuthURLParam("max_age", "86400")), "s")
		if f.saw("/login") {
			t.Fatalf("max_age=86400 asked to sign in after 2 h: %v", f.visited)
		}
		// Past max_age: sign in again; the identify page is shown despite the session.
		verifier, challenge := pkce()
		authURL := conf.AuthCodeURL("s", challenge, gooidc.Nonce("n1"), oauth2.SetAuthURLParam("max_age", "3600"))
		r := (&authFlow{b: b}).run(authURL)
		if r.Page.Status != http.StatusOK || !strings.Contains(r.URL, "/login?") || !strings.Contains(r.URL, "reauth=1") {
			t.Fatalf("max_age passed: stopped on %s", r.URL)
		}
		expectPage(t, "identify page with a session", r.Page, http.StatusOK, "Confirmez qui vous êtes")
		f = &authFlow{b: b, login: "jdupont", password: goodPassword}
		code := f.code(t, authURL, "s")
		tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		_, secondClaims := verifyID(t, p, "cloud", tok, "n1")
		if d := secondClaims["auth_time"].(float64) - firstClaims["auth_time"].(float64); d < 7199 {
			t.Fatalf("auth_time moved %v s, want a fresh sign-in", d)
		}
		// prompt=login asks even right after a sign-in.
		f = &authFlow{b: b, login: "jdupont", password: goodPassword}
		_, challenge = pkce()
		f.code(t, conf.AuthCodeURL("s", challenge, oauth2.SetAuthURLParam("prompt", "login")), "s")
		if !f.saw("/login/password") {
			t.Fatalf("prompt=login did not ask: %v", f.visited)
		}

		// prompt=select_account shows the identifier page.
		_, challenge = pkce()
		r = (&authFlow{b: b}).run(conf.AuthCodeURL("s", challenge, oauth2.SetAuthURLParam("prompt", "select_account"),
			oauth2.SetAuthURLParam("login_hint", "jdupont")))
		expectPage(t, "select_account", r.Page, http.StatusOK, `value="jdupont"`, "Confirmez qui vous êtes")

		// "Not you? Use another account" from the consent page.
		verifier, challenge = pkce()
		r = (&authFlow{b: b}).run(conf.AuthCodeURL("s", challenge, gooidc.Nonce("n2"), oauth2.SetAuthURLParam("prompt", "consent")))
		expectPage(t, "consent page", r.Page, http.StatusOK, "Autoriser l'accès", "UNCloud", "jean.dupont@univ.example",
			"Ce n'est pas vous ? Utiliser un autre compte")
		m := regexp.MustCompile(`href="(/login\?[^"]+)"`).FindStringSubmatch(r.Page.Body)
		if m == nil {
			t.Fatalf("no link to another account:\n%s", r.Page.Body)
		}
		f = &authFlow{b: b, login: "partage.labo@univ.example", password: goodPassword, consent: "allow"}
		res := f.run(html.UnescapeString(m[1]))
		if res.Redirect == nil || res.param("code") == "" || res.param("state") != "s" {
			t.Fatalf("another account: stopped on %s\n%s", res.URL, res.Page.Body)
		}
		if !f.saw("/oidc/consent") {
			t.Fatalf("the second account was not asked for its consent: %v", f.visited)
		}
		tok, err = conf.Exchange(ctx, res.param("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if idt, _ := verifyID(t, p, "cloud", tok, "n2"); idt.Subject != shared.ID {
			t.Fatalf("the application got %s, want the second account %s", idt.Subject, shared.ID)
		}
		// The new sign-in replaced the browser's session.
		expectPage(t, "the browser's account", b.get("/account"), http.StatusOK, "partage.labo@univ.example")
		if got := sessionsOf(t, n, shared.ID); got != 1 {
			t.Fatalf("second account has %d sessions", got)
		}
	})
}

func sessionsOf(t *testing.T, n *node, accountID string) int {
	t.Helper()
	s, err := n.srv.db.ListSessions(context.Background(), accountID, n.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return len(s)
}

// TestOIDCRefreshRotationAndReuse: each refresh gives a new refresh token
// and refuses the old one; presenting a used one revokes the whole grant
// (the new tokens too). A code redeemed twice likewise revokes what the
// first redemption issued.
func TestOIDCRefreshRotationAndReuse(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		n.app("--id", "sync", "--name", "Sync", "--public", "--redirect-uri", appRedirect)
		rs := n.app("--id", "api", "--name", "Resource server", "--grant", "client_credentials")
		conf := n.oauthConfig("sync", "", "openid", "offline_access")
		_, tok := signedInFlow(t, n, conf, "jdupont")
		rt1, at1 := tok.RefreshToken, tok.AccessToken
		if rt1 == "" || !n.introspect(at1, "api", rs) {
			t.Fatalf("first tokens: refresh %q, access active %v", rt1, n.introspect(at1, "api", rs))
		}

		status, out := n.refresh("sync", "", rt1)
		rt2, _ := out["refresh_token"].(string)
		at2, _ := out["access_token"].(string)
		if status != http.StatusOK || rt2 == "" || rt2 == rt1 || at2 == "" || out["id_token"] == nil {
			t.Fatalf("refresh: %d %v", status, out)
		}
		if !n.introspect(at2, "api", rs) {
			t.Fatal("the refreshed access token is not active")
		}
		// The old refresh token is refused, and its reuse revokes the family.
		status, out = n.refresh("sync", "", rt1)
		if status != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("reuse of the old refresh token: %d %v", status, out)
		}
		status, out = n.refresh("sync", "", rt2)
		if status != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("the new refresh token after the reuse: %d %v", status, out)
		}
		if n.introspect(at2, "api", rs) || n.introspect(at1, "api", rs) {
			t.Fatal("access tokens of a revoked grant are still active")
		}
		events, err := n.srv.db.ListAudit(context.Background(), store.AuditFilter{Type: "oidc.refresh_reuse"})
		if err != nil || len(events) != 1 {
			t.Fatalf("audit of the reuse: %v %v", events, err)
		}

		// x/oauth2's TokenSource rotates too.
		b, tok := signedInFlow(t, n, conf, "jdupont")
		_ = b
		ts := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken})
		fresh, err := ts.Token()
		if err != nil || fresh.RefreshToken == tok.RefreshToken || fresh.AccessToken == "" {
			t.Fatalf("TokenSource: %v %v", fresh, err)
		}

		// A code redeemed twice: the second time is invalid_grant and revokes the first's tokens.
		b = n.browser()
		verifier, challenge := pkce()
		code := (&authFlow{b: b, login: "jdupont", password: goodPassword}).code(t, conf.AuthCodeURL("s", challenge), "s")
		first, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier)); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Fatalf("second redemption: %v", err)
		}
		if n.introspect(first.AccessToken, "api", rs) {
			t.Fatal("the first redemption's access token survived the code's reuse")
		}
		if status, out := n.refresh("sync", "", first.RefreshToken); out["error"] != "invalid_grant" {
			t.Fatalf("the first redemption's refresh token survived: %d %v", status, out)
		}
		// A wrong verifier is invalid_grant; a tampered refresh token too.
		verifier, challenge = pkce()
		code = (&authFlow{b: b}).code(t, conf.AuthCodeURL("s", challenge), "s")
		if _, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Fatalf("wrong verifier: %v", err)
		}
		if _, out := n.refresh("sync", "", fresh.RefreshToken+"x"); out["error"] != "invalid_grant" {
			t.Fatalf("tampered refresh token: %v", out)
		}
	})
}

// TestOIDCClientCredentialsIntrospectionRevocation: a service gets a JWT
// access token that verifies against the JWKS; introspection (RFC 7662)
// tells active from inactive for authenticated clients only; revocation
// (RFC 7009) ends a token at once, only for the client it was issued to.
func TestOIDCClientCredentialsIntrospectionRevocation(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		ctx := context.Background()
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		svc := n.app("--id", "svc", "--name", "Service", "--grant", "client_credentials", "--scope", "api.read", "--scope", "api.write")
		n.app("--id", "sync", "--name", "Sync", "--public", "--redirect-uri", appRedirect)
		other := n.app("--id", "other", "--name", "Other", "--redirect-uri", appRedirect)

		cc := clientcredentials.Config{ClientID: "svc", ClientSecret: svc, TokenURL: n.URL + "/oauth2/token", Scopes: []string{"api.read"}}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatalf("client credentials: %v", err)
		}
		jwt, err := n.provider().Verifier(&gooidc.Config{SkipClientIDCheck: true}).Verify(ctx, tok.AccessToken)
		if err != nil {
			t.Fatalf("the JWT access token does not verify: %v", err)
		}
		var claims map[string]any
		jwt.Claims(&claims)
		if jwt.Subject != "svc" || claims["client_id"] != "svc" || claims["scope"] != "api.read" {
			t.Fatalf("JWT claims: %v", claims)
		}
		if !n.introspect(tok.AccessToken, "svc", svc) {
			t.Fatal("the service's token is not active")
		}
		for name, c := range map[string]clientcredentials.Config{
			"identity scope":  {ClientID: "svc", ClientSecret: svc, TokenURL: cc.TokenURL, Scopes: []string{"openid"}},
			"unknown scope":   {ClientID: "svc", ClientSecret: svc, TokenURL: cc.TokenURL, Scopes: []string{"admin"}},
			"wrong secret":    {ClientID: "svc", ClientSecret: "nope", TokenURL: cc.TokenURL},
			"grant not given": {ClientID: "other", ClientSecret: other, TokenURL: cc.TokenURL},
		} {
			if _, err := c.Token(ctx); err == nil {
				t.Errorf("%s: got a token", name)
			}
		}

		// A person's (opaque) access token.
		conf := n.oauthConfig("sync", "", "openid", "offline_access")
		_, user := signedInFlow(t, n, conf, "jdupont")
		status, out := n.tokenCall("/oauth2/introspect", url.Values{"token": {user.AccessToken}}, "svc", svc)
		if status != http.StatusOK || out["active"] != true || out["sub"] != a.ID || out["client_id"] != "sync" || out["username"] != "jdupont" {
			t.Fatalf("introspection of a person's token: %d %v", status, out)
		}
		if out["email"] != nil {
			t.Fatalf("introspection tells the email: %v", out)
		}
		if n.introspect("not-a-token", "svc", svc) {
			t.Fatal("garbage is active")
		}
		if status, _ := n.tokenCall("/oauth2/introspect", url.Values{"token": {user.AccessToken}, "client_id": {"sync"}}, "", ""); status != http.StatusUnauthorized {
			t.Fatalf("introspection without client authentication: %d", status)
		}
		if status, _ := n.tokenCall("/oauth2/introspect", url.Values{"token": {user.AccessToken}}, "svc", "wrong"); status != http.StatusUnauthorized {
			t.Fatalf("introspection with a wrong secret: %d", status)
		}

		// Revocation: another client may not; the owner may, at once.
		status, out = n.tokenCall("/oauth2/revoke", url.Values{"token": {user.AccessToken}, "token_type_hint": {"access_token"}}, "other", other)
		if status != http.StatusBadRequest || out["error"] != "unauthorized_client" {
			t.Fatalf("revocation by another client: %d %v", status, out)
		}
		status, _ = n.tokenCall("/oauth2/revoke", url.Values{"token": {user.AccessToken}, "client_id": {"sync"}}, "", "")
		if status != http.StatusOK || n.introspect(user.AccessToken, "svc", svc) {
			t.Fatalf("revocation of the access token: %d", status)
		}
		req, _ := http.NewRequest("GET", n.URL+"/oauth2/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+user.AccessToken)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode < 400 {
			t.Fatalf("userinfo with a revoked token: %v %v", resp.StatusCode, err)
		}
		status, _ = n.tokenCall("/oauth2/revoke", url.Values{"token": {user.RefreshToken}, "client_id": {"sync"}}, "", "")
		if status != http.StatusOK {
			t.Fatalf("revocation of the refresh token: %d", status)
		}
		if _, out := n.refresh("sync", "", user.RefreshToken); out["error"] != "invalid_grant" {
			t.Fatalf("refresh after revocation: %v", out)
		}
		if status, _ := n.tokenCall("/oauth2/revoke", url.Values{"token": {"unknown"}, "client_id": {"sync"}}, "", ""); status != http.StatusOK {
			t.Fatalf("revoking an unknown token: %d, want 200 (RFC 7009)", status)
		}
		// The protocol endpoints answer cross-origin callers (no cookie, no CSRF check).
		req, _ = http.NewRequest("POST", n.URL+"/oauth2/revoke", strings.NewReader("token=x&client_id=sync"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://spa.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("cross-origin revocation: %v %v", resp.StatusCode, err)
		}
	})
}

// TestOIDCEndSession: RP-initiated logout asks for confirmation, ends the
// campusid session, and returns only to a registered post-logout URI.
func TestOIDCEndSession(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		n.app("--id", "cloud", "--name", "UNCloud", "--public", "--redirect-uri", appRedirect, "--post-logout-uri", "http://127.0.0.1:9/bye")
		conf := n.oauthConfig("cloud", "")
		b, tok := signedInFlow(t, n, conf, "jdupont")
		hint := tok.Extra("id_token").(string)

		p := b.get("/oauth2/end_session?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode())
		expectPage(t, "unregistered post-logout URI", p, http.StatusBadRequest, "vous n'avez pas été déconnecté")
		expectPage(t, "still signed in", b.get("/account"), http.StatusOK)

		p = b.get("/oauth2/end_session?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"http://127.0.0.1:9/bye"}, "state": {"xyz"}}.Encode())
		if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, "/oidc/logout?t=") {
			t.Fatalf("end_session: %d %s", p.Status, p.Location)
		}
		confirm := b.get(p.Location)
		expectPage(t, "confirmation", confirm, http.StatusOK, "UNCloud demande à vous déconnecter")
		expectPage(t, "still signed in before confirming", b.get("/account"), http.StatusOK)
		ticket := mustURL(t, p.Location).Query().Get("t")
		expectPage(t, "tampered ticket", b.post("/oidc/logout", url.Values{"t": {ticket[:len(ticket)-4] + "AAAA"}}), http.StatusBadRequest)
		done := b.post("/oidc/logout", url.Values{"t": {ticket}})
		if done.Status != http.StatusSeeOther || done.Location != "http://127.0.0.1:9/bye?state=xyz" {
			t.Fatalf("after confirming: %d %s", done.Status, done.Location)
		}
		expectRedirect(t, "signed out", b.get("/account"), toLogin)

		// Without a client, the browser lands on the sign-in page; with no session, nothing to confirm.
		p = b.get("/oauth2/end_session")
		next := b.get(p.Location)
		expectRedirect(t, "no session, no client", next, "/login?logged_out=1")
	})
}

// TestOIDCKeyRotation: `campusid keys rotate` makes a new key active; a
// token signed by the old one still verifies (the JWKS has both) and new
// tokens use the new key, here RS256 for an old client.
func TestOIDCKeyRotation(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		n.app("--id", "intranet", "--name", "Intranet", "--first-party", "--public", "--redirect-uri", appRedirect)
		conf := n.oauthConfig("intranet", "")
		b, old := signedInFlow(t, n, conf, "jdupont")

		out, err := n.cli("keys", "rotate", "--algorithm", "RS256")
		if err != nil || !strings.Contains(out, "new active key") {
			t.Fatalf("keys rotate: %v %s", err, out)
		}
		n.clock.Advance(time.Minute) // nodes read the active key again after at most 30 s
		verifier, challenge := pkce()
		code := (&authFlow{b: b}).code(t, conf.AuthCodeURL("s", challenge, gooidc.Nonce("n1")), "s")
		tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		oldHead, newHead := jwtHeader(t, old.Extra("id_token").(string)), jwtHeader(t, tok.Extra("id_token").(string))
		if oldHead["kid"] == newHead["kid"] || newHead["alg"] != "RS256" || oldHead["alg"] != "ES256" {
			t.Fatalf("headers before %v and after %v the rotation", oldHead, newHead)
		}
		p := n.provider() // a fresh client: fetches the JWKS now
		verifyID(t, p, "intranet", old, "n0")
		verifyID(t, p, "intranet", tok, "n1")
		list, err := n.cli("keys", "list")
		if err != nil || !strings.Contains(list, "active") || !strings.Contains(list, "published until") {
			t.Fatalf("keys list: %v\n%s", err, list)
		}
		// Once every token the old key signed has expired, it leaves the JWKS.
		n.clock.Advance(2 * time.Hour)
		resp, err := http.Get(n.URL + "/oauth2/keys")
		if err != nil {
			t.Fatal(err)
		}
		var jwks struct{ Keys []map[string]any }
		json.NewDecoder(resp.Body).Decode(&jwks)
		resp.Body.Close()
		if len(jwks.Keys) != 1 || jwks.Keys[0]["kid"] != newHead["kid"] {
			t.Fatalf("JWKS after the overlap: %v", jwks.Keys)
		}
	})
}

var hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// TestOIDCFormPost: response_mode=form_post answers with a page whose form
// posts the code to the application; its Content-Security-Policy lets
// forms go to the application's origin (the site-wide one allows only
// 'self'), and errors take the same way.
func TestOIDCFormPost(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		const target = "https://moodle.example/auth/oidc/"
		secret := n.app("--id", "moodle", "--name", "Moodle", "--redirect-uri", target)
		conf := n.oauthConfig("moodle", secret)
		conf.RedirectURL = target
		b := n.browser()
		f := &authFlow{b: b, login: "jdupont", password: goodPassword, consent: "allow"}
		r := f.run(conf.AuthCodeURL("st", gooidc.Nonce("nn"), oauth2.SetAuthURLParam("response_mode", "form_post")))
		if r.Redirect != nil || r.Page.Status != http.StatusOK {
			t.Fatalf("form_post: redirect %v, page %d", r.Redirect, r.Page.Status)
		}
		csp := r.Page.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "form-action 'self' https://moodle.example;") || strings.Contains(csp, "unsafe-inline") {
			t.Fatalf("CSP of the form_post page: %s", csp)
		}
		if !strings.Contains(r.Page.Body, `action="`+target+`"`) || !strings.Contains(r.Page.Body, `src="/static/formpost.js"`) {
			t.Fatalf("form_post page:\n%s", r.Page.Body)
		}
		fields := map[string]string{}
		for _, m := range hiddenRe.FindAllStringSubmatch(r.Page.Body, -1) {
			fields[m[1]] = html.UnescapeString(m[2])
		}
		if fields["state"] != "st" || fields["code"] == "" {
			t.Fatalf("posted fields: %v", fields)
		}
		tok, err := conf.Exchange(context.Background(), fields["code"])
		if err != nil {
			t.Fatal(err)
		}
		verifyID(t, n.provider(), "moodle", tok, "nn")
		// Other pages keep the strict policy.
		if csp := b.get("/account").Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self';") {
			t.Fatalf("account page CSP: %s", csp)
		}
		// An error in form_post mode is posted too.
		r = (&authFlow{b: b, consent: "deny"}).run(conf.AuthCodeURL("st2", oauth2.SetAuthURLParam("response_mode", "form_post"),
			oauth2.SetAuthURLParam("prompt", "consent")))
		if !strings.Contains(r.Page.Body, `name="error" value="access_denied"`) || !strings.Contains(r.Page.Body, `name="state" value="st2"`) {
			t.Fatalf("refusal in form_post mode:\n%s", r.Page.Body)
		}
	})
}

// TestOIDCAccountPageRevokesApplication: the account page lists the
// applications granted access; "Révoquer" removes the consent and ends the
// application's tokens, so it must ask again.
func TestOIDCAccountPageRevokesApplication(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		n.app("--id", "cloud", "--name", "UNCloud", "--public", "--redirect-uri", appRedirect)
		rs := n.app("--id", "api", "--name", "API", "--grant", "client_credentials")
		conf := n.oauthConfig("cloud", "", "openid", "email", "offline_access")
		b, tok := signedInFlow(t, n, conf, "jdupont")
		expectPage(t, "account page", b.get("/account"), http.StatusOK, "Applications autorisées", "UNCloud",
			"votre adresse email principale", "Révoquer")
		p := b.post("/account/apps/cloud/revoke", url.Values{})
		expectRedirect(t, "revoke", p, "/account?done=app_revoked#apps")
		expectPage(t, "after revoking", b.get("/account?done=app_revoked"), http.StatusOK, "L'accès de l'application a été retiré",
			"Aucune application n'a accès à votre compte")
		if n.introspect(tok.AccessToken, "api", rs) {
			t.Fatal("the access token survived the revocation")
		}
		if _, out := n.refresh("cloud", "", tok.RefreshToken); out["error"] != "invalid_grant" {
			t.Fatalf("refresh after the revocation: %v", out)
		}
		f := &authFlow{b: b, consent: "allow"}
		_, challenge := pkce()
		f.code(t, conf.AuthCodeURL("s", challenge), "s")
		if !f.saw("/oidc/consent") {
			t.Fatalf("the application was not asked for consent again: %v", f.visited)
		}
		expectPage(t, "unknown application", b.post("/account/apps/nothing/revoke", url.Values{}), http.StatusNotFound)
	})
}

// TestOIDCClientCommandsAndConfiguration: `campusid client` validates what
// it registers and shows the secret once; applications of the
// configuration file are upserted at start, managed only there, and
// removed when the file drops them.
func TestOIDCClientCommandsAndConfiguration(t *testing.T) {
	n := newNode(t, store.SQLite)
	for name, args := range map[string][]string{
		"http redirect":       {"--id", "a", "--name", "A", "--redirect-uri", "http://app.example/cb"},
		"wildcard":            {"--id", "a", "--name", "A", "--redirect-uri", "https://*.example/cb"},
		"fragment":            {"--id", "a", "--name", "A", "--redirect-uri", "https://app.example/cb#x"},
		"private scheme":      {"--id", "a", "--name", "A", "--redirect-uri", "com.example.app:/cb"},
		"public service":      {"--id", "a", "--name", "A", "--public", "--grant", "client_credentials"},
		"no redirect":         {"--id", "a", "--name", "A"},
		"unknown grant":       {"--id", "a", "--name", "A", "--redirect-uri", "https://app.example/cb", "--grant", "password"},
		"javascript redirect": {"--id", "a", "--name", "A", "--public", "--redirect-uri", "javascript:alert(1)"},
	} {
		if out, err := n.cli(append([]string{"client", "add"}, args...)...); err == nil {
			t.Errorf("%s: accepted\n%s", name, out)
		}
	}
	if s := n.app("--id", "desktop", "--name", "Desktop", "--public", "--redirect-uri", "com.example.desktop:/cb",
		"--redirect-uri", "http://127.0.0.1/cb", "--grant", "authorization_code", "--grant", "refresh_token", "--grant", "device_code"); s != "" {
		t.Fatalf("a public client got a secret %q", s)
	}
	out, err := n.cli("client", "add", "--id", "desktop", "--name", "Again", "--public", "--redirect-uri", "http://127.0.0.1/cb")
	if err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("duplicate id: %v %s", err, out)
	}
	secret := n.app("--id", "wiki", "--name", "Wiki", "--redirect-uri", "https://wiki.example/cb", "--post-logout-uri", "https://wiki.example/")
	c, err := n.srv.db.OIDCClientByID(context.Background(), "wiki")
	if err != nil || c.SecretHash == secret || strings.Contains(c.SecretHash, secret) || len(c.SecretHash) != 64 {
		t.Fatalf("stored secret: %q (secret %q) %v", c.SecretHash, secret, err)
	}
	if out, _ := n.cli("client", "show", "wiki"); strings.Contains(out, secret) || !strings.Contains(out, "https://wiki.example/cb") {
		t.Fatalf("show:\n%s", out)
	}
	out, err = n.cli("client", "update", "wiki", "--name", "Le wiki", "--first-party", "--new-secret")
	newSecret := secretRe.FindStringSubmatch(out)
	if err != nil || newSecret == nil || newSecret[1] == secret {
		t.Fatalf("update: %v\n%s", err, out)
	}
	if out, _ := n.cli("client", "list"); !strings.Contains(out, "Le wiki") || !strings.Contains(out, "first-party") || !strings.Contains(out, "desktop") {
		t.Fatalf("list:\n%s", out)
	}
	if _, err := n.cli("client", "delete", "wiki"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.db.OIDCClientByID(context.Background(), "wiki"); err == nil {
		t.Fatal("deleted client still there")
	}

	// The configuration file.
	dbURL := n.srv.cfg.Database.URL
	secretFile := t.TempDir() + "/nextcloud.secret"
	os.WriteFile(secretFile, []byte("s3cret-s3cret-s3cret-s3cret-s3cret-42\n"), 0o600)
	cfg := testConfig(t, dbURL)
	cfg.OIDC.Clients = []config.OIDCClient{
		{ID: "nextcloud", Name: "UNCloud", SecretFile: secretFile, RedirectURIs: []string{"https://cloud.example/apps/user_oidc/code"},
			Grants: []string{"authorization_code", "refresh_token", "client_credentials"}, Scopes: []string{"openid", "profile", "email", "offline_access", "files"}},
		{ID: "spa", Name: "SPA", Public: true, RedirectURIs: []string{"https://spa.example/"}},
	}
	m := startNode(t, cfg, nil)
	cc := clientcredentials.Config{ClientID: "nextcloud", ClientSecret: "s3cret-s3cret-s3cret-s3cret-s3cret-42", TokenURL: m.URL + "/oauth2/token", Scopes: []string{"files"}}
	if _, err := cc.Token(context.Background()); err != nil {
		t.Fatalf("a client of the configuration file: %v", err)
	}
	if _, err := m.cli("client", "update", "nextcloud", "--name", "X"); err == nil || !strings.Contains(err.Error(), "configuration file") {
		t.Fatalf("update of a configured client: %v", err)
	}
	cfg.OIDC.Clients = cfg.OIDC.Clients[1:]
	startNode(t, cfg, nil)
	if _, err := n.srv.db.OIDCClientByID(context.Background(), "nextcloud"); err == nil {
		t.Fatal("a client dropped from the file is still there")
	}
	if _, err := n.srv.db.OIDCClientByID(context.Background(), "desktop"); err != nil {
		t.Fatalf("a client of the CLI was removed with the file's: %v", err)
	}
	// A bad configuration stops the start with every problem.
	cfg.OIDC.Clients = []config.OIDCClient{{ID: "bad", Name: "Bad", Public: true, RedirectURIs: []string{"http://bad.example/cb"}}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := openStore(context.Background(), cfg, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := newServer(cfg, db, log, time.Now); err == nil || !strings.Contains(err.Error(), "http only for localhost") {
		t.Fatalf("a bad redirect URI in the file: %v", err)
	}
}

// TestOIDCSingleUseUnderConcurrency: of parallel redemptions of one code,
// or of one refresh token, exactly one succeeds.
func TestOIDCSingleUseUnderConcurrency(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		n.app("--id", "sync", "--name", "Sync", "--public", "--first-party", "--redirect-uri", appRedirect)
		conf := n.oauthConfig("sync", "", "openid", "offline_access")
		b, tok := signedInFlow(t, n, conf, "jdupont")
		race := func(form url.Values) int {
			const N = 8
			codes := make(chan int, N)
			for range N {
				go func() {
					status, _ := n.tokenCall("/oauth2/token", form, "", "")
					codes <- status
				}()
			}
			ok := 0
			for range N {
				if <-codes == http.StatusOK {
					ok++
				}
			}
			return ok
		}
		if ok := race(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"sync"}}); ok != 1 {
			t.Fatalf("%d parallel refreshes succeeded, want 1", ok)
		}
		verifier, challenge := pkce()
		code := (&authFlow{b: b}).code(t, conf.AuthCodeURL("s", challenge), "s")
		if ok := race(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
			"client_id": {"sync"}, "code_verifier": {verifier}}); ok != 1 {
			t.Fatalf("%d parallel redemptions of one code succeeded, want 1", ok)
		}
	})
}

// TestOIDCPasswordResetEndsApplications: a password reset ends the
// application's refresh and access tokens (invalid_grant), as it ends the
// sessions; the application must send the person through sign-in again.
func TestOIDCPasswordResetEndsApplications(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := recNode(t, d, nil)
		recAccount(t, n)
		n.app("--id", "cloud", "--name", "UNCloud", "--public", "--redirect-uri", appRedirect)
		rs := n.app("--id", "api", "--name", "API", "--grant", "client_credentials")
		conf := n.oauthConfig("cloud", "", "openid", "offline_access")
		_, tok := signedInFlow(t, n, conf, recAddr)

		b := n.browser()
		recAsk(b, recAddr, "link")
		link := recLink(t, n, recAddr)
		p := recSetPassword(b, "/recover/link", url.Values{"token": {recLinkToken(link)}}, recNew)
		recWantSignedIn(t, b, p, "Votre mot de passe a été réinitialisé")

		if status, out := n.refresh("cloud", "", tok.RefreshToken); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("refresh after the reset: %d %v", status, out)
		}
		if n.introspect(tok.AccessToken, "api", rs) {
			t.Fatal("the access token survived the reset")
		}
	})
}
