// Package oidc is campusid's OpenID Connect provider, built on
// github.com/zitadel/oidc/v3/pkg/op (OpenID Certified) with its storage
// over store.DB, so every node of a cluster answers for the others.
//
// The protocol meets the sign-in the way dex does it (login imports no
// protocol):
//
//	GET /oauth2/authorize ── unknown client, unregistered redirect_uri ──▶ campusid error page (never redirected)
//	     │ request stored (state "new")
//	     ▼
//	GET /oidc/continue?id=ID ── no session, prompt=login/select_account, max_age passed ──▶ /login?return_to=<continue>[&reauth=1][&login=hint]
//	     │  (prompt=none instead: login_required / consent_required to the application)    │ sign-in, back here
//	     │ ◀──────────────────────────────────────────────────────────────────────────────┘
//	     │ third-party application without a remembered consent (or prompt=consent)
//	     ├──▶ GET /oidc/consent?id=ID ── POST allow ──▶ back to continue
//	     │                              └─ POST deny ──▶ access_denied to the application
//	     │ state "done": account, session, auth_time, amr
//	     ▼
//	GET /oauth2/authorize/callback?id=ID (same browser session only) ── code ──▶ redirect_uri (query or form_post)
//	     ▼
//	POST /oauth2/token: code + PKCE ──▶ ID token, access token, refresh token (offline_access)
//
// Access tokens are opaque (the library's AES-GCM sealed "id:subject" under
// a key derived from keys.encryption_key) and looked up at every use, so a
// revocation works at once; client credentials get JWT access tokens,
// verifiable against the JWKS. Refresh tokens are random, stored as SHA-256,
// rotated at each use; a used one presented again revokes its grant.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/rs/cors"
	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"campusid/internal/audit"
	"campusid/internal/keys"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// Endpoint paths (discovery advertises them under the issuer).
const (
	PathDiscovery   = "/.well-known/openid-configuration"
	PathAuthorize   = "/oauth2/authorize"
	PathCallback    = "/oauth2/authorize/callback"
	PathToken       = "/oauth2/token"
	PathIntrospect  = "/oauth2/introspect"
	PathUserinfo    = "/oauth2/userinfo"
	PathRevoke      = "/oauth2/revoke"
	PathEndSession  = "/oauth2/end_session"
	PathKeys        = "/oauth2/keys"
	PathContinue    = "/oidc/continue"
	PathConsent     = "/oidc/consent"
	PathLogout      = "/oidc/logout"
	ProtocolPattern = "/oauth2/" // called cross-origin, without cookies: no CSRF check
)

// ContinuePath is the bridge page of request id.
func ContinuePath(id string) string { return PathContinue + "?id=" + url.QueryEscape(id) }

// Destination names the application a sign-in's return_to leads to (the
// bridge page of its authorization request), or "".
func Destination(ctx context.Context, db *store.DB, returnTo string) string {
	u, err := url.Parse(returnTo)
	if err != nil || u.Path != PathContinue {
		return ""
	}
	ar, err := db.OIDCAuthRequestByID(ctx, u.Query().Get("id"))
	if err != nil {
		return ""
	}
	cl, err := db.OIDCClientByID(ctx, ar.ClientID)
	if err != nil {
		return ""
	}
	return cl.Name
}

// Handler serves the provider's endpoints and pages.
type Handler struct {
	App      *web.App
	DB       *store.DB
	Keys     *keys.Manager
	Sessions *session.Manager
	Audit    *audit.Log
	Now      func() time.Time
	Issuer   string // the public URL

	AccessTokenLifetime  time.Duration
	IDTokenLifetime      time.Duration
	RefreshTokenLifetime time.Duration
	AuthRequestLifetime  time.Duration
	DeviceCodeLifetime   time.Duration // device flow (device.go); 0: 10 minutes
	DevicePollInterval   time.Duration // 0: 5 seconds

	op      *op.Provider
	storage *storage
}

