package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"campusid/internal/store"
)

// Grant types an application may be allowed, by their short names.
const (
	GrantCode              = "authorization_code"
	GrantRefresh           = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantDeviceCode        = "device_code" // urn:ietf:params:oauth:grant-type:device_code (device flow)
)

// Scopes campusid knows.
const (
	ScopeOpenID  = "openid"
	ScopeProfile = "profile"
	ScopeEmail   = "email"
	ScopeOffline = "offline_access"
)

// StandardScopes are the scopes an application gets unless told otherwise.
var StandardScopes = []string{ScopeOpenID, ScopeProfile, ScopeEmail, ScopeOffline}

var grantNames = map[string]oidc.GrantType{
	GrantCode: oidc.GrantTypeCode, GrantRefresh: oidc.GrantTypeRefreshToken,
	GrantClientCredentials: oidc.GrantTypeClientCredentials, GrantDeviceCode: oidc.GrantTypeDeviceCode,
}

// ClientSpec is an application as an administrator describes it (CLI or
// configuration file).
type ClientSpec struct {
	ID                   string
	Name                 string
	Public               bool
	FirstParty           bool
	RedirectURIs         []string
	PostLogoutURIs       []string
	BackchannelLogoutURI string
	Grants               []string // default: authorization_code and refresh_token
	Scopes               []string // default: StandardScopes
}

// Client checks the spec and returns the row to store (without secret,
// source or times). Every problem is reported at once.
func (s ClientSpec) Client() (store.OIDCClient, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.ID == "" || len(s.ID) > 100 || strings.ContainsFunc(s.ID, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._~-", r))
	}) {
		bad("id: want 1 to 100 letters, digits, dots, hyphens, underscores or tildes")
	}
	if strings.TrimSpace(s.Name) == "" || len(s.Name) > 100 {
		bad("name: want 1 to 100 characters")
	}
	grants := s.Grants
	if len(grants) == 0 {
		grants = []string{GrantCode, GrantRefresh}
	}
	for _, g := range grants {
		if _, ok := grantNames[g]; !ok {
			bad("grant %q: want authorization_code, refresh_token, client_credentials or device_code", g)
		}
	}
	if s.Public && slices.Contains(grants, GrantClientCredentials) {
		bad("grant client_credentials needs a confidential client (with a secret), not --public")
	}
	needsRedirect := slices.Contains(grants, GrantCode)
	if needsRedirect && len(s.RedirectURIs) == 0 {
		bad("redirect URI: at least one is needed for authorization_code")
	}
	for _, u := range s.RedirectURIs {
		if err := ValidateRedirectURI(u, s.Public); err != nil {
			bad("redirect URI %q: %v", u, err)
		}
	}
	for _, u := range s.PostLogoutURIs {
		if err := ValidateRedirectURI(u, s.Public); err != nil {
			bad("post-logout URI %q: %v", u, err)
		}
	}
	if u := s.BackchannelLogoutURI; u != "" {
		if err := ValidateRedirectURI(u, false); err != nil {
			bad("back-channel logout URI %q: %v", u, err)
		}
	}
	scopes := s.Scopes
	if len(scopes) == 0 {
		scopes = StandardScopes
	}
	for _, sc := range scopes {
		if sc == "" || strings.ContainsFunc(sc, func(r rune) bool { return r <= ' ' || r == '"' || r == '\\' || r > '~' }) {
			bad("scope %q: want printable ASCII without space, quote or backslash", sc)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return store.OIDCClient{}, err
	}
	return store.OIDCClient{ID: s.ID, Name: strings.TrimSpace(s.Name), Public: s.Public, FirstParty: s.FirstParty,
		RedirectURIs: slices.Compact(slices.Clone(s.RedirectURIs)), PostLogoutURIs: slices.Clone(s.PostLogoutURIs),
		BackchannelLogoutURI: s.BackchannelLogoutURI, GrantTypes: uniq(grants), Scopes: uniq(scopes)}, nil
}

