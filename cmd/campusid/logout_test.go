package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"campusid/internal/delivery"
	"campusid/internal/oidc"
	"campusid/internal/store"
)

// rpServer is the back-channel logout endpoint of test applications: every
// path is one application; fail[path] answers 503 that many times first.
type rpServer struct {
	*httptest.Server
	mu     sync.Mutex
	got    map[string][]string // path -> logout tokens received (accepted)
	tries  map[string]int
	fail   map[string]int
	badReq []string
}

func newRPServer(t *testing.T) *rpServer {
	rp := &rpServer{got: map[string][]string{}, tries: map[string]int{}, fail: map[string]int{}}
	rp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp.mu.Lock()
		defer rp.mu.Unlock()
		rp.tries[r.URL.Path]++
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			rp.badReq = append(rp.badReq, r.Method+" "+r.Header.Get("Content-Type"))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if rp.fail[r.URL.Path] > 0 {
			rp.fail[r.URL.Path]--
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		rp.got[r.URL.Path] = append(rp.got[r.URL.Path], r.PostFormValue("logout_token"))
		w.Header().Set("Cache-Control", "no-store")
	}))
	t.Cleanup(rp.Close)
	return rp
}

func (rp *rpServer) tokens(path string) []string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]string(nil), rp.got[path]...)
}

// waitFor waits until the application at path has received n logout
// tokens, advancing the node's clock so that retries come due.
func (rp *rpServer) waitFor(t *testing.T, n *node, path string, want int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if got := rp.tokens(path); len(got) >= want {
			return got
		}
		n.clock.Advance(time.Second)
		n.srv.delivery.Signal()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s received %d logout tokens, want %d", path, len(rp.tokens(path)), want)
	return nil
}

// settle lets the delivery worker finish its passes (for "nothing more").
func settle(n *node) {
	for range 3 {
		n.srv.delivery.Process(context.Background())
		n.clock.Advance(time.Second)
	}
}

// verifyLogoutToken checks a logout token as an application would: the
// signature against the node's JWKS and iss/aud/exp with go-oidc, then the
// typ header, events, sid, sub, jti, iat and the absence of nonce.
func verifyLogoutToken(t *testing.T, n *node, raw, clientID, sid, sub string) map[string]any {
	t.Helper()
	p := n.provider()
	if _, err := p.Verifier(&gooidc.Config{ClientID: clientID, Now: n.clock.Now}).Verify(context.Background(), raw); err != nil {
		t.Fatalf("logout token for %s does not verify: %v", clientID, err)
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := jws.Signatures[0].Header.ExtraHeaders["typ"]; typ != "logout+jwt" {
		t.Fatalf("typ %v, want logout+jwt", typ)
	}
	var c map[string]any
	json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c)
	if c["iss"] != n.URL || c["aud"] != clientID || c["sid"] != sid || c["sub"] != sub {
		t.Fatalf("claims %v, want iss %s aud %s sid %s sub %s", c, n.URL, clientID, sid, sub)
	}
	ev, _ := c["events"].(map[string]any)
	if m, ok := ev[oidc.BackchannelLogoutEvent].(map[string]any); !ok || len(m) != 0 || len(ev) != 1 {
		t.Fatalf("events %v", c["events"])
	}
	if _, has := c["nonce"]; has {
		t.Fatal("a logout token must not have a nonce")
	}
	if jti, _ := c["jti"].(string); len(jti) < 20 {
		t.Fatalf("jti %v", c["jti"])
	}
	if iat, _ := c["iat"].(float64); int64(iat) != n.clock.Now().Unix() && (int64(iat) > n.clock.Now().Unix() || int64(iat) < n.clock.Now().Add(-time.Hour).Unix()) {
		t.Fatalf("iat %v, now %v", c["iat"], n.clock.Now().Unix())
	}
	return c
}