// Register builds the provider and adds its routes.
func (h *Handler) Register(mux *http.ServeMux) error {
	h.storage = &storage{h: h}
	cfg := &op.Config{
		CryptoKey:                h.Keys.Derive("oidc token encryption"),
		CryptoKeyId:              "campusid-1",
		DefaultLogoutRedirectURI: "/login?logged_out=1",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       []language.Tag{language.French, language.English},
		SupportedClaims:          supportedClaims,
		SupportedScopes:          StandardScopes,
		DeviceAuthorization:      *h.deviceConfig(),
	}
	opts := []op.Option{
		op.WithCustomEndpoints(op.NewEndpoint(PathAuthorize), op.NewEndpoint(PathToken), op.NewEndpoint(PathUserinfo),
			op.NewEndpoint(PathRevoke), op.NewEndpoint(PathEndSession), op.NewEndpoint(PathKeys)),
		op.WithCustomIntrospectionEndpoint(op.NewEndpoint(PathIntrospect)),
		op.WithCustomDeviceAuthorizationEndpoint(op.NewEndpoint(PathDeviceAuthorization)),
		// The protocol endpoints take no cookies: any origin may call them
		// (single-page applications), without credentials.
		op.WithCORSOptions(&cors.Options{AllowOriginFunc: func(string) bool { return true },
			AllowedMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost},
			AllowedHeaders: []string{"Accept", "Accept-Language", "Authorization", "Content-Type"}}),
	}
	if u, err := url.Parse(h.Issuer); err == nil && u.Scheme == "http" {
		opts = append(opts, op.WithAllowInsecure()) // development and tests
	}
	p, err := op.NewProvider(cfg, h.storage, op.StaticIssuer(h.Issuer), opts...)
	if err != nil {
		return fmt.Errorf("oidc: %w", err)
	}
	h.op = p
	mux.HandleFunc("GET "+PathDiscovery, h.discovery)
	mux.Handle(PathAuthorize, h.App.Handle(h.authorize))
	mux.Handle("GET "+PathCallback, h.App.Handle(h.callback))
	for _, path := range []string{PathIntrospect, PathRevoke, PathKeys} {
		mux.Handle(path, p)
	}
	mux.Handle(PathUserinfo, challenge(p, `Bearer error="invalid_token"`))
	mux.Handle(PathToken, challenge(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.PostFormValue("grant_type") == string(oidc.GrantTypeDeviceCode) {
			h.deviceToken(w, r) // device.go
			return
		}
		p.ServeHTTP(w, r)
	}), `Basic realm="campusid"`))
	mux.HandleFunc(PathDeviceAuthorization, h.deviceAuthorization)
	mux.Handle("GET "+PathDevice, h.App.Handle(h.showDevice))
	mux.Handle("POST "+PathDevice, h.App.Handle(h.submitDevice))
	mux.Handle("POST "+PathDeviceConsent, h.App.Handle(h.submitDeviceConsent))
	mux.Handle(PathEndSession, h.App.Handle(h.endSession))
	mux.Handle("GET "+PathContinue, h.App.Handle(h.showContinue))
	mux.Handle("GET "+PathConsent, h.App.Handle(h.showConsent))
	mux.Handle("POST "+PathConsent, h.App.Handle(h.submitConsent))
	mux.Handle("GET "+PathLogout, h.App.Handle(h.showLogout))
	mux.Handle("POST "+PathLogout, h.App.Handle(h.submitLogout))
	return nil
}

var supportedClaims = []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "azp", "at_hash", "c_hash", "sid",
	"name", "given_name", "family_name", "preferred_username", "establishment", "email", "email_verified"}

func (h *Handler) ctx(r *http.Request) context.Context {
	return op.ContextWithIssuer(r.Context(), h.Issuer)
}

// discovery is the library's document, trimmed to what campusid does.
func (h *Handler) discovery(w http.ResponseWriter, r *http.Request) {
	d := op.CreateDiscoveryConfig(h.ctx(r), h.op, h.storage)
	d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	d.ResponseModesSupported = []string{string(oidc.ResponseModeQuery), string(oidc.ResponseModeFormPost)}
	d.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeClientCredentials,
		oidc.GrantTypeDeviceCode}
	d.CheckSessionIframe = ""
	d.RequestObjectSigningAlgValuesSupported = nil
	d.TokenEndpointAuthSigningAlgValuesSupported = nil
	d.IntrospectionEndpointAuthSigningAlgValuesSupported = nil
	d.RevocationEndpointAuthSigningAlgValuesSupported = nil
	d.IntrospectionEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic}
	d.ClaimsParameterSupported = false
	d.BackChannelLogoutSupported, d.BackChannelLogoutSessionSupported = true, true // backchannel.go
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	httphelper.MarshalJSON(w, d)
}