func uniq(l []string) []string {
	var out []string
	for _, s := range l {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// ValidateRedirectURI checks a URI an application registers: absolute,
// exact (no wildcard, no fragment); https, or http only on the loopback
// interface (RFC 8252); a private-use scheme (com.example.app:/cb) only for
// public (native) clients.
func ValidateRedirectURI(raw string, public bool) error {
	if strings.ContainsAny(raw, "* \t\r\n\\") {
		return errors.New("no wildcard, space or backslash")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return errors.New("not an absolute URI")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("no fragment (#...)")
	}
	if u.User != nil {
		return errors.New("no user information")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Host == "" {
			return errors.New("no host")
		}
	case "http":
		if !loopback(u.Hostname()) {
			return errors.New("http only for localhost, 127.0.0.1 or [::1]; use https")
		}
	case "javascript", "data", "file", "vbscript", "blob", "about":
		return fmt.Errorf("scheme %s: not allowed", u.Scheme)
	default:
		if !public {
			return errors.New("a private-use scheme is for native (public) applications; use https")
		}
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redirectAllowed reports whether uri is one of the client's redirect URIs:
// exactly, or, for a public (native) client, a loopback URI that differs
// from a registered loopback one only by its port (RFC 8252, 7.3).
func redirectAllowed(c store.OIDCClient, uri string) bool {
	return uriAllowed(c.RedirectURIs, c.Public, uri)
}

func uriAllowed(registered []string, public bool, uri string) bool {
	if slices.Contains(registered, uri) {
		return true
	}
	if !public {
		return false
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || !loopback(u.Hostname()) {
		return false
	}
	for _, r := range registered {
		ru, err := url.Parse(r)
		if err == nil && ru.Scheme == "http" && ru.Hostname() == u.Hostname() && ru.Path == u.Path && ru.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}

// NewSecret returns a client secret (256 random bits) and its stored form.
func NewSecret() (secret, hash string) {
	b := make([]byte, 32)
	rand.Read(b)
	secret = base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret)
}

// HashSecret is how a client secret is stored: hex SHA-256. Secrets are
// 256-bit random values, so a fast hash is enough.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// secretMatches compares in constant time.
func secretMatches(c store.OIDCClient, secret string) bool {
	if c.Public || c.SecretHash == "" || secret == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(HashSecret(secret)), []byte(strings.ToLower(c.SecretHash))) == 1
}

// ConfigClient is an application of the configuration file, with its
// secret's hash already read.
type ConfigClient struct {
	ClientSpec
	SecretHash string
}

// SyncClients makes the applications of the configuration file exist as
// written (source "config"), and removes those the file no longer declares.
// It returns what it did, for the log.
func SyncClients(ctx context.Context, db *store.DB, clients []ConfigClient, now time.Time) (upserted, removed []string, err error) {
	var errs []error
	rows := make([]store.OIDCClient, 0, len(clients))
	for _, cc := range clients {
		c, err := cc.Client()
		if err != nil {
			errs = append(errs, fmt.Errorf("oidc.clients %s: %w", cc.ID, err))
			continue
		}
		c.SecretHash = strings.ToLower(cc.SecretHash)
		if c.Public {
			c.SecretHash = ""
		}
		c.Source, c.CreatedAt, c.UpdatedAt = store.ClientFromConfig, now, now
		rows = append(rows, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	err = db.InTx(ctx, func(tx *store.DB) error {
		existing, err := tx.ListOIDCClients(ctx)
		if err != nil {
			return err
		}
		for _, c := range rows {
			if err := tx.UpsertOIDCClient(ctx, c); err != nil {
				return err
			}
			upserted = append(upserted, c.ID)
		}
		for _, e := range existing {
			if e.Source == store.ClientFromConfig && !slices.Contains(upserted, e.ID) {
				if err := tx.DeleteOIDCClient(ctx, e.ID); err != nil {
					return err
				}
				removed = append(removed, e.ID)
			}
		}
		return nil
	})
	return upserted, removed, err
}

// client is an application as zitadel/oidc sees it (op.Client).
type client struct {
	c               store.OIDCClient
	idTokenLifetime time.Duration
	jwtAccessTokens bool // client credentials: access tokens are JWTs
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string                    { return c.c.ID }
func (c *client) RedirectURIs() []string           { return c.c.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.c.PostLogoutURIs }

func (c *client) ApplicationType() op.ApplicationType {
	if c.c.Public {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() oidc.AuthMethod {
	if c.c.Public {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []oidc.GrantType {
	out := make([]oidc.GrantType, 0, len(c.c.GrantTypes))
	for _, g := range c.c.GrantTypes {
		if t, ok := grantNames[g]; ok {
			out = append(out, t)
		}
	}
	return out
}

func (c *client) hasGrant(g string) bool { return slices.Contains(c.c.GrantTypes, g) }

// LoginURL is where the authorize endpoint sends the browser: the bridge to
// the sign-in (continue.go).
func (c *client) LoginURL(id string) string { return ContinuePath(id) }

func (c *client) AccessTokenType() op.AccessTokenType {
	if c.jwtAccessTokens {
		return op.AccessTokenTypeJWT
	}
	return op.AccessTokenTypeBearer
}

func (c *client) IDTokenLifetime() time.Duration { return c.idTokenLifetime }
func (c *client) DevMode() bool                  { return false }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) IsScopeAllowed(scope string) bool { return slices.Contains(c.c.Scopes, scope) }

// IDTokenUserinfoClaimsAssertion puts the profile and email claims in the
// ID token too, as most applications expect.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }
