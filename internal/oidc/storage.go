package oidc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"campusid/internal/account"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// codeLifetime is how long an authorization code may wait for its redemption.
const codeLifetime = 2 * time.Minute

// grantPrefix marks the "token id" of a refresh token handed to RevokeToken:
// revoking a refresh token revokes its whole grant.
const grantPrefix = "grant:"

// storage is op.Storage over the store: every request, token and grant is a
// row, so any node can answer for any other.
type storage struct{ h *Handler }

var (
	_ op.Storage                        = (*storage)(nil)
	_ op.ClientCredentialsStorage       = (*storage)(nil)
	_ op.CanTerminateSessionFromRequest = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*storage)(nil)
)

func (s *storage) db() *store.DB       { return s.h.DB }
func (s *storage) now() time.Time      { return s.h.Now() }
func hashToken(t string) string        { return session.HashToken(t) }
func errGrant(desc string) *oidc.Error { return oidc.ErrInvalidGrant().WithDescription("%s", desc) }

// --- the authorization request -------------------------------------------

func (s *storage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	now := s.now()
	r := store.OIDCAuthRequest{ClientID: req.ClientID, RedirectURI: req.RedirectURI, Scopes: req.Scopes,
		ResponseType: string(req.ResponseType), ResponseMode: string(req.ResponseMode), OAuthState: req.State, Nonce: req.Nonce,
		Prompt: req.Prompt, LoginHint: truncate(strings.TrimSpace(req.LoginHint), 320), CodeChallenge: req.CodeChallenge,
		CodeMethod: string(req.CodeChallengeMethod), CreatedAt: now, ExpiresAt: now.Add(s.h.AuthRequestLifetime)}
	if req.MaxAge != nil {
		v := int64(*req.MaxAge)
		r.MaxAge = &v
	}
	if err := s.db().CreateOIDCAuthRequest(ctx, &r); err != nil {
		return nil, err
	}
	return &authRequest{r}, nil
}

func (s *storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	r, err := s.db().OIDCAuthRequestByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("oidc: auth request: %w", err)
	}
	if !s.now().Before(r.ExpiresAt) {
		return nil, errors.New("oidc: auth request expired")
	}
	return &authRequest{r}, nil
}

// AuthRequestByCode finds the request of a code. A code presented again
// after its redemption revokes what that redemption issued (RFC 6749, 4.1.2).
func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	r, err := s.db().OIDCAuthRequestByCode(ctx, hashToken(code))
	if err != nil {
		return nil, fmt.Errorf("oidc: code: %w", err)
	}
	now := s.now()
	switch {
	case r.State == store.AuthRequestExchanged:
		s.revokeIssued(ctx, r, "code_reuse")
		return nil, errors.New("oidc: code used twice")
	case r.State != store.AuthRequestCode:
		return nil, errors.New("oidc: code not issued")
	case r.CodeExpiresAt == nil || !now.Before(*r.CodeExpiresAt):
		return nil, errors.New("oidc: code expired")
	}
	return &authRequest{r}, nil
}

// revokeIssued revokes the grant and access token a code's redemption issued.
func (s *storage) revokeIssued(ctx context.Context, r store.OIDCAuthRequest, reason string) {
	now := s.now()
	if r.GrantID != "" {
		s.db().RevokeOIDCGrant(ctx, r.GrantID, reason, now)
	}
	if r.AccessTokenID != "" {
		s.db().RevokeOIDCAccessToken(ctx, r.AccessTokenID, now)
	}
	s.h.Audit.Record(ctx, nil, store.AuditEvent{Type: "oidc." + reason, AccountID: r.AccountID, Actor: "client:" + r.ClientID,
		Details: map[string]string{"client_id": r.ClientID, "grant_id": r.GrantID}})
}

func (s *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	err := s.db().SaveOIDCAuthCode(ctx, id, hashToken(code), s.now().Add(codeLifetime))
	if errors.Is(err, store.ErrNotFound) {
		return oidc.ErrInvalidRequest().WithDescription("this authorization was already used")
	}
	return err
}

