package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Outbox states.
const (
	MailPending = "pending"
	MailSent    = "sent"
	MailFailed  = "failed" // gave up: permanent error or too old
)

// OutboxMessage is one rendered email waiting for, or done with, delivery.
type OutboxMessage struct {
	ID            string
	To            string
	Subject       string
	Text          string
	HTML          string
	Lang          string
	Purpose       string // what caused it, e.g. "verify_email" (for the audit and the dev mailbox)
	AccountID     string
	State         string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
	SentAt        *time.Time
}

const outboxCols = `id, to_addr, subject, text_body, html_body, lang, purpose, account_id, state, attempts,
	next_attempt_at, last_error, created_at, sent_at`

func scanOutbox(row interface{ Scan(...any) error }) (OutboxMessage, error) {
	var (
		m             OutboxMessage
		acc           sql.NullString
		next, created int64
		sent          sql.NullInt64
	)
	err := row.Scan(&m.ID, &m.To, &m.Subject, &m.Text, &m.HTML, &m.Lang, &m.Purpose, &acc, &m.State, &m.Attempts,
		&next, &m.LastError, &created, &sent)
	m.AccountID, m.NextAttemptAt, m.CreatedAt, m.SentAt = acc.String, fromMS(next), fromMS(created), fromNull(sent)
	return m, err
}

// EnqueueMail adds a message to the outbox. Call it in the transaction of
// the change that causes the message, so both land or neither does.
func (db *DB) EnqueueMail(ctx context.Context, m *OutboxMessage) error {
	if m.ID == "" {
		m.ID = NewID()
	}
	m.State = MailPending
	if m.NextAttemptAt.IsZero() {
		m.NextAttemptAt = m.CreatedAt
	}
	_, err := db.exec(ctx, `INSERT INTO outbox (id, to_addr, subject, text_body, html_body, lang, purpose, account_id,
		state, attempts, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,0,?,?)`,
		m.ID, m.To, m.Subject, m.Text, m.HTML, m.Lang, m.Purpose, nullString(m.AccountID), m.State,
		ms(m.NextAttemptAt), ms(m.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: enqueue mail: %w", err)
	}
	return nil
}

// ClaimDueMail leases up to limit due messages to the caller until
// now+lease; a message leased by another worker (another node) is skipped.
func (db *DB) ClaimDueMail(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]OutboxMessage, error) {
	rows, err := db.query(ctx, `UPDATE outbox SET locked_until = ?
		WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?
			AND (locked_until IS NULL OR locked_until < ?) ORDER BY next_attempt_at LIMIT ?)
		AND state = 'pending' AND (locked_until IS NULL OR locked_until < ?)
		RETURNING `+outboxCols, ms(now.Add(lease)), ms(now), ms(now), limit, ms(now))
	if err != nil {
		return nil, fmt.Errorf("store: claim mail: %w", err)
	}
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// RecordMailAttempt records one delivery attempt and its outcome: sent
// (errText == ""), retry at next, or given up (state MailFailed).
// keepBody false blanks the bodies of a sent message: they may hold
// single-use links, which need not outlive delivery.
func (db *DB) RecordMailAttempt(ctx context.Context, id string, now time.Time, errText, state string, next time.Time, keepBody bool) error {
	return db.InTx(ctx, func(tx *DB) error {
		var attempts int
		if err := tx.queryRow(ctx, `SELECT attempts FROM outbox WHERE id = ?`, id).Scan(&attempts); err != nil {
			return fmt.Errorf("store: mail attempt: %w", tx.mapErr(err))
		}
		attempts++
		if _, err := tx.exec(ctx, `INSERT INTO outbox_attempts (outbox_id, attempt, attempted_at, error) VALUES (?,?,?,?)`,
			id, attempts, ms(now), errText); err != nil {
			return fmt.Errorf("store: mail attempt: %w", err)
		}
		var sent sql.NullInt64
		if state == MailSent {
			sent = sql.NullInt64{Int64: ms(now), Valid: true}
		}
		q := `UPDATE outbox SET attempts = ?, state = ?, next_attempt_at = ?, last_error = ?, sent_at = ?, locked_until = NULL`
		if state == MailSent && !keepBody {
			q += `, text_body = '', html_body = ''`
		}
		_, err := tx.exec(ctx, q+` WHERE id = ?`, attempts, state, ms(next), errText, sent, id)
		return err
	})
}

// MailByID returns one message.
func (db *DB) MailByID(ctx context.Context, id string) (OutboxMessage, error) {
	m, err := scanOutbox(db.queryRow(ctx, `SELECT `+outboxCols+` FROM outbox WHERE id = ?`, id))
	return m, db.mapErr(err)
}

// MailAttempt is one recorded delivery attempt.
type MailAttempt struct {
	Attempt int
	At      time.Time
	Error   string
}

// MailAttempts lists the attempts of a message in order.
func (db *DB) MailAttempts(ctx context.Context, id string) ([]MailAttempt, error) {
	rows, err := db.query(ctx, `SELECT attempt, attempted_at, error FROM outbox_attempts WHERE outbox_id = ? ORDER BY attempt`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []MailAttempt
	for rows.Next() {
		var (
			a  MailAttempt
			at int64
		)
		if err := rows.Scan(&a.Attempt, &at, &a.Error); err != nil {
			return nil, err
		}
		a.At = fromMS(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// ListMail returns messages, newest first; state "" means any.
func (db *DB) ListMail(ctx context.Context, state string, limit int) ([]OutboxMessage, error) {
	q := `SELECT ` + outboxCols + ` FROM outbox`
	var args []any
	if state != "" {
		q += ` WHERE state = ?`
		args = append(args, state)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list mail: %w", err)
	}
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// LastMailTo returns when the newest message of purpose to the account was
// queued (for "the last message left at..." and resend limits).
func (db *DB) LastMailTo(ctx context.Context, accountID, purpose string) (time.Time, error) {
	var at sql.NullInt64
	err := db.queryRow(ctx, `SELECT MAX(created_at) FROM outbox WHERE account_id = ? AND purpose = ?`, accountID, purpose).Scan(&at)
	if err != nil || !at.Valid {
		return time.Time{}, db.mapErr(err)
	}
	return fromMS(at.Int64), nil
}

// MailBacklog counts messages still pending.
func (db *DB) MailBacklog(ctx context.Context) (int, error) {
	var n int
	err := db.queryRow(ctx, `SELECT COUNT(*) FROM outbox WHERE state = 'pending'`).Scan(&n)
	return n, db.mapErr(err)
}
