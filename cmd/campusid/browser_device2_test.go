package main

// The second part of the journey of source document 000 (issue 4): "And the
// same with a second account in the same browser through 'use another
// account'". The browser is signed in as one person (the single sign-on
// session of account A); the desktop sync client is to be connected to
// another account, B (a shared laboratory account, say). The link of the
// client opens the consent page naming A; "Ce n'est pas vous ? Utiliser un
// autre compte" signs B in, in the same browser (the source document needs
// a private window for this today), and after "Autoriser l'accès" the
// client holds B's tokens and the browser is B's.
//
// The desktop client and the checks of the consent page are those of
// TestBrowserSeed000 (helpers s000...).
//
// Run: CAMPUSID_TEST_REQUIRE_ALL=1 go test ./cmd/campusid/ -run TestBrowserSecondAccount -v

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"campusid/internal/browsertest"
)

const (
	s2Ident = "labo-bio"
	s2Name  = "Laboratoire de biologie"
	s2Addr  = "labo.bio@univ.example"
)

// s2SignIn signs ident in through the identifier and password pages, from
// the current page (the sign-in page), and screenshots both.
func s2SignIn(t *testing.T, b *browsertest.Browser, p ssPages, ident, shot string) {
	t.Helper()
	b.WaitText(frMsg.T("login.login_label"))
	p.look(shot)
	b.Fill(`#login`, ident)
	b.Click(`form[action="/login"] button[type="submit"]`)
	b.WaitText(frMsg.T("login.password_label"))
	p.look(shot + "-password")
	b.Fill(`input[autocomplete="current-password"]`, goodPassword)
	b.Click(`form[action="/login/password"] button[type="submit"]`)
}

// s2ConsentFor checks that the device consent page names the account
// (name, address) and not the other one.
func s2ConsentFor(t *testing.T, b *browsertest.Browser, shot, name, addr, otherName, otherAddr string) {
	t.Helper()
	for _, s := range []string{name, addr} {
		if !b.HasText(s) {
			t.Errorf("%s: the consent page does not name the account (%q)", shot, s)
		}
	}
	for _, s := range []string{otherName, otherAddr} {
		if b.HasText(s) {
			t.Errorf("%s: the consent page names the other account (%q)", shot, s)
		}
	}
}