func (s *storage) DeleteAuthRequest(ctx context.Context, id string) error {
	return s.db().DeleteOIDCAuthRequest(ctx, id)
}

// --- tokens ---------------------------------------------------------------

// CreateAccessToken issues an access token without a refresh token: a code
// flow without offline_access, or client credentials.
func (s *storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	now := s.now()
	t := store.OIDCAccessToken{Scopes: req.GetScopes(), CreatedAt: now, ExpiresAt: now.Add(s.h.AccessTokenLifetime)}
	switch r := req.(type) {
	case *authRequest:
		err := s.db().InTx(ctx, func(tx *store.DB) error {
			if err := claimCode(ctx, tx, r); err != nil {
				return err
			}
			t.AccountID, t.ClientID, t.SessionID, t.AuthTime = r.r.AccountID, r.r.ClientID, r.r.SessionID, r.r.AuthTime
			if err := tx.CreateOIDCAccessToken(ctx, &t); err != nil {
				return err
			}
			return tx.SetOIDCAuthRequestIssued(ctx, r.r.ID, "", t.ID)
		})
		return t.ID, t.ExpiresAt, err
	case *serviceRequest:
		t.ClientID = r.clientID
		err := s.db().CreateOIDCAccessToken(ctx, &t)
		return t.ID, t.ExpiresAt, err
	}
	return "", time.Time{}, oidc.ErrUnsupportedGrantType()
}

// claimCode makes a code's redemption single-use, even under concurrency.
func claimCode(ctx context.Context, tx *store.DB, r *authRequest) error {
	err := tx.ClaimOIDCAuthCode(ctx, r.r.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errGrant("the code was already used")
	}
	return err
}

// CreateAccessAndRefreshTokens starts a grant (code flow with
// offline_access) or rotates its refresh token (refresh grant). A refresh
// token used twice revokes its grant.
func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	now := s.now()
	refresh := session.NewToken()
	t := store.OIDCAccessToken{Scopes: req.GetScopes(), CreatedAt: now, ExpiresAt: now.Add(s.h.AccessTokenLifetime)}
	rt := store.OIDCRefreshToken{TokenHash: hashToken(refresh), CreatedAt: now, ExpiresAt: now.Add(s.h.RefreshTokenLifetime)}
	info := web.Info(ctx)
	switch r := req.(type) {
	case *authRequest:
		err := s.db().InTx(ctx, func(tx *store.DB) error {
			if err := claimCode(ctx, tx, r); err != nil {
				return err
			}
			g := store.OIDCGrant{AccountID: r.r.AccountID, ClientID: r.r.ClientID, Scopes: r.r.Scopes, AuthTime: r.GetAuthTime(),
				AMR: r.r.AMR, SessionID: r.r.SessionID, UserAgent: truncate(info.UserAgent, 300), IP: info.ClientIP,
				CreatedAt: now, LastUsedAt: now}
			if err := tx.CreateOIDCGrant(ctx, &g); err != nil {
				return err
			}
			rt.GrantID = g.ID
			if err := tx.CreateOIDCRefreshToken(ctx, rt); err != nil {
				return err
			}
			t.GrantID, t.AccountID, t.ClientID, t.SessionID, t.AuthTime = g.ID, g.AccountID, g.ClientID, g.SessionID, r.r.AuthTime
			if err := tx.CreateOIDCAccessToken(ctx, &t); err != nil {
				return err
			}
			return tx.SetOIDCAuthRequestIssued(ctx, r.r.ID, g.ID, t.ID)
		})
		return t.ID, refresh, t.ExpiresAt, err
	case *refreshRequest:
		reused := false
		err := s.db().InTx(ctx, func(tx *store.DB) error {
			if err := tx.UseOIDCRefreshToken(ctx, hashToken(current), now); errors.Is(err, store.ErrNotFound) {
				reused = true
				return errGrant("refresh token already used")
			} else if err != nil {
				return err
			}
			g, err := tx.OIDCGrantByID(ctx, r.g.ID)
			if err != nil {
				return err
			}
			if g.RevokedAt != nil {
				return errGrant("grant revoked")
			}
			rt.GrantID = g.ID
			if err := tx.CreateOIDCRefreshToken(ctx, rt); err != nil {
				return err
			}
			auth := g.AuthTime
			t.GrantID, t.AccountID, t.ClientID, t.SessionID, t.AuthTime = g.ID, g.AccountID, g.ClientID, g.SessionID, &auth
			if err := tx.CreateOIDCAccessToken(ctx, &t); err != nil {
				return err
			}
			return tx.TouchOIDCGrant(ctx, g.ID, now, info.ClientIP)
		})
		if reused { // two uses raced: the loser revokes the family
			s.reuse(ctx, r.g)
		}
		return t.ID, refresh, t.ExpiresAt, err
	}
	return "", "", time.Time{}, oidc.ErrUnsupportedGrantType()
}