// authorizeWith runs a code flow in browser b (its single sign-on session
// reused) and returns the tokens.
func authorizeWith(t *testing.T, b *browser, conf *oauth2.Config) *oauth2.Token {
	t.Helper()
	verifier, challenge := pkce()
	f := &authFlow{b: b, login: "jdupont", password: goodPassword, consent: "allow"}
	code := f.code(t, conf.AuthCodeURL("s1", challenge, gooidc.Nonce("n1")), "s1")
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

func userinfoStatus(t *testing.T, n *node, access string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", n.URL+"/oauth2/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// logoutDeliveries lists the back-channel deliveries once all are settled
// (delivered or given up), waiting up to 5 s: the application may have
// received a token a moment before the worker that sent it records the
// attempt.
func logoutDeliveries(t *testing.T, n *node) []store.Delivery {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ds, err := n.srv.db.ListDeliveries(context.Background(), oidc.DeliveryKindBackchannelLogout)
		if err != nil {
			t.Fatal(err)
		}
		settled := true
		for _, d := range ds {
			if d.State == store.DeliveryPending {
				settled = false
			}
		}
		if settled || time.Now().After(deadline) {
			return ds
		}
	}
}

// TestBackchannelLogoutOnSignOut: after POST /logout, each application of
// the session with a back-channel logout URI receives one logout token,
// which verifies against the JWKS (signature, iss, aud, typ, events, sid
// of the ID token, sub, no nonce); the application without a URI gets
// nothing; the session's access tokens stop working while the
// offline_access grant (a device) survives; discovery advertises it.
func TestBackchannelLogoutOnSignOut(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		rp := newRPServer(t)
		n.app("--id", "cloud", "--name", "UNCloud", "--public", "--redirect-uri", appRedirect, "--backchannel-logout-uri", rp.URL+"/cloud")
		n.app("--id", "wiki", "--name", "Wiki", "--public", "--redirect-uri", appRedirect, "--backchannel-logout-uri", rp.URL+"/wiki")
		n.app("--id", "plain", "--name", "Plain", "--public", "--redirect-uri", appRedirect)

		var disc map[string]any
		resp, err := http.Get(n.URL + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&disc)
		resp.Body.Close()
		if disc["backchannel_logout_supported"] != true || disc["backchannel_logout_session_supported"] != true {
			t.Fatalf("discovery: backchannel %v %v", disc["backchannel_logout_supported"], disc["backchannel_logout_session_supported"])
		}

		b, cloudTok := signedInFlow(t, n, n.oauthConfig("cloud", ""), "jdupont")
		wikiTok := authorizeWith(t, b, n.oauthConfig("wiki", "", "openid", "offline_access"))
		plainTok := authorizeWith(t, b, n.oauthConfig("plain", ""))
		_, cloudID := verifyID(t, n.provider(), "cloud", cloudTok, "n0")
		_, wikiID := verifyID(t, n.provider(), "wiki", wikiTok, "n1")
		sid, _ := cloudID["sid"].(string)
		if sid == "" || wikiID["sid"] != sid || cloudID["sub"] != a.ID {
			t.Fatalf("sid %v / %v, sub %v", cloudID["sid"], wikiID["sid"], cloudID["sub"])
		}
		if len(logoutDeliveries(t, n)) != 0 {
			t.Fatal("deliveries before any logout")
		}

		expectRedirect(t, "logout", b.post("/logout", url.Values{}), "/login?logged_out=1")
		cloud := rp.waitFor(t, n, "/cloud", 1)
		wiki := rp.waitFor(t, n, "/wiki", 1)
		c1 := verifyLogoutToken(t, n, cloud[0], "cloud", sid, a.ID)
		c2 := verifyLogoutToken(t, n, wiki[0], "wiki", sid, a.ID)
		if c1["jti"] == c2["jti"] {
			t.Fatal("two logout tokens share a jti")
		}
		settle(n)
		if len(rp.tokens("/cloud")) != 1 || len(rp.tokens("/wiki")) != 1 || len(rp.tokens("/plain")) != 0 || len(rp.badReq) != 0 {
			t.Fatalf("received cloud %d wiki %d plain %d, bad %v", len(rp.tokens("/cloud")), len(rp.tokens("/wiki")), len(rp.tokens("/plain")), rp.badReq)
		}
		ds := logoutDeliveries(t, n)
		if len(ds) != 2 {
			t.Fatalf("%d deliveries, want 2 (none for the application without a URI)", len(ds))
		}
		for _, dl := range ds {
			if dl.State != store.DeliveryDelivered || dl.Attempts != 1 || dl.DeliveredAt == nil {
				t.Fatalf("delivery %+v", dl)
			}
		}
		for name, tok := range map[string]*oauth2.Token{"cloud": cloudTok, "plain": plainTok} {
			if st := userinfoStatus(t, n, tok.AccessToken); st == http.StatusOK {
				t.Fatalf("%s access token after logout: userinfo %d", name, st)
			}
		}
		// The offline_access grant is a device: it outlives the session
		// (Back-Channel Logout 1.0, 2.7), its access token too.
		if st := userinfoStatus(t, n, wikiTok.AccessToken); st != http.StatusOK {
			t.Fatalf("wiki (offline_access) access token after logout: userinfo %d", st)
		}
		if st, out := n.refresh("wiki", "", wikiTok.RefreshToken); st != http.StatusOK {
			t.Fatalf("the offline_access grant did not survive the logout: %d %v", st, out)
		}
	})
}

