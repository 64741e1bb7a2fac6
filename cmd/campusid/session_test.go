package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

// Single sign-on session and logout tests (issue 2, items 7 and 8).

// signedIn returns a browser signed in as a new account jdupont, and the account.
func signedIn(t *testing.T, n *node, remember bool) (*browser, store.Account) {
	t.Helper()
	a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
	b := n.browser()
	ref := mustIdentify(b, "jdupont", "")
	expectRedirect(t, "sign-in", passwordStep(b, ref, goodPassword, remember), "/account")
	return b, a
}

const toLogin = "/login?return_to=%2Faccount" // where /account sends a browser without a session

func TestLiveSessionSkipsLogin(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")

		// Signed out, return_to survives both steps.
		b := n.browser()
		p := b.get("/login?return_to=/account/x")
		expectPage(t, "step 1 with return_to", p, http.StatusOK, `name="return_to" value="/account/x"`)
		ref := mustIdentify(b, "jdupont", "/account/x")
		expectRedirect(t, "sign-in with return_to", passwordStep(b, ref, goodPassword, false), "/account/x")

		// Signed in, /login goes straight to the target.
		expectRedirect(t, "live session with return_to", b.get("/login?return_to=/account/x"), "/account/x")
		expectRedirect(t, "live session without return_to", b.get("/login"), "/account")
	})
}

func TestReturnToOnlyLocalPaths(t *testing.T) {
	n := newNode(t, store.SQLite)
	n.user("jdupont", goodPassword, "jean.dupont@univ.example")
	live := n.browser()
	live.mustSignIn("jdupont", goodPassword)
	for _, tc := range []struct{ name, target string }{
		{"absolute URL", "https://evil.example/phish"},
		{"scheme-relative", "//evil.example"},
		{"backslash", `/\evil.example`},
		{"tab", "/\t/evil.example"},
		{"javascript", "javascript:alert(1)"},
		{"relative", "evil.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectRedirect(t, "live session", live.get("/login?return_to="+url.QueryEscape(tc.target)), "/account")

			b := n.browser()
			p := b.get("/login?return_to=" + url.QueryEscape(tc.target))
			expectPage(t, "step 1", p, http.StatusOK, `name="return_to" value=""`)
			// Posted directly with the form, it is dropped too.
			ref := mustIdentify(b, "jdupont", tc.target)
			expectRedirect(t, "sign-in", passwordStep(b, ref, goodPassword, false), "/account")
		})
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		publicURL string // "": the test server's http address
		remember  bool
		cookie    string
		secure    bool
	}{
		{"http", "", false, "campusid_session", false},
		{"http with remember-me", "", true, "campusid_session", false},
		{"https", "https://id.univ.example", false, "__Host-campusid_session", true},
		{"https with remember-me", "https://id.univ.example", true, "__Host-campusid_session", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, storetest.URL(t, store.SQLite))
			if tc.publicURL != "" {
				cfg.PublicURL = tc.publicURL
			}
			n := startNode(t, cfg, nil)
			n.user("jdupont", goodPassword, "jean.dupont@univ.example")
			b := n.browser()
			ref := mustIdentify(b, "jdupont", "")
			p := passwordStep(b, ref, goodPassword, tc.remember)
			expectRedirect(t, "sign-in", p, "/account")
			c := setCookie(p, tc.cookie)
			if c == nil {
				t.Fatalf("no %s cookie set; Set-Cookie: %q", tc.cookie, p.Header.Values("Set-Cookie"))
			}
			if other := map[string]string{"campusid_session": "__Host-campusid_session", "__Host-campusid_session": "campusid_session"}[tc.cookie]; setCookie(p, other) != nil {
				t.Fatalf("%s set as well", other)
			}
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" || c.Secure != tc.secure {
				t.Fatalf("cookie %q: want HttpOnly, SameSite=Lax, Path=/, no Domain, Secure=%v", c.Raw, tc.secure)
			}
			if len(c.Value) < 22 { // 128 bits in base64
				t.Fatalf("session token %q is too short", c.Value)
			}
			if tc.remember {
				if c.MaxAge < 29*24*3600 || c.MaxAge > 30*24*3600 || c.Expires.IsZero() {
					t.Fatalf("remember-me cookie %q: want Max-Age of about 30 days and Expires", c.Raw)
				}
			} else if c.MaxAge != 0 || !c.Expires.IsZero() || strings.Contains(c.Raw, "Max-Age") {
				t.Fatalf("cookie %q: a session without remember-me must end with the browser (no Max-Age, no Expires)", c.Raw)
			}
			if tc.secure && !strings.HasPrefix(p.Header.Get("Strict-Transport-Security"), "max-age=") {
				t.Fatal("no Strict-Transport-Security over https")
			}
		})
	}
}

func TestSessionIdleTimeout(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d) // session.idle_timeout 8h, absolute_timeout 24h
		b, _ := signedIn(t, n, false)

		// Used every 6 hours, it outlives the idle timeout.
		for _, h := range []int{6, 12} {
			n.clock.Advance(6 * time.Hour)
			expectPage(t, "in use after "+time.Duration(h*int(time.Hour)).String(), b.get("/account"), http.StatusOK)
		}
		// Left unused for the idle timeout, it ends (20h: before the absolute timeout).
		n.clock.Advance(8 * time.Hour)
		p := b.get("/account")
		expectRedirect(t, "idle for 8h", p, toLogin)
		if c := setCookie(p, "campusid_session"); c == nil || c.MaxAge >= 0 {
			t.Fatal("the dead session's cookie is not cleared")
		}

		// Just under the idle timeout is still fine.
		b2 := n.browser()
		b2.mustSignIn("jdupont", goodPassword)
		n.clock.Advance(8*time.Hour - time.Minute)
		expectPage(t, "idle for just under 8h", b2.get("/account"), http.StatusOK)
	})
}