// reuse revokes a grant whose used refresh token came back: a theft signal.
func (s *storage) reuse(ctx context.Context, g store.OIDCGrant) {
	err := s.db().RevokeOIDCGrant(ctx, g.ID, "reuse", s.now())
	if errors.Is(err, store.ErrNotFound) {
		return // already revoked
	}
	s.h.Audit.Record(ctx, nil, store.AuditEvent{Type: "oidc.refresh_reuse", AccountID: g.AccountID, Actor: "client:" + g.ClientID,
		Details: map[string]string{"client_id": g.ClientID, "grant_id": g.ID}})
}

func (s *storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	rt, err := s.db().OIDCRefreshTokenByHash(ctx, hashToken(token))
	if err != nil {
		return nil, fmt.Errorf("oidc: refresh token: %w", err)
	}
	g, err := s.db().OIDCGrantByID(ctx, rt.GrantID)
	if err != nil {
		return nil, fmt.Errorf("oidc: grant: %w", err)
	}
	now := s.now()
	switch {
	case g.RevokedAt != nil:
		return nil, errors.New("oidc: grant revoked")
	case rt.UsedAt != nil:
		s.reuse(ctx, g)
		return nil, errors.New("oidc: refresh token reused")
	case !now.Before(rt.ExpiresAt):
		return nil, errors.New("oidc: refresh token expired")
	}
	if _, err := s.liveAccount(ctx, g.AccountID); err != nil {
		return nil, err
	}
	return &refreshRequest{g: g, scopes: g.Scopes}, nil
}

// liveAccount returns the account when it may still sign in.
func (s *storage) liveAccount(ctx context.Context, id string) (store.Account, error) {
	a, err := s.db().AccountByID(ctx, id)
	if err != nil {
		return a, fmt.Errorf("oidc: account: %w", err)
	}
	if p := account.SignInProblem(a, s.now()); p != "" {
		return a, fmt.Errorf("oidc: account %s", p)
	}
	return a, nil
}

func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

// TerminateSessionFromRequest does not end anything yet: it sends the
// browser to the confirmation page (logout.go) with the validated return
// address sealed in the link.
func (s *storage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	return s.h.logoutConfirmURL(req.ClientID, req.RedirectURI)
}

// GetRefreshTokenInfo lets the revocation endpoint recognize a refresh token.
func (s *storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	rt, err := s.db().OIDCRefreshTokenByHash(ctx, hashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return "", "", op.ErrInvalidRefreshToken
	}
	if err != nil {
		return "", "", err
	}
	g, err := s.db().OIDCGrantByID(ctx, rt.GrantID)
	if err != nil {
		return "", "", err
	}
	return g.AccountID, grantPrefix + g.ID, nil
}

