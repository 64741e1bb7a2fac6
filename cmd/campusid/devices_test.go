package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"campusid/internal/store"
)

// Connected devices and applications (issue 4, item 6): every working
// refresh-token grant is on the account page with "sign out this device";
// a voluntary password change ends them only when asked, an administrator's
// set-password unless --keep-sessions; the password-changed email says
// which were signed out and how to reconnect them.

const (
	devWindowsUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) mirall/3.13.0 (Nextcloud, windows-10.0.19045 ClientArchitecture: x86_64)"
	devLinuxUA   = "Mozilla/5.0 (X11; Linux x86_64) mirall/3.13.0 (Nextcloud, ubuntu-24.04 ClientArchitecture: x86_64)"
)

// devUATransport sends every request with a User-Agent (the desktop client's).
type devUATransport struct{ ua string }

func (u devUATransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", u.ua)
	return http.DefaultTransport.RoundTrip(r)
}

// devGrant runs a code flow with offline_access in browser b (signing in as
// login and allowing when asked) and exchanges the code as a client whose
// User-Agent is ua: one more grant.
func devGrant(t *testing.T, b *browser, conf *oauth2.Config, login, ua string) *oauth2.Token {
	t.Helper()
	verifier, challenge := pkce()
	f := &authFlow{b: b, login: login, password: goodPassword, consent: "allow"}
	code := f.code(t, conf.AuthCodeURL("st", challenge), "st")
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: devUATransport{ua}})
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	return tok
}

