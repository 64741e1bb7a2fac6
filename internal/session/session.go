// Package session is the single sign-on session: an opaque random token in
// a cookie, its SHA-256 in the sessions table. A session without
// remember-me lives in a browser-session cookie and ends after IdleTimeout
// without use (and AbsoluteTimeout in any case); with remember-me the
// cookie and the session last RememberFor.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"campusid/internal/store"
	"campusid/internal/web"
)

// touchEvery limits last-seen writes to one a minute per session.
const touchEvery = time.Minute

// Manager creates, finds and ends sessions.
type Manager struct {
	DB              *store.DB
	Secure          bool // public URL is HTTPS: Secure cookie with the __Host- prefix
	IdleTimeout     time.Duration
	AbsoluteTimeout time.Duration
	RememberFor     time.Duration
	Now             func() time.Time
}

// CookieName is the session cookie's name: __Host- prefixed over HTTPS, so
// no subdomain can set or shadow it.
func (m *Manager) CookieName() string {
	if m.Secure {
		return "__Host-campusid_session"
	}
	return "campusid_session"
}

// Current is the signed-in session and account of a request.
type Current struct {
	Session store.Session
	Account store.Account
}

type ctxKey struct{}

// FromContext returns the request's session, or nil when signed out.
func FromContext(ctx context.Context) *Current {
	c, _ := ctx.Value(ctxKey{}).(*Current)
	return c
}

// HashToken is how every token is stored: hex SHA-256.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken returns 256 random bits, URL-safe.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Start creates a session for the account and sets its cookie.
func (m *Manager) Start(ctx context.Context, w http.ResponseWriter, accountID, methods string, remember bool) (store.Session, error) {
	now := m.Now()
	info := web.Info(ctx)
	token := NewToken()
	s := store.Session{
		TokenHash: HashToken(token), AccountID: accountID, Remember: remember, AuthTime: now, AuthMethods: methods,
		UserAgent: truncate(info.UserAgent, 300), IP: info.ClientIP, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(m.AbsoluteTimeout),
	}
	if remember {
		s.ExpiresAt = now.Add(m.RememberFor)
	}
	if err := m.DB.CreateSession(ctx, &s); err != nil {
		return s, fmt.Errorf("session: start: %w", err)
	}
	m.setCookie(w, token, s)
	return s, nil
}

// Reauthenticate records a new sign-in of cur's account in cur's session:
// a new token (so a cookie planted before cannot ride on it), a new
// auth_time and methods, the new remember-me choice and absolute end. The
// session keeps its id, so what hangs on it (CAS tickets and proxy-granting
// tickets, OpenID Connect grants) survives: asking one application for a
// fresh password (CAS renew, OpenID Connect prompt=login) does not sign the
// person out of the others.
func (m *Manager) Reauthenticate(ctx context.Context, w http.ResponseWriter, cur *Current, methods string, remember bool) (store.Session, error) {
	now := m.Now()
	info := web.Info(ctx)
	token := NewToken()
	s := cur.Session
	s.TokenHash, s.AuthTime, s.AuthMethods, s.Remember, s.LastSeenAt = HashToken(token), now, methods, remember, now
	s.IP, s.UserAgent = info.ClientIP, truncate(info.UserAgent, 300)
	s.ExpiresAt = now.Add(m.AbsoluteTimeout)
	if remember {
		s.ExpiresAt = now.Add(m.RememberFor)
	}
	if err := m.DB.ReauthenticateSession(ctx, s); err != nil {
		return s, fmt.Errorf("session: reauthenticate: %w", err)
	}
	m.setCookie(w, token, s)
	return s, nil
}

// setCookie gives the browser the token of s; a remember-me session's
// cookie outlives the browser.
func (m *Manager) setCookie(w http.ResponseWriter, token string, s store.Session) {
	c := m.cookie(token)
	if s.Remember {
		c.Expires = s.ExpiresAt
		c.MaxAge = int(m.RememberFor.Seconds())
	}
	http.SetCookie(w, c)
}

func (m *Manager) cookie(value string) *http.Cookie {
	return &http.Cookie{Name: m.CookieName(), Value: value, Path: "/", HttpOnly: true, Secure: m.Secure, SameSite: http.SameSiteLaxMode}
}

// ErrNoSession: no live session in the request.
var ErrNoSession = errors.New("session: none")

// Lookup finds the live session of the request's cookie and its account.
func (m *Manager) Lookup(r *http.Request) (*Current, error) {
	c, err := r.Cookie(m.CookieName())
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil, ErrNoSession
	}
	ctx := r.Context()
	s, a, err := m.DB.SessionAndAccount(ctx, HashToken(c.Value))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("session: lookup: %w", err)
	}
	now := m.Now()
	if !m.live(s, now) {
		return nil, ErrNoSession
	}
	if a.State == store.StateDisabled || (a.ExpiresAt != nil && !now.Before(*a.ExpiresAt)) {
		return nil, ErrNoSession
	}
	if now.Sub(s.LastSeenAt) >= touchEvery {
		ip := web.Info(ctx).ClientIP
		if err := m.DB.TouchSession(ctx, s.ID, now, ip); err == nil {
			s.LastSeenAt, s.IP = now, ip
		}
	}
	return &Current{Session: s, Account: a}, nil
}

func (m *Manager) live(s store.Session, now time.Time) bool {
	if s.RevokedAt != nil || !now.Before(s.ExpiresAt) {
		return false
	}
	return s.Remember || now.Sub(s.LastSeenAt) < m.IdleTimeout
}

// Middleware puts the request's live session, if any, in its context. A
// dead session's cookie is cleared.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur, err := m.Lookup(r)
		if err == nil {
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, cur))
		} else if _, cerr := r.Cookie(m.CookieName()); cerr == nil && errors.Is(err, ErrNoSession) {
			m.Clear(w)
		}
		next.ServeHTTP(w, r)
	})
}

// Clear removes the session cookie from the browser.
func (m *Manager) Clear(w http.ResponseWriter) {
	c := m.cookie("")
	c.MaxAge = -1
	http.SetCookie(w, c)
}

// End revokes the request's session and clears its cookie.
func (m *Manager) End(ctx context.Context, w http.ResponseWriter, cur *Current) error {
	m.Clear(w)
	if cur == nil {
		return nil
	}
	err := m.DB.RevokeSession(ctx, cur.Account.ID, cur.Session.ID, m.Now())
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// Viewer is the header's "signed in as" for web.App.
func Viewer(r *http.Request) *web.Viewer {
	if c := FromContext(r.Context()); c != nil {
		return &web.Viewer{Name: c.Account.DisplayName, Identifier: c.Account.Identifier}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
