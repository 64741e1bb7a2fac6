package main

// The journey of source document 000 (issue 4), in headless Chromium: a
// Nextcloud desktop sync client connected through the device flow loses
// access when the university password changes ("Hors ligne"), and the
// person reconnects it through the browser, where the single sign-on
// session is reused (no password asked) before "Autoriser l'accès".
//
// The desktop client is Go code in the test: golang.org/x/oauth2's
// DeviceAuth, DeviceAccessToken (polling in the background while the person
// is in the browser, as a sync client does) and TokenSource (the refresh),
// with the ID tokens verified by go-oidc. The node's clock follows the wall
// clock here, so that the polling interval of the server and the client's
// real sleeps agree (no slow_down).
//
// Run: CAMPUSID_TEST_REQUIRE_ALL=1 go test ./cmd/campusid/ -run TestBrowserSeed000 -v

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"campusid/internal/browsertest"
)

const (
	s000Ident    = "cmartin"
	s000Name     = "Camille Martin"
	s000Addr     = "camille.martin@univ.example"
	s000ClientID = "nextcloud-desktop"
	s000App      = "Nextcloud Desktop"
	s000UA       = "Nextcloud-desktop/3.16 (test)"
)

// s000WallClock makes the node's clock advance with the wall clock until
// the end of the test.
func s000WallClock(t *testing.T, c *clock) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-tk.C:
				c.Advance(now.Sub(last))
				last = now
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// s000Desktop is the sync client: it names itself by its user agent and
// notes every answer of the token endpoint ("tokens" or the error code).
type s000Desktop struct {
	t    *testing.T
	n    *node
	conf *oauth2.Config
	ctx  context.Context

	mu      sync.Mutex
	answers []string
}

func s000NewDesktop(t *testing.T, n *node) *s000Desktop {
	n.app("--id", s000ClientID, "--name", s000App, "--public", "--grant", "device_code", "--grant", "refresh_token")
	conf := n.oauthConfig(s000ClientID, "", "openid", "profile", "offline_access")
	conf.Endpoint.DeviceAuthURL = n.URL + "/oauth2/device_authorization"
	d := &s000Desktop{t: t, n: n, conf: conf}
	d.ctx = context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: d, Timeout: 10 * time.Second})
	return d
}

func (d *s000Desktop) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", s000UA)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || r.URL.Path != "/oauth2/token" {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var out struct {
		Error  string `json:"error"`
		Access string `json:"access_token"`
	}
	json.Unmarshal(body, &out)
	answer := out.Error
	if out.Access != "" {
		answer = "tokens"
	}
	d.mu.Lock()
	d.answers = append(d.answers, answer)
	d.mu.Unlock()
	return resp, err
}

// takeAnswers returns the token endpoint's answers since the last call.
func (d *s000Desktop) takeAnswers() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.answers
	d.answers = nil
	return a
}

type s000Result struct {
	tok *oauth2.Token
	err error
}

// connect starts a device flow ("Se connecter" in the client) and polls in
// the background; the channel gets the outcome.
func (d *s000Desktop) connect() (*oauth2.DeviceAuthResponse, <-chan s000Result) {
	d.t.Helper()
	da, err := d.conf.DeviceAuth(d.ctx)
	if err != nil {
		d.t.Fatalf("device authorization: %v", err)
	}
	if da.VerificationURIComplete != d.n.URL+"/device?user_code="+da.UserCode {
		d.t.Fatalf("verification_uri_complete %q for user code %q", da.VerificationURIComplete, da.UserCode)
	}
	ch := make(chan s000Result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
		defer cancel()
		tok, err := d.conf.DeviceAccessToken(ctx, da)
		ch <- s000Result{tok, err}
	}()
	return da, ch
}

// tokens waits for the background polling and checks how it went: pending
// answers, then tokens, never slow_down.
func (d *s000Desktop) tokens(ch <-chan s000Result, what string) *oauth2.Token {
	d.t.Helper()
	var res s000Result
	select {
	case res = <-ch:
	case <-time.After(20 * time.Second):
		d.t.Fatalf("%s: the client got no answer after 20 s of polling", what)
	}
	answers := d.takeAnswers()
	if res.err != nil {
		d.t.Fatalf("%s: device access token: %v (token endpoint answers: %v)", what, res.err, answers)
	}
	for i, a := range answers {
		if (i < len(answers)-1 && a != "authorization_pending") || (i == len(answers)-1 && a != "tokens") {
			d.t.Errorf("%s: token endpoint answers %v, want authorization_pending... then tokens", what, answers)
			break
		}
	}
	if res.tok.RefreshToken == "" {
		d.t.Fatalf("%s: no refresh token although offline_access was granted", what)
	}
	return res.tok
}

// refresh is the client renewing its access as its access token expired.
func (d *s000Desktop) refresh(tok *oauth2.Token) (*oauth2.Token, error) {
	old := *tok
	old.AccessToken, old.Expiry = "", time.Now().Add(-time.Minute)
	return d.conf.TokenSource(d.ctx, &old).Token()
}

