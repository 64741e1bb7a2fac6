package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"campusid/internal/keys"
	"campusid/internal/session"
	"campusid/internal/store"
)

// Back-channel logout (OpenID Connect Back-Channel Logout 1.0). A campusid
// session ends in many places: sign-out (/logout), RP-initiated logout,
// "sign out this session" and "all others" on the account page, a password
// change or reset, an account disabled. They all set sessions.revoked_at;
// BackChannel.Propagate, run by the delivery worker at each pass, finds
// every session revoked since the last look-back window and not yet in
// session_logouts, and in one transaction per session:
//   - marks it in session_logouts (the claim: one node does it once),
//   - revokes the access tokens issued under it, and its grants without
//     offline_access (the spec, 2.7: refresh tokens issued with
//     offline_access normally SHOULD NOT be revoked: those are devices),
//   - queues one logout token per application that has a back-channel
//     logout URI and holds tokens or grants of the session (RP-initiated
//     logout included: the initiating application gets one too, harmless
//     and what the spec allows),
//   - runs the Also hooks (CAS single logout queues its logoutRequests
//     there: every protocol shares the one claim).
// The revocation itself is the durable event, so no path can forget to
// propagate and a crash between the two loses nothing.

// DeliveryKindBackchannelLogout is the deliveries.kind of logout tokens.
const DeliveryKindBackchannelLogout = "oidc_backchannel_logout"

// BackchannelLogoutEvent is the events member of a logout token.
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// logoutLookBack bounds how far back ended sessions are looked for (a node
// down longer than that does not send stale logouts); session_logouts rows
// are kept twice as long.
const logoutLookBack = 24 * time.Hour

// BackChannel propagates ended sessions.
type BackChannel struct {
	DB     *store.DB
	Keys   *keys.Manager
	Issuer string
	Now    func() time.Time
	// Also run in the propagating transaction of each ended session, after
	// the claim: other protocols queue their own logout messages there.
	Also []func(ctx context.Context, tx *store.DB, s store.Session, now time.Time) error
}

// LogoutClaims is the payload of a logout token.
type LogoutClaims struct {
	Issuer   string                    `json:"iss"`
	Subject  string                    `json:"sub,omitempty"`
	Audience string                    `json:"aud"`
	IssuedAt int64                     `json:"iat"`
	Expiry   int64                     `json:"exp"`
	ID       string                    `json:"jti"`
	Events   map[string]map[string]any `json:"events"`
	SID      string                    `json:"sid,omitempty"`
}

// Propagate handles every newly ended session (see above).
func (b *BackChannel) Propagate(ctx context.Context) error {
	now := b.Now()
	if err := b.DB.DeleteOldSessionLogouts(ctx, now.Add(-2*logoutLookBack)); err != nil {
		return err
	}
	for {
		ended, err := b.DB.EndedSessions(ctx, now.Add(-logoutLookBack), 50)
		if err != nil {
			return err
		}
		if len(ended) == 0 {
			return nil
		}
		var errs []error
		for _, s := range ended {
			if err := b.propagate(ctx, s); err != nil {
				errs = append(errs, fmt.Errorf("oidc: back-channel logout of session %s: %w", s.ID, err))
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...) // next pass tries again
		}
	}
}

func (b *BackChannel) propagate(ctx context.Context, s store.Session) error {
	now := b.Now()
	key, err := b.Keys.SigningKey(ctx)
	if err != nil {
		return err
	}
	return b.DB.InTx(ctx, func(tx *store.DB) error {
		if ok, err := tx.ClaimSessionLogout(ctx, s.ID, now); err != nil || !ok {
			return err
		}
		targets, err := tx.SessionLogoutTargets(ctx, s.ID)
		if err != nil {
			return err
		}
		if err := tx.RevokeSessionTokens(ctx, s.ID, now); err != nil {
			return err
		}
		for _, t := range targets {
			token, err := b.LogoutToken(key, t.ClientID, t.AccountID, s.ID, now)
			if err != nil {
				return err
			}
			if err := tx.EnqueueDelivery(ctx, &store.Delivery{Kind: DeliveryKindBackchannelLogout, URL: t.URI,
				Body: url.Values{"logout_token": {token}}.Encode(), ContentType: "application/x-www-form-urlencoded",
				Subject: t.ClientID, CreatedAt: now}); err != nil {
				return err
			}
		}
		for _, also := range b.Also {
			if err := also(ctx, tx, s, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// logoutTokenLifetime: the receiver may reject older tokens; retries of a
// delivery resend the same token, so it lasts as long as delivery may.
const logoutTokenLifetime = 24 * time.Hour

// LogoutToken signs a logout token with the active key (typ logout+jwt).
func (b *BackChannel) LogoutToken(key *keys.PrivateKey, clientID, accountID, sid string, now time.Time) (string, error) {
	opts := (&jose.SignerOptions{}).WithType("logout+jwt")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.SignatureAlgorithm(),
		Key: jose.JSONWebKey{Key: key.Key(), KeyID: key.ID()}}, opts)
	if err != nil {
		return "", fmt.Errorf("oidc: logout token signer: %w", err)
	}
	c := LogoutClaims{Issuer: b.Issuer, Subject: accountID, Audience: clientID, IssuedAt: now.Unix(),
		Expiry: now.Add(logoutTokenLifetime).Unix(), ID: session.NewToken(), SID: sid,
		Events: map[string]map[string]any{BackchannelLogoutEvent: {}}}
	return jwt.Signed(signer).Claims(c).Serialize()
}