// devGrants returns the account's live grants.
func devGrants(t *testing.T, n *node, accountID string) []store.OIDCLiveGrant {
	t.Helper()
	g, err := n.srv.db.ListLiveOIDCGrants(context.Background(), accountID, n.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// devGrantOf returns the live grant whose user agent is ua.
func devGrantOf(t *testing.T, n *node, accountID, ua string) store.OIDCLiveGrant {
	t.Helper()
	for _, g := range devGrants(t, n, accountID) {
		if g.UserAgent == ua {
			return g
		}
	}
	t.Fatalf("no live grant with user agent %q", ua)
	return store.OIDCLiveGrant{}
}

// devRefreshOK refreshes rt and returns the new refresh token, failing unless it works.
func devRefreshOK(t *testing.T, n *node, rt string) string {
	t.Helper()
	status, out := n.refresh("nc", "", rt)
	if status != http.StatusOK || out["refresh_token"] == nil {
		t.Fatalf("refresh: %d %v", status, out)
	}
	return out["refresh_token"].(string)
}

func devRefreshDead(t *testing.T, n *node, rt, what string) {
	t.Helper()
	if status, out := n.refresh("nc", "", rt); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Fatalf("%s: refresh answered %d %v, want invalid_grant", what, status, out)
	}
}

func devFR(t time.Time) string { return t.Local().Format("02/01/2006 à 15:04") }

// devSetup: an account with two grants of the desktop client "Nextcloud
// Desktop" (Windows, then Linux an hour later), the browser signed in.
func devSetup(t *testing.T, n *node, ident string) (store.Account, *browser, *oauth2.Token, *oauth2.Token) {
	t.Helper()
	a := n.user(ident, goodPassword, ident+"@univ.example")
	conf := n.oauthConfig("nc", "", "openid", "email", "offline_access")
	b := n.browser()
	win := devGrant(t, b, conf, ident, devWindowsUA)
	n.clock.Advance(time.Hour)
	lin := devGrant(t, b, conf, ident, devLinuxUA)
	return a, b, win, lin
}

func devApps(n *node) string {
	n.app("--id", "nc", "--name", "Nextcloud Desktop", "--public", "--redirect-uri", appRedirect)
	return n.app("--id", "api", "--name", "API", "--grant", "client_credentials")
}

// TestDevicesListedAndSignedOut: the account page lists both grants under
// the application with the device, when each was connected and last used;
// "Déconnecter cet appareil" ends one (its refresh and access tokens die,
// the other grant works, grant.revoke is audited); another account's grant,
// or one already ended, is 404; a refresh moves last_used_at.
func TestDevicesListedAndSignedOut(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		devApps(n)
		a, b, win, lin := devSetup(t, n, "jdupont")
		gw, gl := devGrantOf(t, n, a.ID, devWindowsUA), devGrantOf(t, n, a.ID, devLinuxUA)
		if !gl.CreatedAt.After(gw.CreatedAt) {
			t.Fatalf("grants' times: %v %v", gw.CreatedAt, gl.CreatedAt)
		}

		// last_used_at moves at each refresh.
		n.clock.Advance(2 * time.Hour)
		lin.RefreshToken = devRefreshOK(t, n, lin.RefreshToken)
		if got := devGrantOf(t, n, a.ID, devLinuxUA).LastUsedAt; !got.Equal(n.clock.Now().Truncate(time.Millisecond)) {
			t.Fatalf("last_used_at after a refresh: %v, want %v", got, n.clock.Now())
		}
		gl = devGrantOf(t, n, a.ID, devLinuxUA)

		p := b.get("/account")
		expectPage(t, "account page", p, http.StatusOK, "Applications autorisées", "Nextcloud Desktop", "Appareils connectés",
			"Windows", "Linux", "Déconnecter cet appareil", "Nextcloud Desktop — Windows", "Nextcloud Desktop — Linux",
			"Révoquer l'accès",
			fmt.Sprintf("connecté le %s · dernière utilisation le %s", devFR(gw.CreatedAt), devFR(gw.LastUsedAt)),
			fmt.Sprintf("connecté le %s · dernière utilisation le %s", devFR(gl.CreatedAt), devFR(gl.LastUsedAt)),
			"/account/devices/"+gw.ID+"/signout", "/account/devices/"+gl.ID+"/signout")
		if strings.Count(p.Body, `/signout"><button`) != 2 {
			t.Fatalf("want two sign-out buttons")
		}

		// Another account cannot end this account's grant.
		n.user("other", goodPassword, "other@univ.example")
		ob := n.browser()
		ob.mustSignIn("other", goodPassword)
		expectPage(t, "another account's grant", ob.post("/account/devices/"+gw.ID+"/signout", url.Values{}), http.StatusNotFound)
		expectPage(t, "unknown grant", b.post("/account/devices/nothing/signout", url.Values{}), http.StatusNotFound)
		devRefreshOK(t, n, devRefreshOK(t, n, win.RefreshToken)) // still works (and rotates)

		p = b.post("/account/devices/"+gw.ID+"/signout", url.Values{})
		expectRedirect(t, "sign out the Windows device", p, "/account?done=device_signed_out#apps")
		p = b.get("/account?done=device_signed_out")
		expectPage(t, "after signing out", p, http.StatusOK, "L'appareil a été déconnecté", "Nextcloud Desktop — Linux")
		if strings.Contains(p.Body, "Nextcloud Desktop — Windows") || strings.Count(p.Body, `/signout"><button`) != 1 {
			t.Fatal("the Windows device is still listed")
		}
		g, err := n.srv.db.OIDCGrantByID(context.Background(), gw.ID)
		if err != nil || g.RevokedAt == nil || g.RevokeReason != "user" {
			t.Fatalf("grant after sign-out: %+v %v", g, err)
		}
		// Its access tokens are revoked; the other grant still works.
		db, _ := portalRawDB(t, n)
		var live int
		if err := db.QueryRow(`SELECT count(*) FROM oidc_access_tokens WHERE grant_id = '` + gw.ID + `' AND revoked_at IS NULL`).Scan(&live); err != nil || live != 0 {
			t.Fatalf("%d access tokens of the grant still live (%v)", live, err)
		}
		devRefreshOK(t, n, lin.RefreshToken)
		ev := portalAudit(t, n, a.ID, "grant.revoke")
		if len(ev) != 1 || ev[0].Details["grant_id"] != gw.ID || ev[0].Details["client_id"] != "nc" {
			t.Fatalf("grant.revoke events: %+v", ev)
		}
		expectPage(t, "already ended", b.post("/account/devices/"+gw.ID+"/signout", url.Values{}), http.StatusNotFound)
	})
}

// TestDevicesSignOutKillsTokens: after "sign out this device", that
// grant's refresh token gives invalid_grant and its access token is no
// longer active, while the other grant's tokens work.
func TestDevicesSignOutKillsTokens(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		rs := devApps(n)
		a, b, win, lin := devSetup(t, n, "jdupont")
		gw := devGrantOf(t, n, a.ID, devWindowsUA)
		expectRedirect(t, "sign out", b.post("/account/devices/"+gw.ID+"/signout", url.Values{}), "/account?done=device_signed_out#apps")
		devRefreshDead(t, n, win.RefreshToken, "signed-out device")
		if n.introspect(win.AccessToken, "api", rs) {
			t.Fatal("the signed-out device's access token is still active")
		}
		if !n.introspect(lin.AccessToken, "api", rs) {
			t.Fatal("the other device's access token died")
		}
		devRefreshOK(t, n, lin.RefreshToken)
	})
}