// sync is the client using its access: the userinfo endpoint, with the
// access token, says whose files these are.
func (d *s000Desktop) sync(tok *oauth2.Token) (string, error) {
	ui, err := d.n.provider().UserInfo(d.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return "", err
	}
	var c struct {
		User string `json:"preferred_username"`
	}
	ui.Claims(&c)
	return c.User, nil
}

// s000NavRedirects is the number of redirects of the current page's
// navigation, as the browser counted them.
func s000NavRedirects(b *browsertest.Browser) int {
	var n int
	b.Eval(`performance.getEntriesByType('navigation')[0].redirectCount`, &n)
	return n
}

// s000Consent checks the device consent page of the current tab (the
// application, the device, the code, the account, the offline access).
func s000Consent(t *testing.T, b *browsertest.Browser, p ssPages, da *oauth2.DeviceAuthResponse, shot string) {
	t.Helper()
	l := frMsg
	b.WaitText(l.T("device.consent.intro_device", s000App, s000UA))
	if u, _ := url.Parse(b.URL()); u == nil || u.Path != "/device" {
		t.Errorf("%s: the consent page is at %s, want /device", shot, b.URL())
	}
	if got := b.Text(`#device-code .code`); got != da.UserCode {
		t.Errorf("%s: the page shows the code %q, the client shows %q", shot, got, da.UserCode)
	}
	if got := b.Text(`button[name=decision][value=allow]`); got != "Autoriser l'accès" {
		t.Errorf("%s: the allow button says %q, want « Autoriser l'accès »", shot, got)
	}
	for _, s := range []string{s000Name, s000Addr, l.T("oidc.scope.offline_access"), l.T("oidc.consent.not_you")} {
		if !b.HasText(s) {
			t.Errorf("%s: the consent page lacks %q", shot, s)
		}
	}
	p.look(shot)
}

// s000Allow presses "Autoriser l'accès" and looks at the page that says it is done.
func s000Allow(t *testing.T, b *browsertest.Browser, p ssPages, shot string) {
	t.Helper()
	b.Click(`button[name=decision][value=allow]`)
	b.WaitText(frMsg.T("device.done_allowed_text", s000App))
	p.look(shot)
}