// TestBackchannelLogoutRetries: an application that is down (503) gets
// the same logout token once it is back; every attempt is recorded.
func TestBackchannelLogoutRetries(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		rp := newRPServer(t)
		rp.fail["/cloud"] = 2
		n.app("--id", "cloud", "--name", "UNCloud", "--public", "--redirect-uri", appRedirect, "--backchannel-logout-uri", rp.URL+"/cloud")
		b, tok := signedInFlow(t, n, n.oauthConfig("cloud", ""), "jdupont")
		_, idc := verifyID(t, n.provider(), "cloud", tok, "n0")

		b.post("/logout", url.Values{})
		got := rp.waitFor(t, n, "/cloud", 1)
		verifyLogoutToken(t, n, got[0], "cloud", idc["sid"].(string), a.ID)
		ds := logoutDeliveries(t, n)
		if len(ds) != 1 || ds[0].State != store.DeliveryDelivered || ds[0].Attempts != 3 {
			t.Fatalf("deliveries %+v", ds)
		}
		att, err := n.srv.db.DeliveryAttempts(context.Background(), ds[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(att) != 3 || att[0].Status != 503 || att[1].Status != 503 || att[2].Status != 200 ||
			!strings.Contains(att[0].Error, "503") || att[2].Error != "" {
			t.Fatalf("attempts %+v", att)
		}
		settle(n)
		if len(rp.tokens("/cloud")) != 1 {
			t.Fatalf("received %d tokens after delivery", len(rp.tokens("/cloud")))
		}
	})
}

// TestBackchannelLogoutRPInitiated: RP-initiated logout from one
// application ends the campusid session and the other application of the
// session is told through the back channel.
func TestBackchannelLogoutRPInitiated(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		rp := newRPServer(t)
		n.app("--id", "cloud", "--name", "UNCloud", "--public", "--redirect-uri", appRedirect, "--post-logout-uri", "http://127.0.0.1:9/bye")
		n.app("--id", "wiki", "--name", "Wiki", "--public", "--redirect-uri", appRedirect, "--backchannel-logout-uri", rp.URL+"/wiki")
		b, cloudTok := signedInFlow(t, n, n.oauthConfig("cloud", ""), "jdupont")
		wikiTok := authorizeWith(t, b, n.oauthConfig("wiki", ""))
		_, idc := verifyID(t, n.provider(), "wiki", wikiTok, "n1")

		p := b.get("/oauth2/end_session?" + url.Values{"id_token_hint": {cloudTok.Extra("id_token").(string)},
			"post_logout_redirect_uri": {"http://127.0.0.1:9/bye"}}.Encode())
		ticket := mustURL(t, p.Location).Query().Get("t")
		if done := b.post("/oidc/logout", url.Values{"t": {ticket}}); done.Location != "http://127.0.0.1:9/bye" {
			t.Fatalf("after confirming: %d %s", done.Status, done.Location)
		}
		got := rp.waitFor(t, n, "/wiki", 1)
		verifyLogoutToken(t, n, got[0], "wiki", idc["sid"].(string), a.ID)
	})
}

