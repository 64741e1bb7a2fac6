package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"campusid/internal/store"
)

const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// deviceApp registers the desktop client of source document 000.
func deviceApp(n *node) *oauth2.Config {
	n.app("--id", "desktop", "--name", "Nextcloud Desktop", "--public", "--grant", "device_code", "--grant", "refresh_token")
	conf := n.oauthConfig("desktop", "", "openid", "profile", "offline_access")
	conf.Endpoint.DeviceAuthURL = n.URL + "/oauth2/device_authorization"
	return conf
}

// poll asks the token endpoint once, as a device does.
func (n *node) poll(code string) (int, map[string]any) {
	return n.tokenCall("/oauth2/token", url.Values{"grant_type": {deviceGrantType}, "device_code": {code}, "client_id": {"desktop"}}, "desktop", "")
}

func wantPoll(t *testing.T, n *node, code, want string) map[string]any {
	t.Helper()
	status, out := n.poll(code)
	if want == "" {
		if status != http.StatusOK || out["access_token"] == nil {
			t.Fatalf("poll: want tokens, got %d %v", status, out)
		}
		return out
	}
	if status != http.StatusBadRequest || out["error"] != want {
		t.Fatalf("poll: want %s, got %d %v", want, status, out)
	}
	return out
}

// approveDevice types the code on /device (signed in) and answers the consent page.
func approveDevice(t *testing.T, b *browser, typed, decision string) page {
	t.Helper()
	p := b.post("/device", url.Values{"user_code": {typed}})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Nextcloud Desktop sur device-test/1.0 demande l&#39;accès à votre compte") {
		t.Fatalf("device consent page: %d\n%s", p.Status, p.Body)
	}
	return b.post("/device/consent", url.Values{"user_code": {typed}, "decision": {decision}})
}

// startDevice calls device_authorization as the device (its user agent names it).
func startDevice(t *testing.T, n *node, conf *oauth2.Config) *oauth2.DeviceAuthResponse {
	t.Helper()
	hc := &http.Client{Transport: deviceUATransport{"device-test/1.0"}}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	return da
}

type deviceUATransport struct{ ua string }

func (u deviceUATransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", u.ua)
	return http.DefaultTransport.RoundTrip(r)
}

// TestDeviceFlowPollingAnswers: discovery names the endpoint; the user code
// is 8 unambiguous letters grouped by four with a pre-filling link; polls
// answer authorization_pending, slow_down (too fast, interval raised by 5 s),
// access_denied after "Refuser", expired_token on the injected clock.
func TestDeviceFlowPollingAnswers(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("alice", goodPassword, "alice@example.org")
		conf := deviceApp(n)
		var disco struct {
			Endpoint string   `json:"device_authorization_endpoint"`
			Grants   []string `json:"grant_types_supported"`
		}
		if resp, err := http.Get(n.URL + "/.well-known/openid-configuration"); err != nil {
			t.Fatal(err)
		} else {
			json.NewDecoder(resp.Body).Decode(&disco)
			resp.Body.Close()
		}
		if disco.Endpoint != n.URL+"/oauth2/device_authorization" || !slices.Contains(disco.Grants, deviceGrantType) {
			t.Fatalf("discovery: %+v", disco)
		}
		da := startDevice(t, n, conf)
		if len(da.UserCode) != 9 || da.UserCode[4] != '-' || strings.ContainsAny(da.UserCode, "AEIOUY0123456789") {
			t.Fatalf("user code %q", da.UserCode)
		}
		if da.VerificationURI != n.URL+"/device" || da.VerificationURIComplete != n.URL+"/device?user_code="+da.UserCode || da.Interval != 5 {
			t.Fatalf("device authorization: %+v", da)
		}
		wantPoll(t, n, da.DeviceCode, "authorization_pending")
		wantPoll(t, n, da.DeviceCode, "slow_down")
		n.clock.Advance(6 * time.Second) // the interval is now 10 s: still too fast
		wantPoll(t, n, da.DeviceCode, "slow_down")
		n.clock.Advance(16 * time.Second) // and now 15 s
		wantPoll(t, n, da.DeviceCode, "authorization_pending")

		b := n.browser()
		if p := b.get("/device?user_code=" + da.UserCode); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/login?return_to=%2Fdevice%3Fuser_code%3D") {
			t.Fatalf("signed out: %d %q", p.Status, p.Location)
		}
		b.mustSignIn("alice", goodPassword)
		p := approveDevice(t, b, da.UserCode, "deny")
		if !strings.Contains(p.Body, "Vous avez refusé") {
			t.Fatalf("deny: %d\n%s", p.Status, p.Body)
		}
		n.clock.Advance(16 * time.Second)
		wantPoll(t, n, da.DeviceCode, "access_denied")

		da2 := startDevice(t, n, conf)
		n.clock.Advance(11 * time.Minute)
		wantPoll(t, n, da2.DeviceCode, "expired_token")
		if p := b.post("/device", url.Values{"user_code": {da2.UserCode}}); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Ce code n&#39;est pas valable") {
			t.Fatalf("expired user code: %d\n%s", p.Status, p.Body)
		}
		if status, out := n.poll("not-a-device-code"); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("unknown device code: %d %v", status, out)
		}
	})
}