// TestBrowserSeed000 plays source document 000: the sync client connects
// through the device flow (sign-in by identifier and password, "Autoriser
// l'accès"); the password is reset through self-service; the client's
// refresh fails with invalid_grant ("Hors ligne"); the person reconnects it,
// the single sign-on session of the reset is reused (no password page), and
// the client works again, refresh included.
func TestBrowserSeed000(t *testing.T) {
	n := ssNode(t, nil, func(dbURL string) {
		ssUserAdd(t, dbURL, goodPassword, "--email", s000Addr, "--id", s000Ident, "--name", s000Name,
			"--given-name", "Camille", "--family-name", "Martin")
	})
	s000WallClock(t, n.clock)
	l := frMsg
	desk := s000NewDesktop(t, n)
	b := browsertest.New(t, browsertest.WithLang("fr-FR"))
	p := ssPages{t, b, "fr"}

	// 1. "Se connecter" in the client: the browser opens the link, signs in.
	da, ch := desk.connect()
	b.Go(da.VerificationURIComplete)
	b.WaitText(l.T("login.login_label"))
	if u := b.URL(); !strings.Contains(u, "/login?return_to=%2Fdevice%3Fuser_code%3D") {
		t.Errorf("signed out, the link leads to %s, want /login?return_to=/device?user_code=...", u)
	}
	p.look("login")
	b.Fill(`#login`, s000Ident)
	b.Click(`form[action="/login"] button[type="submit"]`)
	b.WaitText(l.T("login.password_label"))
	p.look("login-password")
	b.Fill(`input[autocomplete="current-password"]`, goodPassword)
	b.Click(`form[action="/login/password"] button[type="submit"]`)
	s000Consent(t, b, p, da, "device-consent")
	s000Allow(t, b, p, "device-allowed")

	tok := desk.tokens(ch, "first connection")
	idt, claims := verifyID(t, n.provider(), s000ClientID, tok, "")
	sub := idt.Subject
	if claims["preferred_username"] != s000Ident || sub == "" || strings.Contains(sub, "@") {
		t.Errorf("first ID token: sub %q, claims %v", sub, claims)
	}
	if who, err := desk.sync(tok); err != nil || who != s000Ident {
		t.Fatalf("the client cannot sync after connecting: %q %v", who, err)
	}
	// The client renews its access now and then; it keeps the newest
	// refresh token (rotation), so that the failure after the reset is the
	// reset's doing, not the reuse of a spent token.
	if fresh, err := desk.refresh(tok); err != nil || fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken {
		t.Fatalf("the client's refresh before the reset: %v (rotated: %v)", err, fresh != nil && fresh.RefreshToken != tok.RefreshToken)
	} else {
		tok = fresh
	}
	desk.takeAnswers()

	// 2. The university password changes: reset through self-service, by link.
	const newPassword = bNewPass
	b.Go(n.URL + "/recover")
	b.WaitText(l.T("recover.intro"))
	p.look("recover")
	b.Fill(`#email`, s000Addr)
	b.Click(`form[action="/recover"] button[type="submit"]`)
	b.WaitText(l.T("recover.spam_hint"))
	p.look("recover-sent")
	text := ssMailbox(p, n, s000Addr, "Choisir un nouveau mot de passe", "mailbox-reset-link")
	b.Go(ssLinkIn(t, text, n.URL, "/recover/link"))
	b.WaitText(l.T("recover.password_intro"))
	p.look("new-password")
	b.Fill(`#new-password`, newPassword)
	b.Fill(`#confirm-password`, newPassword)
	wantStates(t, "new password", ruleStates(b), ssAllOK)
	b.Click(`form[action="/recover/link"] button[type="submit"]`)
	b.WaitText(l.T("recover.done"))
	if !b.HasText(l.T("layout.signed_in_as", s000Name)) {
		t.Error("not signed in after the reset")
	}
	p.look("account-after-reset")
	session := cookieNamed(b, "campusid_session")
	if session == nil || session.Value == "" {
		t.Fatal("no session cookie after the reset")
	}

	// The message about the change names the client that was signed out.
	var changed string
	for deadline := time.Now().Add(10 * time.Second); changed == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, m := range n.mails() {
			if m.To == s000Addr && m.Subject == "Votre mot de passe a été changé" {
				changed = m.Text
				break
			}
		}
	}
	if !strings.Contains(changed, "- "+s000App+" ("+s000UA+")") {
		t.Errorf("the password-change message does not list %s among the devices signed out:\n%s", s000App, changed)
	}

	// 3. "Hors ligne": the client's refresh is refused with invalid_grant.
	_, err := desk.refresh(tok)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("the client's refresh after the reset: %v, want invalid_grant", err)
	}
	if who, err := desk.sync(tok); err == nil {
		t.Errorf("the access token issued before the reset still reads userinfo (%q)", who)
	}
	desk.takeAnswers()

	// 4. "Se connecter" again: the single sign-on session is reused, no
	// password asked, straight to "Autoriser l'accès".
	da2, ch2 := desk.connect()
	if da2.UserCode == da.UserCode || da2.DeviceCode == da.DeviceCode {
		t.Errorf("the second device flow reuses the codes of the first")
	}
	b.Go(da2.VerificationURIComplete)
	s000Consent(t, b, p, da2, "device-consent-sso")
	if r := s000NavRedirects(b); r != 0 {
		t.Errorf("the link went through %d redirects before the consent page, want none (no sign-in)", r)
	}
	if c := b.Count(`input[autocomplete="current-password"], input[type=password]`); c != 0 {
		t.Errorf("the consent page after the reset has %d password fields", c)
	}
	if strings.Contains(b.URL(), "/login") {
		t.Errorf("the link led to %s: the session was not reused", b.URL())
	}
	s000Allow(t, b, p, "device-allowed-again")
	if u := b.URL(); strings.Contains(u, "/login") {
		t.Errorf("after allowing: %s", u)
	}
	if c := cookieNamed(b, "campusid_session"); c == nil || c.Value != session.Value {
		t.Errorf("the session cookie changed during the reconnection: the session was not the one of the reset")
	}

	// 5. The files sync again, and the next refresh works.
	tok2 := desk.tokens(ch2, "reconnection")
	idt2, _ := verifyID(t, n.provider(), s000ClientID, tok2, "")
	if idt2.Subject != sub {
		t.Errorf("the reconnection's ID token is for %q, the first was for %q", idt2.Subject, sub)
	}
	if who, err := desk.sync(tok2); err != nil || who != s000Ident {
		t.Fatalf("the client cannot sync after reconnecting: %q %v", who, err)
	}
	tok3, err := desk.refresh(tok2)
	if err != nil {
		t.Fatalf("the client's refresh after reconnecting: %v", err)
	}
	if tok3.RefreshToken == "" || tok3.RefreshToken == tok2.RefreshToken {
		t.Errorf("the refresh after reconnecting did not rotate the refresh token")
	}
	if who, err := desk.sync(tok3); err != nil || who != s000Ident {
		t.Errorf("the client cannot sync with the refreshed token: %q %v", who, err)
	}

	// The page where a code is typed by hand (verification_uri without the code).
	b.Go(n.URL + "/device")
	b.WaitText(l.T("device.code_label"))
	p.look("device-code-form")

	// The account page lists the reconnected client, once.
	b.Go(n.URL + "/account")
	b.WaitText(l.T("account.title"))
	var devices []string
	b.Eval(`[...document.querySelectorAll('ul.devices > li > strong')].map(e => e.innerText.trim())`, &devices)
	if want := s000App + " (" + s000UA + ")"; len(devices) != 1 || devices[0] != want {
		t.Errorf("the account page lists the connected devices %q, want only %q (the reconnected one)", devices, want)
	}
	p.look("account-devices")
	noConsoleErrors(t, b, "seed 000")
}