// RevokeToken revokes a refresh token's grant or one access token, when the
// token belongs to the client asking (RFC 7009). Unknown tokens are no error.
func (s *storage) RevokeToken(ctx context.Context, tokenOrID, _, clientID string) *oidc.Error {
	now := s.now()
	if id, ok := strings.CutPrefix(tokenOrID, grantPrefix); ok {
		g, err := s.db().OIDCGrantByID(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return oidc.ErrServerError().WithParent(err)
		}
		if g.ClientID != clientID {
			return oidc.ErrUnauthorizedClient().WithDescription("the token was not issued to this client")
		}
		if err := s.db().RevokeOIDCGrant(ctx, g.ID, "client_revoked", now); err != nil && !errors.Is(err, store.ErrNotFound) {
			return oidc.ErrServerError().WithParent(err)
		}
		s.h.Audit.Record(ctx, nil, store.AuditEvent{Type: "token.revoke", AccountID: g.AccountID, Actor: "client:" + clientID,
			Details: map[string]string{"client_id": clientID, "grant_id": g.ID, "token": "refresh"}})
		return nil
	}
	t, err := s.db().OIDCAccessTokenByID(ctx, tokenOrID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	if t.ClientID != clientID {
		return oidc.ErrUnauthorizedClient().WithDescription("the token was not issued to this client")
	}
	if err := s.db().RevokeOIDCAccessToken(ctx, t.ID, now); err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	s.h.Audit.Record(ctx, nil, store.AuditEvent{Type: "token.revoke", AccountID: t.AccountID, Actor: "client:" + clientID,
		Details: map[string]string{"client_id": clientID, "token": "access"}})
	return nil
}

// --- keys -------------------------------------------------------------------

func (s *storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	k, err := s.h.Keys.SigningKey(ctx)
	if err != nil {
		return nil, err
	}
	return k, nil
}

func (s *storage) SignatureAlgorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	return s.h.Keys.Algorithms(ctx)
}

func (s *storage) KeySet(ctx context.Context) ([]op.Key, error) {
	keys, err := s.h.Keys.PublicKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]op.Key, len(keys))
	for i, k := range keys {
		out[i] = k
	}
	return out, nil
}

// --- clients ----------------------------------------------------------------

func (s *storage) client(ctx context.Context, id string) (*client, error) {
	c, err := s.db().OIDCClientByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("oidc: unknown client %q", truncate(id, 100))
	}
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	return &client{c: c, idTokenLifetime: s.h.IDTokenLifetime}, nil
}

func (s *storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	return s.client(ctx, id)
}

func (s *storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := s.client(ctx, id)
	if err != nil {
		return err
	}
	if !secretMatches(c.c, secret) {
		return errors.New("oidc: wrong client secret")
	}
	return nil
}

func (s *storage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	c, err := s.client(ctx, id)
	if err != nil {
		return nil, err
	}
	if !secretMatches(c.c, secret) {
		return nil, errors.New("oidc: wrong client secret")
	}
	c.jwtAccessTokens = true
	return c, nil
}

// ClientCredentialsTokenRequest grants the scopes asked for among the
// client's own (the identity scopes mean nothing without a person).
func (s *storage) ClientCredentialsTokenRequest(ctx context.Context, id string, scopes []string) (op.TokenRequest, error) {
	c, err := s.client(ctx, id)
	if err != nil {
		return nil, err
	}
	var granted []string
	for _, sc := range scopes {
		if slices.Contains(StandardScopes, sc) || !c.IsScopeAllowed(sc) {
			return nil, oidc.ErrInvalidScope().WithDescription("scope %q is not allowed for this client", sc)
		}
		granted = append(granted, sc)
	}
	return &serviceRequest{clientID: id, scopes: granted}, nil
}

// --- claims -----------------------------------------------------------------

// SetUserinfoFromScopes fills the claims of the ID token.
func (s *storage) SetUserinfoFromScopes(ctx context.Context, ui *oidc.UserInfo, userID, _ string, scopes []string) error {
	a, err := s.liveAccount(ctx, userID)
	if err != nil {
		return err
	}
	return s.claims(ctx, ui, a, scopes)
}

// SetUserinfoFromRequest adds the single sign-on session (sid) to the ID token.
func (s *storage) SetUserinfoFromRequest(_ context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, _ []string) error {
	if r, ok := req.(interface{ sessionID() string }); ok && r.sessionID() != "" {
		ui.AppendClaims("sid", r.sessionID())
	}
	return nil
}