func TestSessionAbsoluteTimeout(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		b, _ := signedIn(t, n, false)
		for range 3 { // 6h, 12h, 18h
			n.clock.Advance(6 * time.Hour)
			expectPage(t, "in use", b.get("/account"), http.StatusOK)
		}
		n.clock.Advance(6 * time.Hour) // 24h, idle only 6h
		expectRedirect(t, "after session.absolute_timeout", b.get("/account"), toLogin)
	})
}

func TestRememberMeLifetime(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d) // session.remember_for 30 days
		b, _ := signedIn(t, n, true)
		n.clock.Advance(10 * 24 * time.Hour) // far past the idle and absolute timeouts, unused
		expectPage(t, "remembered after 10 idle days", b.get("/account"), http.StatusOK)
		n.clock.Advance(19*24*time.Hour + 23*time.Hour)
		expectPage(t, "remembered just before 30 days", b.get("/account"), http.StatusOK)
		n.clock.Advance(2 * time.Hour) // used daily or not, it ends after remember_for
		expectRedirect(t, "remembered after 30 days", b.get("/account"), toLogin)
	})
}

func TestSessionRecordsAuthentication(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		signInAt := n.clock.Now()
		b, a := signedIn(t, n, true)
		token := b.cookie("campusid_session").Value

		n.clock.Advance(2 * time.Hour)
		expectPage(t, "account", b.get("/account"), http.StatusOK)
		ss, err := n.srv.db.ListSessions(context.Background(), a.ID, n.clock.Now())
		if err != nil || len(ss) != 1 {
			t.Fatalf("sessions: %v %v", ss, err)
		}
		s := ss[0]
		if d := s.AuthTime.Sub(signInAt); d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("auth_time %v, want the sign-in time %v", s.AuthTime, signInAt)
		}
		if s.AuthMethods != "pwd" {
			t.Errorf("auth_methods %q, want pwd", s.AuthMethods)
		}
		if !s.Remember {
			t.Error("remember-me not recorded")
		}
		if !s.LastSeenAt.After(s.AuthTime.Add(time.Hour)) {
			t.Errorf("last seen %v not updated by use (auth time %v)", s.LastSeenAt, s.AuthTime)
		}
		if s.TokenHash == token || s.TokenHash != session.HashToken(token) {
			t.Error("the session token is not stored as its SHA-256")
		}
	})
}

var logoutButton = `<form method="post" action="/logout">`

func TestLogoutButtonOnSignedInPages(t *testing.T) {
	n := newNode(t, store.SQLite)
	b, _ := signedIn(t, n, false)
	for _, path := range []string{"/account", "/account?done=password", "/logout", "/verify?token=abc", "/dev/mail", "/no/such/page"} {
		p := b.get(path)
		if !strings.Contains(p.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %s", path, p.Status, p.Header.Get("Content-Type"))
		}
		if !strings.Contains(p.Body, logoutButton) {
			t.Errorf("%s (%d): no sign-out button", path, p.Status)
		}
	}
	if p := n.browser().get("/login"); strings.Contains(p.Body, logoutButton) {
		t.Error("sign-out button shown to a signed-out visitor")
	}
}

func TestLogout(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		b, a := signedIn(t, n, true)
		old := b.cookie("campusid_session").Value

		p := b.post("/logout", url.Values{})
		expectRedirect(t, "logout", p, "/login?logged_out=1")
		if c := setCookie(p, "campusid_session"); c == nil || c.MaxAge >= 0 {
			t.Fatal("logout does not clear the cookie")
		}
		expectPage(t, "after logout", b.follow(p), http.StatusOK, "Vous êtes déconnecté·e", `autocomplete="username"`)
		expectRedirect(t, "account after logout", b.get("/account"), toLogin)

		// The old cookie, replayed, opens nothing.
		thief := n.browser()
		p = thief.do("GET", "/account", nil, "Cookie", "campusid_session="+old)
		expectRedirect(t, "replayed cookie", p, toLogin)
		ss, _ := n.srv.db.ListSessions(context.Background(), a.ID, n.clock.Now())
		if len(ss) != 0 {
			t.Fatalf("live sessions after logout: %+v", ss)
		}
		if got := auditTypes(auditOf(t, n, a.ID, "logout")); len(got) != 1 {
			t.Fatalf("logout audit events: %v", got)
		}

		en := n.browser()
		en.lang = "en"
		expectPage(t, "confirmation in English", en.get("/login?logged_out=1"), http.StatusOK, "You are signed out")
	})
}

func TestLogoutGetAsksConfirmation(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		b, _ := signedIn(t, n, false)
		p := b.get("/logout")
		expectPage(t, "GET /logout", p, http.StatusOK, "Voulez-vous vous déconnecter", logoutButton)
		if c := setCookie(p, "campusid_session"); c != nil {
			t.Fatalf("GET /logout touched the cookie: %q", c.Raw)
		}
		expectPage(t, "account after GET /logout", b.get("/account"), http.StatusOK)
		// Without a session there is nothing to confirm.
		expectRedirect(t, "GET /logout signed out", n.browser().get("/logout"), "/login?logged_out=1")
	})
}
