package main

// Bad input through the real endpoints (issue 4, "Tests that must exist"):
// each gets the error code RFC 6749, RFC 7636, RFC 8628, RFC 6750 and
// OpenID Connect Core name for it.
//
// Already covered elsewhere, not repeated here:
//   - unknown client at /oauth2/authorize (campusid page, 400):            TestOIDCAuthorizeErrors
//   - unregistered redirect_uri (campusid page, 400, no Location):         TestOIDCAuthorizeErrors
//   - public client without code_challenge / plain PKCE (invalid_request
//     at the redirect URI), no openid scope (invalid_scope), implicit
//     response type (unauthorized_client):                                TestOIDCAuthorizeErrors
//   - code redeemed twice (invalid_grant, first redemption revoked):       TestOIDCRefreshRotationAndReuse
//   - wrong code_verifier (invalid_grant):                                 TestOIDCRefreshRotationAndReuse
//   - tampered refresh token, reused refresh token (invalid_grant):        TestOIDCRefreshRotationAndReuse
//   - wrong secret through x/oauth2 (error text contains invalid_client):  TestOIDCConfidentialClientAndFirstParty
//   - introspection without or with a wrong secret (401), revocation by
//     another client (unauthorized_client):                               TestOIDCClientCredentialsIntrospectionRevocation
//   - device flow: authorization_pending, slow_down, access_denied,
//     expired_token, unknown device code (invalid_grant):                 TestDeviceFlowPollingAnswers
//   - device code used twice (invalid_grant):                              TestDeviceFlowSuccess
//
// The gaps filled here: the code's lifetime on the injected clock (the code
// expiry is checked by campusid's storage with the node's clock, so it is
// testable), codes redeemed by another client, with another redirect_uri,
// without the verifier, tampered; exact status and WWW-Authenticate of
// invalid_client (RFC 6749, 5.2: 401 and WWW-Authenticate when the client
// used HTTP Basic); unknown client at the token endpoint; unsupported and
// missing grant_type; a grant the client was not given (unauthorized_client);
// a refresh token of another client; a device code polled by another client
// (RFC 8628, 3.5 refers to RFC 6749, 5.2: a grant "issued to another client"
// is invalid_grant) without disturbing the right client's polling; the
// device authorization endpoint for an unknown client or one without the
// device grant; a tampered access token at userinfo (RFC 6750, 3.1:
// invalid_token, 401, WWW-Authenticate: Bearer) and at introspection
// (active false); a missing client_id at /oauth2/authorize (campusid page).

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"campusid/internal/store"
)

// oeAnswer is an answer of a protocol endpoint.
type oeAnswer struct {
	status int
	header http.Header
	body   map[string]any
}

// oePost posts form to path, with HTTP Basic when basic is set (id, secret).
func oePost(t *testing.T, n *node, path string, form url.Values, basic []string) oeAnswer {
	t.Helper()
	req, _ := http.NewRequest("POST", n.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := oeAnswer{status: resp.StatusCode, header: resp.Header}
	json.Unmarshal(raw, &a.body)
	if a.body == nil {
		a.body = map[string]any{"raw": string(raw)}
	}
	return a
}

// oeCode runs an authorization for conf (signing in and allowing when asked)
// and returns a fresh code and its verifier.
func oeCode(t *testing.T, b *browser, conf *oauth2.Config) (code, verifier string) {
	t.Helper()
	verifier, challenge := pkce()
	f := &authFlow{b: b, login: "jdupont", password: goodPassword, consent: "allow"}
	return f.code(t, conf.AuthCodeURL("s", challenge), "s"), verifier
}

func oeCodeForm(code, verifier, clientID string) url.Values {
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect}, "code_verifier": {verifier}}
	if clientID != "" {
		f.Set("client_id", clientID)
	}
	return f
}

