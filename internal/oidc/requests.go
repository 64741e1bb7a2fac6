package oidc

import (
	"log/slog"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"campusid/internal/store"
)

// authRequest is a stored authorization request as zitadel/oidc sees it.
type authRequest struct{ r store.OIDCAuthRequest }

var (
	_ op.AuthRequest    = (*authRequest)(nil)
	_ op.LogAuthRequest = (*authRequest)(nil)
)

func (a *authRequest) GetID() string          { return a.r.ID }
func (a *authRequest) GetACR() string         { return "" }
func (a *authRequest) GetAMR() []string       { return a.r.AMR }
func (a *authRequest) GetAudience() []string  { return []string{a.r.ClientID} }
func (a *authRequest) GetClientID() string    { return a.r.ClientID }
func (a *authRequest) GetNonce() string       { return a.r.Nonce }
func (a *authRequest) GetRedirectURI() string { return a.r.RedirectURI }
func (a *authRequest) GetScopes() []string    { return a.r.Scopes }
func (a *authRequest) GetState() string       { return a.r.OAuthState }
func (a *authRequest) GetSubject() string     { return a.r.AccountID }
func (a *authRequest) sessionID() string      { return a.r.SessionID }
func (a *authRequest) Done() bool {
	return a.r.State == store.AuthRequestDone || a.r.State == store.AuthRequestCode
}
func (a *authRequest) GetResponseType() oidc.ResponseType { return oidc.ResponseType(a.r.ResponseType) }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return oidc.ResponseMode(a.r.ResponseMode) }

func (a *authRequest) GetAuthTime() time.Time {
	if a.r.AuthTime == nil {
		return time.Time{}
	}
	return *a.r.AuthTime
}

func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.r.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.r.CodeChallenge, Method: oidc.CodeChallengeMethod(a.r.CodeMethod)}
}

// LogValue keeps the log free of secrets (no code, nonce or state).
func (a *authRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", a.r.ID), slog.String("client_id", a.r.ClientID),
		slog.String("redirect_uri", a.r.RedirectURI))
}

// refreshRequest is a grant being refreshed (op.RefreshTokenRequest).
type refreshRequest struct {
	g      store.OIDCGrant
	scopes []string
}

var _ op.RefreshTokenRequest = (*refreshRequest)(nil)

func (r *refreshRequest) GetAMR() []string            { return r.g.AMR }
func (r *refreshRequest) GetAudience() []string       { return []string{r.g.ClientID} }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.g.AuthTime }
func (r *refreshRequest) GetClientID() string         { return r.g.ClientID }
func (r *refreshRequest) GetScopes() []string         { return r.scopes }
func (r *refreshRequest) GetSubject() string          { return r.g.AccountID }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }
func (r *refreshRequest) sessionID() string           { return r.g.SessionID }

// serviceRequest is a client credentials grant: the subject is the client.
type serviceRequest struct {
	clientID string
	scopes   []string
}

var _ op.TokenRequest = (*serviceRequest)(nil)

func (r *serviceRequest) GetSubject() string    { return r.clientID }
func (r *serviceRequest) GetAudience() []string { return []string{r.clientID} }
func (r *serviceRequest) GetScopes() []string   { return r.scopes }
