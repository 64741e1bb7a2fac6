package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Purposes of emailed tokens.
const (
	PurposeVerifyEmail = "verify_email" // confirm an address added to an account
	PurposeLoginCode   = "login_code"   // sign in with a code
	PurposeLoginLink   = "login_link"   // sign in with a link
	PurposeActivation  = "activation"   // prove a provisioned account's address
	PurposeResetLink   = "reset_link"   // password reset by link
	PurposeResetCode   = "reset_code"   // password reset by code
	PurposeFlowCode    = "flow_code"    // verify an address typed during a flow (activation's personal address)
)

// Token kinds.
const (
	TokenLink = "link"
	TokenCode = "code"
)

// EmailToken is a single-use secret sent by email (link or code). Only the
// SHA-256 of the secret is stored.
type EmailToken struct {
	ID        string
	TokenHash string
	Purpose   string
	Kind      string // TokenLink or TokenCode
	AccountID string
	EmailID   string
	FlowID    string // the flow a code belongs to (a code is only valid in it)
	SentTo    string // the address it was sent to
	Tries     int    // wrong codes tried
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// CreateEmailToken inserts a token.
func (db *DB) CreateEmailToken(ctx context.Context, t *EmailToken) error {
	if t.ID == "" {
		t.ID = NewID()
	}
	if t.Kind == "" {
		t.Kind = TokenLink
	}
	_, err := db.exec(ctx, `INSERT INTO email_tokens (id, token_hash, purpose, kind, account_id, email_id, flow_id, sent_to, created_at, expires_at)
		VALUES (?,?,?,?,?,?,?,?,?,?)`, t.ID, t.TokenHash, t.Purpose, t.Kind, t.AccountID, nullString(t.EmailID), t.FlowID, t.SentTo,
		ms(t.CreatedAt), ms(t.ExpiresAt))
	if err != nil {
		return fmt.Errorf("store: create token: %w", err)
	}
	return nil
}

const tokenCols = `id, token_hash, purpose, kind, account_id, email_id, flow_id, sent_to, tries, created_at, expires_at, used_at`

func scanToken(row interface{ Scan(...any) error }) (EmailToken, error) {
	var (
		t                EmailToken
		email            sql.NullString
		created, expires int64
		used             sql.NullInt64
	)
	err := row.Scan(&t.ID, &t.TokenHash, &t.Purpose, &t.Kind, &t.AccountID, &email, &t.FlowID, &t.SentTo, &t.Tries,
		&created, &expires, &used)
	t.EmailID, t.CreatedAt, t.ExpiresAt, t.UsedAt = email.String, fromMS(created), fromMS(expires), fromNull(used)
	return t, err
}

// RedeemEmailToken marks the link token used and returns it, in one
// statement: of many concurrent redemptions exactly one succeeds, the others
// get ErrNotFound, as do unknown, expired and already used tokens. Using one
// token ends the other live tokens of the same purpose for the account (for
// address verification: of the same address). Call it inside InTx when
// the change it allows must land with it.
func (db *DB) RedeemEmailToken(ctx context.Context, hash, purpose string, now time.Time) (EmailToken, error) {
	var t EmailToken
	err := db.InTx(ctx, func(tx *DB) error {
		var err error
		t, err = scanToken(tx.queryRow(ctx, `UPDATE email_tokens SET used_at = ?
			WHERE token_hash = ? AND purpose = ? AND kind = 'link' AND used_at IS NULL AND expires_at > ?
			RETURNING `+tokenCols, ms(now), hash, purpose, ms(now)))
		if err != nil {
			return tx.mapErr(err)
		}
		return tx.endSiblings(ctx, t, now)
	})
	return t, err
}

// endSiblings marks used every other live token of t's purpose and account.
func (db *DB) endSiblings(ctx context.Context, t EmailToken, now time.Time) error {
	q := `UPDATE email_tokens SET used_at = ? WHERE account_id = ? AND purpose = ? AND used_at IS NULL AND id <> ?`
	args := []any{ms(now), t.AccountID, t.Purpose, t.ID}
	if t.Purpose == PurposeVerifyEmail {
		q += ` AND email_id = ?`
		args = append(args, t.EmailID)
	}
	if t.FlowID != "" && t.Kind == TokenCode {
		q += ` AND flow_id = ?`
		args = append(args, t.FlowID)
	}
	_, err := db.exec(ctx, q, args...)
	return err
}

// EndTokens marks used every live token of the purposes for the account
// (a password reset ends every pending reset link and code).
func (db *DB) EndTokens(ctx context.Context, accountID string, now time.Time, purposes ...string) error {
	for _, p := range purposes {
		if _, err := db.exec(ctx, `UPDATE email_tokens SET used_at = ? WHERE account_id = ? AND purpose = ? AND used_at IS NULL`,
			ms(now), accountID, p); err != nil {
			return err
		}
	}
	return nil
}

// CodeTry reserves one try on every live code of the flow and purpose that
// has tries left (fewer than maxTries), and returns those codes: the caller
// compares the typed code with each and, on a match, calls UseCode. Because
// the try is taken before the comparison, in one statement, no code is ever
// compared more than maxTries times, however many requests race.
func (db *DB) CodeTry(ctx context.Context, flowID, purpose string, maxTries int, now time.Time) ([]EmailToken, error) {
	rows, err := db.query(ctx, `UPDATE email_tokens SET tries = tries + 1
		WHERE flow_id = ? AND purpose = ? AND kind = 'code' AND used_at IS NULL AND expires_at > ? AND tries < ?
		RETURNING `+tokenCols, flowID, purpose, ms(now), maxTries)
	if err != nil {
		return nil, fmt.Errorf("store: code try: %w", err)
	}
	defer rows.Close()
	var out []EmailToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// UseCode marks a matched code used (ErrNotFound if another request used
// it first) and ends the flow's other codes of the purpose.
func (db *DB) UseCode(ctx context.Context, t EmailToken, now time.Time) error {
	return db.InTx(ctx, func(tx *DB) error {
		if err := tx.execOne(ctx, `UPDATE email_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL`, ms(now), t.ID); err != nil {
			return err
		}
		return tx.endSiblings(ctx, t, now)
	})
}

// LiveTokens lists the unused, unexpired tokens of a flow and purpose, newest first.
func (db *DB) LiveTokens(ctx context.Context, flowID, purpose string, now time.Time) ([]EmailToken, error) {
	rows, err := db.query(ctx, `SELECT `+tokenCols+` FROM email_tokens
		WHERE flow_id = ? AND purpose = ? AND used_at IS NULL AND expires_at > ? ORDER BY created_at DESC`, flowID, purpose, ms(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []EmailToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// TokenByHash returns a token by its hash, used or not (to explain a dead link).
func (db *DB) TokenByHash(ctx context.Context, hash string) (EmailToken, error) {
	t, err := scanToken(db.queryRow(ctx, `SELECT `+tokenCols+` FROM email_tokens WHERE token_hash = ?`, hash))
	return t, db.mapErr(err)
}