// TestDeviceFlowSuccess: x/oauth2's device flow gets tokens whose ID token
// verifies with go-oidc, after the person typed the code in lower case with
// spaces; the grant names the application and the device; the device code
// gives tokens once; the refresh token works.
func TestDeviceFlowSuccess(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		acct := n.user("alice", goodPassword, "alice@example.org")
		conf := deviceApp(n)
		da := startDevice(t, n, conf)
		b := n.browser()
		b.mustSignIn("alice", goodPassword)
		typed := " " + strings.ToLower(strings.ReplaceAll(da.UserCode, "-", " ")) + " "
		if p := approveDevice(t, b, typed, "allow"); !strings.Contains(p.Body, "Nextcloud Desktop est connecté à votre compte") {
			t.Fatalf("allow: %d\n%s", p.Status, p.Body)
		}
		tok, err := conf.DeviceAccessToken(context.Background(), da)
		if err != nil {
			t.Fatalf("device access token: %v", err)
		}
		idt, claims := verifyID(t, n.provider(), "desktop", tok, "")
		if idt.Subject != acct.ID || claims["preferred_username"] != "alice" || claims["sid"] == nil {
			t.Fatalf("ID token: %s %v", idt.Subject, claims)
		}
		if tok.RefreshToken == "" {
			t.Fatal("no refresh token with offline_access")
		}
		grants, err := n.srv.db.ListOIDCGrants(context.Background(), acct.ID)
		if err != nil || len(grants) != 1 || grants[0].DeviceName != "Nextcloud Desktop (device-test/1.0)" {
			t.Fatalf("grants: %v %+v", err, grants)
		}
		n.clock.Advance(10 * time.Second)
		if status, out := n.poll(da.DeviceCode); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("device code used twice: %d %v", status, out)
		}
		if status, out := n.refresh("desktop", "", tok.RefreshToken); status != http.StatusOK || out["refresh_token"] == nil {
			t.Fatalf("refresh: %d %v", status, out)
		}
	})
}

// TestDeviceWrongUserCode: a wrong code is refused with a clear message,
// and after five wrong codes the address must wait (429, Retry-After).
func TestDeviceWrongUserCode(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("alice", goodPassword, "alice@example.org")
		conf := deviceApp(n)
		da := startDevice(t, n, conf)
		b := n.browser()
		b.mustSignIn("alice", goodPassword)
		for i := 0; i < 5; i++ {
			p := b.post("/device", url.Values{"user_code": {"BCDF-GHJK"}})
			if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Ce code n&#39;est pas valable") || !strings.Contains(p.Body, `aria-invalid="true"`) {
				t.Fatalf("wrong code %d: %d\n%s", i, p.Status, p.Body)
			}
		}
		p := b.post("/device", url.Values{"user_code": {da.UserCode}})
		if p.Status != http.StatusTooManyRequests || p.Header.Get("Retry-After") == "" || !strings.Contains(p.Body, "Trop de codes erronés") {
			t.Fatalf("throttled: %d\n%s", p.Status, p.Body)
		}
		n.clock.Advance(2 * time.Second)
		if p := b.get("/device?user_code=" + strings.ToLower(da.UserCode)); p.Status != http.StatusOK || !strings.Contains(p.Body, da.UserCode) {
			t.Fatalf("good code after the wait: %d\n%s", p.Status, p.Body)
		}
	})
}