// claims says who the account is, per scope: sub is its random id (stable,
// never the email); profile and email add what their names say.
func (s *storage) claims(ctx context.Context, ui *oidc.UserInfo, a store.Account, scopes []string) error {
	ui.Subject = a.ID
	if slices.Contains(scopes, ScopeProfile) {
		ui.Name, ui.GivenName, ui.FamilyName, ui.PreferredUsername = a.DisplayName, a.GivenName, a.FamilyName, a.Identifier
		if a.Establishment != "" {
			ui.AppendClaims("establishment", a.Establishment)
		}
	}
	if slices.Contains(scopes, ScopeEmail) {
		emails, err := s.db().EmailsOf(ctx, a.ID)
		if err != nil {
			return err
		}
		if e, ok := primaryVerified(emails); ok {
			ui.Email, ui.EmailVerified = e.Address, oidc.Bool(true)
		}
	}
	return nil
}

// primaryVerified is the primary address when verified, else the first verified one.
func primaryVerified(emails []store.Email) (store.Email, bool) {
	for _, e := range emails {
		if e.Primary && e.VerifiedAt != nil {
			return e, true
		}
	}
	for _, e := range emails {
		if e.VerifiedAt != nil {
			return e, true
		}
	}
	return store.Email{}, false
}

// liveToken returns the access token row when it is still good.
func (s *storage) liveToken(ctx context.Context, id, subject string) (store.OIDCAccessToken, error) {
	t, err := s.db().OIDCAccessTokenByID(ctx, id)
	if err != nil {
		return t, fmt.Errorf("oidc: access token: %w", err)
	}
	now := s.now()
	switch {
	case t.RevokedAt != nil:
		return t, errors.New("oidc: access token revoked")
	case !now.Before(t.ExpiresAt):
		return t, errors.New("oidc: access token expired")
	case t.AccountID != "" && t.AccountID != subject, t.AccountID == "" && t.ClientID != subject:
		return t, errors.New("oidc: access token subject mismatch")
	}
	if t.GrantID != "" {
		g, err := s.db().OIDCGrantByID(ctx, t.GrantID)
		if err != nil || g.RevokedAt != nil {
			return t, errors.New("oidc: grant revoked")
		}
	}
	return t, nil
}

// SetUserinfoFromToken answers the userinfo endpoint.
func (s *storage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, subject, _ string) error {
	t, err := s.liveToken(ctx, tokenID, subject)
	if err != nil {
		return oidc.ErrInvalidRequest().WithDescription("invalid token")
	}
	if t.AccountID == "" {
		return oidc.ErrInvalidRequest().WithDescription("a client credentials token has no user")
	}
	a, err := s.liveAccount(ctx, t.AccountID)
	if err != nil {
		return oidc.ErrInvalidRequest().WithDescription("invalid token")
	}
	return s.claims(ctx, ui, a, t.Scopes)
}

// SetIntrospectionFromToken answers the introspection endpoint (RFC 7662)
// for any authenticated confidential client: what the token is good for and
// who it is for, without the person's email or names.
func (s *storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, _ string) error {
	t, err := s.liveToken(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	resp.Scope, resp.ClientID, resp.TokenType = t.Scopes, t.ClientID, oidc.BearerToken
	resp.Expiration, resp.IssuedAt, resp.NotBefore = oidc.FromTime(t.ExpiresAt), oidc.FromTime(t.CreatedAt), oidc.FromTime(t.CreatedAt)
	resp.Subject, resp.Audience, resp.Issuer, resp.JWTID = subject, []string{t.ClientID}, s.h.Issuer, t.ID
	if t.AuthTime != nil {
		resp.AuthTime = oidc.FromTime(*t.AuthTime)
	}
	if t.AccountID != "" {
		a, err := s.liveAccount(ctx, t.AccountID)
		if err != nil {
			return err
		}
		resp.Username = a.Identifier
	}
	return nil
}

// GetPrivateClaimsFromScopes adds the granted scopes to JWT access tokens.
func (s *storage) GetPrivateClaimsFromScopes(_ context.Context, _, _ string, scopes []string) (map[string]any, error) {
	if len(scopes) == 0 {
		return nil, nil
	}
	return map[string]any{"scope": strings.Join(scopes, " ")}, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("oidc: client keys (private_key_jwt) are not supported")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("oidc: the JWT profile grant is not supported")
}

func (s *storage) Health(ctx context.Context) error { return s.db().Ping(ctx) }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
