package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed" // gave up: permanent refusal or too old
)

// Delivery is one HTTP POST to another system (a back-channel logout token,
// later a CAS logoutRequest), durable and retried until delivered.
type Delivery struct {
	ID            string
	Kind          string
	URL           string
	Body          string
	ContentType   string
	Subject       string // what it concerns (a client id...), for logs
	State         string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
	DeliveredAt   *time.Time
}

const deliveryCols = `id, kind, url, body, content_type, subject, state, attempts, next_attempt_at, last_error,
	created_at, delivered_at`

func scanDelivery(row interface{ Scan(...any) error }) (Delivery, error) {
	var (
		d             Delivery
		next, created int64
		delivered     sql.NullInt64
	)
	err := row.Scan(&d.ID, &d.Kind, &d.URL, &d.Body, &d.ContentType, &d.Subject, &d.State, &d.Attempts, &next,
		&d.LastError, &created, &delivered)
	d.NextAttemptAt, d.CreatedAt, d.DeliveredAt = fromMS(next), fromMS(created), fromNull(delivered)
	return d, err
}

// EnqueueDelivery queues a delivery. Call it in the transaction of the
// change that causes it, so both land or neither does.
func (db *DB) EnqueueDelivery(ctx context.Context, d *Delivery) error {
	if d.ID == "" {
		d.ID = NewID()
	}
	d.State = DeliveryPending
	if d.NextAttemptAt.IsZero() {
		d.NextAttemptAt = d.CreatedAt
	}
	_, err := db.exec(ctx, `INSERT INTO deliveries (id, kind, url, body, content_type, subject, state, attempts,
		next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,0,?,?)`,
		d.ID, d.Kind, d.URL, d.Body, d.ContentType, d.Subject, d.State, ms(d.NextAttemptAt), ms(d.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: enqueue delivery: %w", err)
	}
	return nil
}

// ClaimDueDeliveries leases up to limit due deliveries to the caller until
// now+lease; one leased by another worker (another node) is skipped.
func (db *DB) ClaimDueDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Delivery, error) {
	rows, err := db.query(ctx, `UPDATE deliveries SET locked_until = ?
		WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?
			AND (locked_until IS NULL OR locked_until < ?) ORDER BY next_attempt_at LIMIT ?)
		AND state = 'pending' AND (locked_until IS NULL OR locked_until < ?)
		RETURNING `+deliveryCols, ms(now.Add(lease)), ms(now), ms(now), limit, ms(now))
	if err != nil {
		return nil, fmt.Errorf("store: claim deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// RecordDeliveryAttempt records one attempt (status is the HTTP status, 0
// without an answer) and its outcome: delivered, retry at next, or given
// up (DeliveryFailed).
func (db *DB) RecordDeliveryAttempt(ctx context.Context, id string, now time.Time, status int, errText, state string, next time.Time) error {
	return db.InTx(ctx, func(tx *DB) error {
		var attempts int
		if err := tx.queryRow(ctx, `SELECT attempts FROM deliveries WHERE id = ?`, id).Scan(&attempts); err != nil {
			return fmt.Errorf("store: delivery attempt: %w", tx.mapErr(err))
		}
		attempts++
		if _, err := tx.exec(ctx, `INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, status, error) VALUES (?,?,?,?,?)`,
			id, attempts, ms(now), status, errText); err != nil {
			return fmt.Errorf("store: delivery attempt: %w", err)
		}
		var delivered sql.NullInt64
		if state == DeliveryDelivered {
			delivered = sql.NullInt64{Int64: ms(now), Valid: true}
		}
		_, err := tx.exec(ctx, `UPDATE deliveries SET attempts = ?, state = ?, next_attempt_at = ?, last_error = ?,
			delivered_at = ?, locked_until = NULL WHERE id = ?`, attempts, state, ms(next), errText, delivered, id)
		return err
	})
}

// DeliveryByID returns one delivery.
func (db *DB) DeliveryByID(ctx context.Context, id string) (Delivery, error) {
	d, err := scanDelivery(db.queryRow(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE id = ?`, id))
	return d, db.mapErr(err)
}

// ListDeliveries returns the deliveries of a kind ("" any), oldest first.
func (db *DB) ListDeliveries(ctx context.Context, kind string) ([]Delivery, error) {
	q, args := `SELECT `+deliveryCols+` FROM deliveries`, []any{}
	if kind != "" {
		q += ` WHERE kind = ?`
		args = append(args, kind)
	}
	rows, err := db.query(ctx, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeliveryAttempt is one recorded attempt.
type DeliveryAttempt struct {
	Attempt int
	At      time.Time
	Status  int
	Error   string
}

// DeliveryAttempts lists the attempts of a delivery in order.
func (db *DB) DeliveryAttempts(ctx context.Context, id string) ([]DeliveryAttempt, error) {
	rows, err := db.query(ctx, `SELECT attempt, attempted_at, status, error FROM delivery_attempts WHERE delivery_id = ? ORDER BY attempt`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DeliveryAttempt
	for rows.Next() {
		var (
			a  DeliveryAttempt
			at int64
		)
		if err := rows.Scan(&a.Attempt, &at, &a.Status, &a.Error); err != nil {
			return nil, err
		}
		a.At = fromMS(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// DeleteOldDeliveries removes finished deliveries created before cutoff.
func (db *DB) DeleteOldDeliveries(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := db.exec(ctx, `DELETE FROM deliveries WHERE state <> 'pending' AND created_at < ?`, ms(cutoff))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// EndedSessions returns up to limit sessions revoked since `since` whose
// logout has not been propagated yet (see ClaimSessionLogout).
func (db *DB) EndedSessions(ctx context.Context, since time.Time, limit int) ([]Session, error) {
	rows, err := db.query(ctx, `SELECT `+sessionCols+` FROM sessions s
		WHERE s.revoked_at IS NOT NULL AND s.revoked_at >= ?
		AND NOT EXISTS (SELECT 1 FROM session_logouts l WHERE l.session_id = s.id)
		ORDER BY s.revoked_at LIMIT ?`, ms(since), limit)
	if err != nil {
		return nil, fmt.Errorf("store: ended sessions: %w", err)
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

// ClaimSessionLogout marks the session's logout as propagated; false when
// another worker already did (call it first in the propagating
// transaction).
func (db *DB) ClaimSessionLogout(ctx context.Context, sessionID string, now time.Time) (bool, error) {
	res, err := db.exec(ctx, `INSERT INTO session_logouts (session_id, processed_at) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		sessionID, ms(now))
	if err != nil {
		return false, fmt.Errorf("store: claim session logout: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// DeleteOldSessionLogouts forgets propagation marks older than cutoff
// (keep them longer than EndedSessions looks back).
func (db *DB) DeleteOldSessionLogouts(ctx context.Context, cutoff time.Time) error {
	_, err := db.exec(ctx, `DELETE FROM session_logouts WHERE processed_at < ?`, ms(cutoff))
	return err
}

// SessionLogoutTarget is an application a session signed in to that wants
// back-channel logout.
type SessionLogoutTarget struct {
	ClientID  string
	URI       string
	AccountID string
}

// SessionLogoutTargets lists the clients with a back-channel logout URI
// that hold access tokens or grants issued under the session.
func (db *DB) SessionLogoutTargets(ctx context.Context, sessionID string) ([]SessionLogoutTarget, error) {
	rows, err := db.query(ctx, `SELECT c.id, c.backchannel_logout_uri, t.account_id FROM oidc_clients c
		JOIN (SELECT client_id, account_id FROM oidc_access_tokens WHERE session_id = ? AND account_id IS NOT NULL
			UNION SELECT client_id, account_id FROM oidc_grants WHERE session_id = ?) t ON t.client_id = c.id
		WHERE c.backchannel_logout_uri <> '' ORDER BY c.id`, sessionID, sessionID)
	if err != nil {
		return nil, fmt.Errorf("store: session logout targets: %w", err)
	}
	defer rows.Close()
	var out []SessionLogoutTarget
	seen := map[string]bool{}
	for rows.Next() {
		var t SessionLogoutTarget
		if err := rows.Scan(&t.ClientID, &t.URI, &t.AccountID); err != nil {
			return nil, err
		}
		if !seen[t.ClientID] {
			seen[t.ClientID] = true
			out = append(out, t)
		}
	}
	return out, rows.Err()
}

// RevokeSessionTokens ends what the session issued that lives only as long
// as the session: its access tokens and its grants without offline_access
// (and their access tokens). Grants with offline_access are devices and
// outlive the session (OpenID Connect Back-Channel Logout 1.0, 2.7).
func (db *DB) RevokeSessionTokens(ctx context.Context, sessionID string, now time.Time) error {
	if sessionID == "" {
		return nil
	}
	return db.InTx(ctx, func(tx *DB) error {
		if _, err := tx.exec(ctx, `UPDATE oidc_grants SET revoked_at = ?, revoke_reason = 'logout'
			WHERE session_id = ? AND revoked_at IS NULL AND ' ' || scopes || ' ' NOT LIKE '% offline_access %'`,
			ms(now), sessionID); err != nil {
			return fmt.Errorf("store: revoke session grants: %w", err)
		}
		_, err := tx.exec(ctx, `UPDATE oidc_access_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND
			((session_id = ? AND grant_id IS NULL) OR grant_id IN (SELECT id FROM oidc_grants WHERE session_id = ? AND revoked_at IS NOT NULL))`,
			ms(now), sessionID, sessionID)
		if err != nil {
			return fmt.Errorf("store: revoke session tokens: %w", err)
		}
		return nil
	})
}