// TestPasswordChangeAndDevices: a voluntary change without the box keeps
// the grants working and the email says they stay connected; with the box,
// every grant ends and the email lists them with how to reconnect.
func TestPasswordChangeAndDevices(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		rs := devApps(n)
		for i, end := range []bool{false, true} {
			t.Run(fmt.Sprintf("signout_devices=%v", end), func(t *testing.T) {
				ident := fmt.Sprintf("user%d", i)
				a, b, win, lin := devSetup(t, n, ident)
				expectPage(t, "password form", b.get("/account"), http.StatusOK,
					"Déconnecter aussi mes appareils et applications connectés (Nextcloud, …)")
				const next = "Tz9@mK4!pLq2"
				f := url.Values{"current_password": {goodPassword}, "new_password": {next}, "confirm_password": {next}}
				if end {
					f.Set("signout_devices", "on")
				}
				expectRedirect(t, "change", b.post("/account/password", f), "/account?done=password#password")
				var mail string
				for _, m := range portalMailsTo(n, ident+"@univ.example") {
					if strings.Contains(m, "a été changé le") {
						if mail != "" {
							t.Fatal("two password-changed emails")
						}
						mail = m
					}
				}
				if mail == "" {
					t.Fatal("no password-changed email")
				}
				ev := portalAudit(t, n, a.ID, "password.change")
				if len(ev) != 1 {
					t.Fatalf("password.change events: %+v", ev)
				}
				if !end {
					devRefreshOK(t, n, win.RefreshToken)
					devRefreshOK(t, n, lin.RefreshToken)
					if !strings.Contains(mail, "restent connectés") || strings.Contains(mail, "ont été déconnectés") {
						t.Fatalf("email without sign-out:\n%s", mail)
					}
					if len(devGrants(t, n, a.ID)) != 2 || ev[0].Details["grants_ended"] != "0" {
						t.Fatalf("grants after a change that keeps them: %d, audit %v", len(devGrants(t, n, a.ID)), ev[0].Details)
					}
					return
				}
				devRefreshDead(t, n, win.RefreshToken, "after the change (Windows)")
				devRefreshDead(t, n, lin.RefreshToken, "after the change (Linux)")
				if n.introspect(lin.AccessToken, "api", rs) {
					t.Fatal("an access token survived the change")
				}
				for _, want := range []string{"Ces appareils et applications ont été déconnectés", "- Nextcloud Desktop — Windows",
					"- Nextcloud Desktop — Linux", "connectez-vous à nouveau", "Se reconnecter"} {
					if !strings.Contains(mail, want) {
						t.Fatalf("email lacks %q:\n%s", want, mail)
					}
				}
				if ev[0].Details["grants_ended"] != "2" {
					t.Fatalf("audit %v", ev[0].Details)
				}
				p := b.get("/account")
				if p.Status != http.StatusOK || strings.Contains(p.Body, `/signout"><button`) {
					t.Fatalf("devices still listed after the change: %d", p.Status)
				}
			})
		}
	})
}

// devCLI runs `campusid` with stdin against the node.
func devCLI(t *testing.T, n *node, stdin string, args ...string) {
	t.Helper()
	var out, errb bytes.Buffer
	cfg := n.srv.cfg
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, now: n.clock.Now, environ: []string{
		"CAMPUSID_DATABASE_URL=" + cfg.Database.URL, "CAMPUSID_DATA_DIR=" + cfg.DataDir,
		"CAMPUSID_KEYS_ENCRYPTION_KEY=" + cfg.Keys.EncryptionKey, "CAMPUSID_PUBLIC_URL=" + cfg.PublicURL,
	}}
	if code := run(context.Background(), e, args); code != 0 {
		t.Fatalf("campusid %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
	}
}

// TestCLISetPasswordEndsDevices: an administrator's `user set-password`
// ends every grant (and lists them in the email); with --keep-sessions
// they keep working.
func TestCLISetPasswordEndsDevices(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		devApps(n)
		_, _, win, lin := devSetup(t, n, "jdupont")
		devCLI(t, n, "Tz9@mK4!pLq2\n", "user", "set-password", "jdupont", "--password-stdin", "--keep-sessions")
		win.RefreshToken = devRefreshOK(t, n, win.RefreshToken)
		devCLI(t, n, "Xk3#pW8!mQz5\n", "user", "set-password", "jdupont", "--password-stdin")
		devRefreshDead(t, n, win.RefreshToken, "after set-password (Windows)")
		devRefreshDead(t, n, lin.RefreshToken, "after set-password (Linux)")
		listed, kept := 0, 0
		for _, m := range portalMailsTo(n, "jdupont@univ.example") {
			if strings.Contains(m, "- Nextcloud Desktop — Windows") && strings.Contains(m, "- Nextcloud Desktop — Linux") {
				listed++
			}
			if strings.Contains(m, "restent connectés") {
				kept++
			}
		}
		if listed != 1 || kept != 1 {
			t.Fatalf("emails: %d list the signed-out devices, %d say they stay connected; want 1 and 1", listed, kept)
		}
	})
}
