package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Session is a single sign-on session; the browser holds a random token
// whose SHA-256 is TokenHash.
type Session struct {
	ID          string
	TokenHash   string
	AccountID   string
	Remember    bool
	AuthTime    time.Time
	AuthMethods string // space-separated: "pwd", later "otp", "link"...
	UserAgent   string
	IP          string
	CreatedAt   time.Time
	LastSeenAt  time.Time
	ExpiresAt   time.Time // absolute end
	RevokedAt   *time.Time
}

const sessionCols = `id, token_hash, account_id, remember, auth_time, auth_methods, user_agent, ip,
	created_at, last_seen_at, expires_at, revoked_at`

// sessionRow holds the columns of sessionCols while they are scanned.
type sessionRow struct {
	s                            Session
	remember                     int
	auth, created, seen, expires int64
	revoked                      sql.NullInt64
}

func (r *sessionRow) dests() []any {
	return []any{&r.s.ID, &r.s.TokenHash, &r.s.AccountID, &r.remember, &r.auth, &r.s.AuthMethods, &r.s.UserAgent, &r.s.IP,
		&r.created, &r.seen, &r.expires, &r.revoked}
}

func (r *sessionRow) session() Session {
	s := r.s
	s.Remember = r.remember == 1
	s.AuthTime, s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromMS(r.auth), fromMS(r.created), fromMS(r.seen), fromMS(r.expires)
	s.RevokedAt = fromNull(r.revoked)
	return s
}

func scanSession(row interface{ Scan(...any) error }) (Session, error) {
	var r sessionRow
	err := row.Scan(r.dests()...)
	return r.session(), err
}

// CreateSession inserts a session.
func (db *DB) CreateSession(ctx context.Context, s *Session) error {
	if s.ID == "" {
		s.ID = NewID()
	}
	_, err := db.exec(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		s.ID, s.TokenHash, s.AccountID, boolInt(s.Remember), ms(s.AuthTime), s.AuthMethods, s.UserAgent, s.IP,
		ms(s.CreatedAt), ms(s.LastSeenAt), ms(s.ExpiresAt), msPtr(s.RevokedAt))
	if err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	return nil
}

// SessionAndAccount returns the session of a token hash with its account,
// in one query (every signed-in request asks). Revoked or expired sessions
// included: the caller decides.
func (db *DB) SessionAndAccount(ctx context.Context, hash string) (Session, Account, error) {
	var (
		sr sessionRow
		ar accountRow
	)
	err := db.queryRow(ctx, `SELECT `+prefixed("s.", sessionCols)+`, `+prefixed("a.", accountCols)+`
		FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE s.token_hash = ?`, hash).Scan(append(sr.dests(), ar.dests()...)...)
	if err != nil {
		return Session{}, Account{}, db.mapErr(err)
	}
	return sr.session(), ar.account(), nil
}

// AccountOfLiveSession returns the account of a session that stands: not
// signed out (revoked), before its absolute end; ErrNotFound otherwise. CAS
// tickets and proxy-granting tickets live as long as such a session.
func (db *DB) AccountOfLiveSession(ctx context.Context, sessionID string, now time.Time) (Account, error) {
	var r accountRow
	err := db.queryRow(ctx, `SELECT `+prefixed("a.", accountCols)+` FROM sessions s JOIN accounts a ON a.id = s.account_id
		WHERE s.id = ? AND s.revoked_at IS NULL AND s.expires_at > ?`, sessionID, ms(now)).Scan(r.dests()...)
	if err != nil {
		return Account{}, db.mapErr(err)
	}
	return r.account(), nil
}

// TouchSession records activity.
func (db *DB) TouchSession(ctx context.Context, id string, seen time.Time, ip string) error {
	_, err := db.exec(ctx, `UPDATE sessions SET last_seen_at = ?, ip = ? WHERE id = ? AND revoked_at IS NULL`, ms(seen), ip, id)
	return err
}

// ListSessions returns the account's live sessions, most recent first.
func (db *DB) ListSessions(ctx context.Context, accountID string, now time.Time) ([]Session, error) {
	rows, err := db.query(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE account_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY last_seen_at DESC`, accountID, ms(now))
	if err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ReauthenticateSession records a new sign-in in a live session (new token,
// auth time, methods, remember-me and end); ErrNotFound when it has ended.
func (db *DB) ReauthenticateSession(ctx context.Context, s Session) error {
	return db.execOne(ctx, `UPDATE sessions SET token_hash = ?, auth_time = ?, auth_methods = ?, remember = ?, last_seen_at = ?,
		ip = ?, user_agent = ?, expires_at = ? WHERE id = ? AND revoked_at IS NULL`, s.TokenHash, ms(s.AuthTime), s.AuthMethods,
		boolInt(s.Remember), ms(s.LastSeenAt), s.IP, s.UserAgent, ms(s.ExpiresAt), s.ID)
}

// RevokeSession ends one session of the account.
func (db *DB) RevokeSession(ctx context.Context, accountID, id string, now time.Time) error {
	err := db.execOne(ctx, `UPDATE sessions SET revoked_at = ? WHERE id = ? AND account_id = ? AND revoked_at IS NULL`, ms(now), id, accountID)
	if err == nil {
		sessionsEnded(ctx)
	}
	return err
}

// RevokeOtherSessions ends every live session of the account but exceptID
// ("" ends them all) and returns how many it ended.
func (db *DB) RevokeOtherSessions(ctx context.Context, accountID, exceptID string, now time.Time) (int64, error) {
	res, err := db.exec(ctx, `UPDATE sessions SET revoked_at = ? WHERE account_id = ? AND id <> ? AND revoked_at IS NULL`, ms(now), accountID, exceptID)
	if err != nil {
		return 0, fmt.Errorf("store: revoke sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if n > 0 {
		sessionsEnded(ctx)
	}
	return n, err
}

type endNoticeKey struct{}

// WithSessionEndNotice returns ctx in which every store call that ends a
// session calls notice (maybe before its transaction commits: notice should
// only take note). The HTTP layer wakes the delivery worker after such a
// request, so that single logout leaves at once.
func WithSessionEndNotice(ctx context.Context, notice func()) context.Context {
	return context.WithValue(ctx, endNoticeKey{}, notice)
}

func sessionsEnded(ctx context.Context) {
	if notice, ok := ctx.Value(endNoticeKey{}).(func()); ok {
		notice()
	}
}

// DeleteExpiredSessions removes sessions ended before cutoff.
func (db *DB) DeleteExpiredSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := db.exec(ctx, `DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?`, ms(cutoff), ms(cutoff))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