func TestOIDCErrors(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		n.app("--id", "cloud", "--name", "UNCloud", "--public", "--redirect-uri", appRedirect)
		web := n.app("--id", "web", "--name", "Web", "--redirect-uri", appRedirect)
		svc := n.app("--id", "svc", "--name", "Service", "--grant", "client_credentials")
		desk := deviceApp(n) // "desktop": public, device_code and refresh_token
		n.app("--id", "other-desktop", "--name", "Other Desktop", "--public", "--grant", "device_code")
		cloud := n.oauthConfig("cloud", "", "openid", "offline_access")
		webConf := n.oauthConfig("web", web)
		b := n.browser()

		// Codes for the cases (all of the public client "cloud" unless said).
		expiring, expiringV := oeCode(t, b, cloud)
		inTime, inTimeV := oeCode(t, b, cloud)
		otherClient, otherClientV := oeCode(t, b, cloud)
		otherRedirect, otherRedirectV := oeCode(t, b, cloud)
		noVerifier, _ := oeCode(t, b, cloud)
		tampered, tamperedV := oeCode(t, b, cloud)
		_, cloudTok := signedInFlow(t, n, cloud, "jdupont")

		// The code's lifetime (2 minutes), on the node's clock: one code
		// redeemed just before, one just after.
		n.clock.Advance(2*time.Minute - time.Second)
		if a := oePost(t, n, "/oauth2/token", oeCodeForm(inTime, inTimeV, "cloud"), nil); a.status != http.StatusOK {
			t.Fatalf("a code redeemed within its lifetime: %d %v", a.status, a.body)
		}
		n.clock.Advance(2 * time.Second)
		// Codes taken after the clock moved (the library looks the code up
		// before it authenticates the client: a client error is only seen
		// with a good code).
		webCode, webV := oeCode(t, b, webConf)
		cloudCode, cloudV := oeCode(t, b, cloud)

		da := startDevice(t, n, desk)
		badSig := func(tok string) string { // flip a character of the last segment (the signature of a JWT)
			i := len(tok) - 5
			c := byte('A')
			if tok[i] == 'A' {
				c = 'B'
			}
			return tok[:i] + string(c) + tok[i+1:]
		}

		var missingWWW []string // RFC 6749 5.2 / RFC 6750 3: reported in the subtest WWW-Authenticate
		for _, c := range []struct {
			name    string
			path    string
			form    url.Values
			basic   []string // HTTP Basic id, secret
			status  int
			err     string
			wwwAuth string // prefix of WWW-Authenticate, when required
		}{
			{"expired code (RFC 6749 5.2)", "/oauth2/token", oeCodeForm(expiring, expiringV, "cloud"), nil, 400, "invalid_grant", ""},
			{"code of another client (RFC 6749 5.2)", "/oauth2/token", oeCodeForm(otherClient, otherClientV, ""), []string{"web", web}, 400, "invalid_grant", ""},
			{"code with another redirect_uri (RFC 6749 4.1.3)", "/oauth2/token", func() url.Values {
				f := oeCodeForm(otherRedirect, otherRedirectV, "cloud")
				f.Set("redirect_uri", "http://127.0.0.1:9/other")
				return f
			}(), nil, 400, "invalid_grant", ""},
			{"code without code_verifier (RFC 7636 4.6)", "/oauth2/token", func() url.Values {
				f := oeCodeForm(noVerifier, "", "cloud")
				f.Del("code_verifier")
				return f
			}(), nil, 400, "invalid_grant", ""},
			{"tampered code (RFC 6749 5.2)", "/oauth2/token", oeCodeForm(tampered+"x", tamperedV, "cloud"), nil, 400, "invalid_grant", ""},
			{"wrong secret, HTTP Basic (RFC 6749 5.2: 401 + WWW-Authenticate)", "/oauth2/token", oeCodeForm(webCode, webV, ""), []string{"web", "not-the-secret"}, 401, "invalid_client", "Basic"},
			{"wrong secret, client_secret_post (RFC 6749 5.2)", "/oauth2/token", func() url.Values {
				f := oeCodeForm(webCode, webV, "web")
				f.Set("client_secret", "not-the-secret")
				return f
			}(), nil, 401, "invalid_client", ""},
			{"unknown client, HTTP Basic (RFC 6749 5.2)", "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, []string{"nobody", "x"}, 401, "invalid_client", "Basic"},
			{"unknown public client (RFC 6749 5.2)", "/oauth2/token", oeCodeForm(cloudCode, cloudV, "nobody"), nil, 401, "invalid_client", ""},
			{"grant type password (RFC 6749 5.2)", "/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"jdupont"}, "password": {goodPassword}}, []string{"web", web}, 400, "unsupported_grant_type", ""},
			{"unknown grant type (RFC 6749 5.2)", "/oauth2/token", url.Values{"grant_type": {"urn:example:nothing"}, "client_id": {"cloud"}}, nil, 400, "unsupported_grant_type", ""},
			{"grant not given to the client (RFC 6749 5.2)", "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, []string{"web", web}, 400, "unauthorized_client", ""},
			{"refresh token of another client (RFC 6749 5.2)", "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {cloudTok.RefreshToken}}, []string{"web", web}, 400, "invalid_grant", ""},
			{"device code polled by another client (RFC 8628 3.5, RFC 6749 5.2)", "/oauth2/token", url.Values{"grant_type": {deviceGrantType}, "device_code": {da.DeviceCode}, "client_id": {"other-desktop"}}, nil, 400, "invalid_grant", ""},
			{"device code polled by a client without the device grant (RFC 6749 5.2)", "/oauth2/token", url.Values{"grant_type": {deviceGrantType}, "device_code": {da.DeviceCode}, "client_id": {"cloud"}}, nil, 400, "unauthorized_client", ""},
			{"device authorization, unknown client (RFC 8628 3.1)", "/oauth2/device_authorization", url.Values{"client_id": {"nobody"}, "scope": {"openid"}}, nil, 401, "invalid_client", ""},
			{"device authorization without the device grant (RFC 8628 3.1)", "/oauth2/device_authorization", url.Values{"client_id": {"cloud"}, "scope": {"openid"}}, nil, 400, "unauthorized_client", ""},
		} {
			a := oePost(t, n, c.path, c.form, c.basic)
			if a.status != c.status || a.body["error"] != c.err {
				t.Errorf("%s: %d %v, want %d %s", c.name, a.status, a.body, c.status, c.err)
			}
			if c.wwwAuth != "" && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), c.wwwAuth) {
				missingWWW = append(missingWWW, c.name+": WWW-Authenticate "+strconv.Quote(a.header.Get("WWW-Authenticate")))
			}
			if a.body["access_token"] != nil || a.body["device_code"] != nil {
				t.Errorf("%s: issued %v", c.name, a.body)
			}
		}

		// The other client's poll did not count for the right client: its
		// first poll is pending, not slow_down.
		wantPoll(t, n, da.DeviceCode, "authorization_pending")
		// The codes were not spent by the wrong secrets or the unknown client.
		if a := oePost(t, n, "/oauth2/token", oeCodeForm(cloudCode, cloudV, "cloud"), nil); a.status != http.StatusOK {
			t.Errorf("the public client's code after an unknown client presented it: %d %v", a.status, a.body)
		}
		if a := oePost(t, n, "/oauth2/token", oeCodeForm(webCode, webV, ""), []string{"web", web}); a.status != http.StatusOK {
			t.Errorf("the confidential client's code after the wrong secrets: %d %v", a.status, a.body)
		}

		// A tampered access token (RFC 6750 3.1): 401, invalid_token.
		cc := oePost(t, n, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, []string{"svc", svc})
		jwt, _ := cc.body["access_token"].(string)
		if jwt == "" {
			t.Fatalf("client credentials: %v", cc.body)
		}
		for name, tok := range map[string]string{"tampered opaque access token": cloudTok.AccessToken + "x",
			"JWT access token with a broken signature": badSig(jwt)} {
			req, _ := http.NewRequest("GET", n.URL+"/oauth2/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("userinfo, %s: %d, want 401", name, resp.StatusCode)
			}
			if www := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(www, "Bearer") || !strings.Contains(www, `error="invalid_token"`) {
				missingWWW = append(missingWWW, "userinfo, "+name+": WWW-Authenticate "+strconv.Quote(www)+`, want Bearer error="invalid_token"`)
			}
			if n.introspect(tok, "svc", svc) {
				t.Errorf("introspection, %s: active", name)
			}
		}
		if !n.introspect(jwt, "svc", svc) {
			t.Error("the untampered JWT is not active")
		}

		// RFC 6749 5.2: a 401 invalid_client for a client that used HTTP Basic
		// MUST carry WWW-Authenticate; RFC 6750 3 (OIDC Core 5.3.3): a 401 of
		// userinfo MUST carry WWW-Authenticate: Bearer with the error code.
		t.Run("WWW-Authenticate", func(t *testing.T) {
			for _, m := range missingWWW {
				t.Error(m)
			}
		})

		// No client_id at /oauth2/authorize: a campusid page, never a redirect.
		_, challenge := pkce()
		p := b.get(strings.Replace(cloud.AuthCodeURL("s", challenge), "client_id=cloud&", "", 1))
		if p.Status != http.StatusBadRequest || p.Location != "" {
			t.Errorf("authorize without client_id: %d %q", p.Status, p.Location)
		}
	})
}
