package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Purposes of emailed tokens.
const (
	PurposeVerifyEmail = "verify_email"
)

// EmailToken is a single-use secret sent by email (link or code). Only the
// SHA-256 of the secret is stored.
type EmailToken struct {
	ID        string
	TokenHash string
	Purpose   string
	AccountID string
	EmailID   string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// CreateEmailToken inserts a token.
func (db *DB) CreateEmailToken(ctx context.Context, t *EmailToken) error {
	if t.ID == "" {
		t.ID = NewID()
	}
	_, err := db.exec(ctx, `INSERT INTO email_tokens (id, token_hash, purpose, account_id, email_id, created_at, expires_at)
		VALUES (?,?,?,?,?,?,?)`, t.ID, t.TokenHash, t.Purpose, t.AccountID, nullString(t.EmailID), ms(t.CreatedAt), ms(t.ExpiresAt))
	if err != nil {
		return fmt.Errorf("store: create token: %w", err)
	}
	return nil
}

// RedeemEmailToken marks the token used and returns it, in one statement:
// of many concurrent redemptions exactly one succeeds, the others get
// ErrNotFound, as do unknown, expired and already used tokens.
func (db *DB) RedeemEmailToken(ctx context.Context, hash, purpose string, now time.Time) (EmailToken, error) {
	var (
		t                EmailToken
		email            sql.NullString
		created, expires int64
	)
	err := db.queryRow(ctx, `UPDATE email_tokens SET used_at = ?
		WHERE token_hash = ? AND purpose = ? AND used_at IS NULL AND expires_at > ?
		RETURNING id, token_hash, purpose, account_id, email_id, created_at, expires_at`,
		ms(now), hash, purpose, ms(now)).
		Scan(&t.ID, &t.TokenHash, &t.Purpose, &t.AccountID, &email, &created, &expires)
	if err != nil {
		return t, db.mapErr(err)
	}
	t.EmailID, t.CreatedAt, t.ExpiresAt, t.UsedAt = email.String, fromMS(created), fromMS(expires), &now
	return t, nil
}