func TestBrowserSecondAccount(t *testing.T) {
	var idA, idB string
	n := ssNode(t, nil, func(dbURL string) {
		idA = ssUserAdd(t, dbURL, goodPassword, "--email", s000Addr, "--id", s000Ident, "--name", s000Name,
			"--given-name", "Camille", "--family-name", "Martin")
		idB = ssUserAdd(t, dbURL, goodPassword, "--email", s2Addr, "--id", s2Ident, "--name", s2Name)
	})
	s000WallClock(t, n.clock)
	l := frMsg
	ctx := context.Background()
	desk := s000NewDesktop(t, n)
	b := browsertest.New(t, browsertest.WithLang("fr-FR"))
	p := ssPages{t, b, "fr"}

	// 1. Account A is signed in, in this browser (single sign-on session).
	b.Go(n.URL + "/login")
	s2SignIn(t, b, p, s000Ident, "a-login")
	b.WaitText(l.T("layout.signed_in_as", s000Name))
	p.look("a-account")
	sessionA := cookieNamed(b, "campusid_session")
	if sessionA == nil || sessionA.Value == "" {
		t.Fatal("no session cookie after A signed in")
	}

	// 2. The client is to be connected to B: its link opens the consent
	// page, straight (the session of A is reused), naming A.
	da, ch := desk.connect()
	b.Go(da.VerificationURIComplete)
	s000Consent(t, b, p, da, "consent-as-a")
	s2ConsentFor(t, b, "consent-as-a", s000Name, s000Addr, s2Name, s2Addr)
	if strings.Contains(b.URL(), "/login") || s000NavRedirects(b) != 0 {
		t.Errorf("the link went through the sign-in (%s): A's session was not reused", b.URL())
	}

	// 3. "Ce n'est pas vous ? Utiliser un autre compte": the sign-in page,
	// despite the session, in the same browser.
	notYou := `main a[href*="reauth=1"]`
	if got := b.Text(notYou); got != l.T("oidc.consent.not_you") {
		t.Fatalf("the link to another account says %q, want %q", got, l.T("oidc.consent.not_you"))
	}
	b.Click(notYou)
	b.WaitText(l.T("login.reauth"))
	u, _ := url.Parse(b.URL())
	if u == nil || u.Path != "/login" || u.Query().Get("return_to") != "/device?user_code="+da.UserCode {
		t.Errorf("« Utiliser un autre compte » leads to %s, want /login?return_to=/device?user_code=%s", b.URL(), da.UserCode)
	}
	s2SignIn(t, b, p, s2Addr, "b-login")

	// 4. Back on the consent page, now naming B, with the same code; allow.
	s2WaitConsentB(t, b, p, da)
	s000Allow(t, b, p, "b-allowed")

	// 5. The client's tokens are B's (ID token verified by go-oidc, userinfo).
	tok := desk.tokens(ch, "second account")
	idt, claims := verifyID(t, n.provider(), s000ClientID, tok, "")
	if idt.Subject != idB || claims["preferred_username"] != s2Ident {
		t.Errorf("the client's ID token is for sub %q (%v), want B (%s, %s); A is %s", idt.Subject, claims["preferred_username"], idB, s2Ident, idA)
	}
	if who, err := desk.sync(tok); err != nil || who != s2Ident {
		t.Errorf("the client syncs as %q (%v), want %s", who, err, s2Ident)
	}
	if fresh, err := desk.refresh(tok); err != nil {
		t.Errorf("the client's refresh: %v", err)
	} else if idt, _ := verifyID(t, n.provider(), s000ClientID, fresh, ""); idt.Subject != idB {
		t.Errorf("the refreshed ID token is for %q, want B %q", idt.Subject, idB)
	}
	if g, err := n.srv.db.ListOIDCGrants(ctx, idA); err != nil || len(g) != 0 {
		t.Errorf("A has grants %+v (%v), want none", g, err)
	}
	if g, err := n.srv.db.ListOIDCGrants(ctx, idB); err != nil || len(g) != 1 || g[0].DeviceName != s000App+" ("+s000UA+")" {
		t.Errorf("B's grants: %+v (%v), want the desktop client", g, err)
	}

	// 6. The browser is now B's: a new session (no fixation), A's ended.
	b.Go(n.URL + "/account")
	b.WaitText(l.T("account.title"))
	if !b.HasText(l.T("layout.signed_in_as", s2Name)) || b.HasText(l.T("layout.signed_in_as", s000Name)) {
		t.Error("the account page is not B's")
	}
	var devices []string
	b.Eval(`[...document.querySelectorAll('ul.devices > li > strong')].map(e => e.innerText.trim())`, &devices)
	if want := s000App + " (" + s000UA + ")"; len(devices) != 1 || devices[0] != want {
		t.Errorf("B's account page lists the connected devices %q, want %q", devices, want)
	}
	p.look("b-account")
	if c := cookieNamed(b, "campusid_session"); c == nil || c.Value == sessionA.Value {
		t.Error("the session cookie was not replaced by B's sign-in")
	}
	if got := sessionsOf(t, n, idA); got != 0 {
		t.Errorf("A still has %d sessions after B signed in the same browser", got)
	}
	if got := sessionsOf(t, n, idB); got != 1 {
		t.Errorf("B has %d sessions, want 1", got)
	}
	desk.takeAnswers()
	noConsoleErrors(t, b, "second account")
}

// s2WaitConsentB waits for the device consent page after B signed in:
// same code, B named, "Autoriser l'accès".
func s2WaitConsentB(t *testing.T, b *browsertest.Browser, p ssPages, da *oauth2.DeviceAuthResponse) {
	t.Helper()
	l := frMsg
	b.WaitText(l.T("device.consent.intro_device", s000App, s000UA))
	if u, _ := url.Parse(b.URL()); u == nil || u.Path != "/device" {
		t.Errorf("after B signed in: %s, want the consent page at /device", b.URL())
	}
	if got := b.Text(`#device-code .code`); got != da.UserCode {
		t.Errorf("the page shows the code %q, the client shows %q", got, da.UserCode)
	}
	if got := b.Text(`button[name=decision][value=allow]`); got != "Autoriser l'accès" {
		t.Errorf("the allow button says %q", got)
	}
	s2ConsentFor(t, b, "consent-as-b", s2Name, s2Addr, s000Name, s000Addr)
	p.look("consent-as-b")
}