// authorize checks the client and its redirect URI before anything can be
// sent back to it: until then, errors are campusid pages (issue 4, item 8).
// The library does the rest, with the extra rules of validate.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) error {
	r = r.WithContext(h.ctx(r))
	if err := r.ParseForm(); err != nil {
		return web.BadRequest("oidc.error.bad_request")
	}
	c, err := h.DB.OIDCClientByID(r.Context(), r.Form.Get("client_id"))
	if errors.Is(err, store.ErrNotFound) {
		return &web.Error{Status: http.StatusBadRequest, Key: "oidc.error.unknown_client",
			Err: fmt.Errorf("unknown client_id %q", truncate(r.Form.Get("client_id"), 100))}
	}
	if err != nil {
		return err
	}
	if redirect := r.Form.Get("redirect_uri"); !redirectAllowed(c, redirect) {
		return &web.Error{Status: http.StatusBadRequest, Key: "oidc.error.redirect_uri",
			Err: fmt.Errorf("client %s: unregistered redirect_uri %q", c.ID, truncate(redirect, 300))}
	}
	op.Authorize(w, r, &authorizer{Provider: h.op, h: h})
	return nil
}

// authorizer adds campusid's rules to the library's validation.
type authorizer struct {
	*op.Provider
	h *Handler
}

var _ op.AuthorizeValidator = (*authorizer)(nil)

func (a *authorizer) ValidateAuthRequest(ctx context.Context, req *oidc.AuthRequest, s op.Storage, v *op.IDTokenHintVerifier) (string, error) {
	cl, err := a.h.storage.client(ctx, req.ClientID)
	if err != nil {
		return "", oidc.ErrInvalidRequestRedirectURI().WithDescription("unknown client").WithParent(err)
	}
	switch req.ResponseMode {
	case "", oidc.ResponseModeQuery, oidc.ResponseModeFormPost:
	default:
		req.ResponseMode = oidc.ResponseModeQuery
		return "", oidc.ErrInvalidRequest().WithDescription("response_mode must be query or form_post")
	}
	sub, err := op.ValidateAuthRequestClient(ctx, req, cl, v)
	if err != nil {
		return "", err
	}
	if req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return "", oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if cl.c.Public && req.CodeChallenge == "" {
		return "", oidc.ErrInvalidRequest().WithDescription("PKCE (code_challenge with S256) is required for public clients")
	}
	if !cl.hasGrant(GrantCode) {
		return "", oidc.ErrUnauthorizedClient().WithDescription("this client may not use the authorization code flow")
	}
	var scopes []string
	for _, sc := range req.Scopes {
		if !cl.IsScopeAllowed(sc) || (sc == ScopeOffline && !cl.hasGrant(GrantRefresh)) {
			continue // not for this client: left out, as the library does
		}
		scopes = append(scopes, sc)
	}
	if !slices.Contains(scopes, ScopeOpenID) {
		return "", oidc.ErrInvalidScope().WithDescription("the openid scope is required")
	}
	req.Scopes = scopes
	return sub, nil
}

// challenge adds the WWW-Authenticate header that a 401 must carry (RFC
// 6749 5.2 for client authentication, RFC 6750 3 for bearer tokens) when
// the library leaves it out.
func challenge(next http.Handler, value string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&challengeWriter{ResponseWriter: w, value: value}, r)
	})
}

type challengeWriter struct {
	http.ResponseWriter
	value string
}

func (c *challengeWriter) WriteHeader(code int) {
	if code == http.StatusUnauthorized && c.Header().Get("WWW-Authenticate") == "" {
		c.Header().Set("WWW-Authenticate", c.value)
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *challengeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