// TestBackchannelLogoutFromAccountPage: "sign out this session" and "sign
// out all other sessions" on the account page send logout tokens for the
// sessions they end, and only for those.
func TestBackchannelLogoutFromAccountPage(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		rp := newRPServer(t)
		n.app("--id", "cloud", "--name", "UNCloud", "--public", "--redirect-uri", appRedirect, "--backchannel-logout-uri", rp.URL+"/cloud")
		laptop, laptopTok := signedInFlow(t, n, n.oauthConfig("cloud", ""), "jdupont")
		phone, phoneTok := signedInFlow(t, n, n.oauthConfig("cloud", ""), "jdupont")
		office, officeTok := signedInFlow(t, n, n.oauthConfig("cloud", ""), "jdupont")
		sidOf := func(tok *oauth2.Token) string {
			_, c := verifyID(t, n.provider(), "cloud", tok, "n0")
			return c["sid"].(string)
		}
		if sidOf(phoneTok) != portalSessionID(t, phone) {
			t.Fatal("the ID token's sid is not the session id")
		}

		expectRedirect(t, "sign out the phone", laptop.post("/account/sessions/"+portalSessionID(t, phone)+"/revoke", url.Values{}),
			"/account?done=session_ended#sessions")
		got := rp.waitFor(t, n, "/cloud", 1)
		verifyLogoutToken(t, n, got[0], "cloud", sidOf(phoneTok), a.ID)
		if st := userinfoStatus(t, n, officeTok.AccessToken); st != http.StatusOK {
			t.Fatalf("another session's access token: userinfo %d", st)
		}

		laptop.post("/account/sessions/revoke-others", url.Values{})
		got = rp.waitFor(t, n, "/cloud", 2)
		verifyLogoutToken(t, n, got[1], "cloud", sidOf(officeTok), a.ID)
		settle(n)
		if len(rp.tokens("/cloud")) != 2 {
			t.Fatalf("%d logout tokens, want 2 (the laptop is still signed in)", len(rp.tokens("/cloud")))
		}
		if st := userinfoStatus(t, n, laptopTok.AccessToken); st != http.StatusOK {
			t.Fatalf("the laptop's access token: userinfo %d", st)
		}
		_ = office
	})
}

// TestBackchannelLogoutOnDisable: a session ended outside any request of
// the node (`campusid user disable` from the command line, in its own
// process) is still propagated: the node's worker finds it in the
// database.
func TestBackchannelLogoutOnDisable(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		rp := newRPServer(t)
		n.app("--id", "cloud", "--name", "UNCloud", "--public", "--redirect-uri", appRedirect, "--backchannel-logout-uri", rp.URL+"/cloud")
		_, tok := signedInFlow(t, n, n.oauthConfig("cloud", ""), "jdupont")
		_, idc := verifyID(t, n.provider(), "cloud", tok, "n0")
		if _, err := n.cli("user", "disable", "jdupont"); err != nil {
			t.Fatal(err)
		}
		got := rp.waitFor(t, n, "/cloud", 1)
		verifyLogoutToken(t, n, got[0], "cloud", idc["sid"].(string), a.ID)
	})
}

// TestWakeOnSessionEnd: a request that ends a session (whatever the method)
// wakes the delivery worker, so single logout leaves at once; one that ends
// none, even a POST, does not.
func TestWakeOnSessionEnd(t *testing.T) {
	n := newNode(t, store.SQLite)
	a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
	n.browser().mustSignIn("jdupont", goodPassword)
	dw := &delivery.Worker{Wake: make(chan struct{}, 1)}
	woken := func(method string, end bool) bool {
		h := wakeOnSessionEnd(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if end {
				if _, err := n.srv.db.RevokeOtherSessions(r.Context(), a.ID, "", n.clock.Now()); err != nil {
					t.Error(err)
				}
			}
		}), dw)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/x", nil))
		select {
		case <-dw.Wake:
			return true
		default:
			return false
		}
	}
	if woken(http.MethodPost, false) {
		t.Error("a POST that ended no session woke the worker")
	}
	if !woken(http.MethodGet, true) {
		t.Error("a GET that ended a session did not wake the worker")
	}
	if woken(http.MethodGet, true) {
		t.Error("a request that found no session left to end woke the worker")
	}
}
