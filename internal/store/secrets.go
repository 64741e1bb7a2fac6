package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// SecretQuestion is an account's recovery question; the answer is kept as
// an argon2id hash of its folded form.
type SecretQuestion struct {
	AccountID   string
	Question    string
	AnswerHash  string
	Failures    int
	LockedUntil *time.Time
	UpdatedAt   time.Time
}

// SetSecretQuestion creates or replaces the account's question and resets its failures.
func (db *DB) SetSecretQuestion(ctx context.Context, q SecretQuestion) error {
	_, err := db.exec(ctx, `INSERT INTO secret_questions (account_id, question, answer_hash, failures, locked_until, updated_at)
		VALUES (?, ?, ?, 0, NULL, ?)
		ON CONFLICT (account_id) DO UPDATE SET question = excluded.question, answer_hash = excluded.answer_hash,
			failures = 0, locked_until = NULL, updated_at = excluded.updated_at`,
		q.AccountID, q.Question, q.AnswerHash, ms(q.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store: secret question: %w", err)
	}
	return nil
}

// SecretQuestionOf returns the account's question, or ErrNotFound.
func (db *DB) SecretQuestionOf(ctx context.Context, accountID string) (SecretQuestion, error) {
	var (
		q       SecretQuestion
		locked  sql.NullInt64
		updated int64
	)
	err := db.queryRow(ctx, `SELECT account_id, question, answer_hash, failures, locked_until, updated_at
		FROM secret_questions WHERE account_id = ?`, accountID).Scan(&q.AccountID, &q.Question, &q.AnswerHash, &q.Failures, &locked, &updated)
	q.LockedUntil, q.UpdatedAt = fromNull(locked), fromMS(updated)
	return q, db.mapErr(err)
}

// SecretAnswerFailed counts a wrong answer; at max failures the question is
// locked until now+lock and the count starts again. It returns the count
// after this failure (0 when it just locked) and the lock end, if any.
func (db *DB) SecretAnswerFailed(ctx context.Context, accountID string, max int, now time.Time, lock time.Duration) (int, *time.Time, error) {
	var (
		n      int
		locked sql.NullInt64
	)
	err := db.queryRow(ctx, `UPDATE secret_questions SET
			locked_until = CASE WHEN failures + 1 >= ? THEN ? ELSE locked_until END,
			failures = CASE WHEN failures + 1 >= ? THEN 0 ELSE failures + 1 END
		WHERE account_id = ? RETURNING failures, locked_until`, max, ms(now.Add(lock)), max, accountID).Scan(&n, &locked)
	if err != nil {
		return 0, nil, fmt.Errorf("store: secret answer: %w", db.mapErr(err))
	}
	return n, fromNull(locked), nil
}

// SecretAnswerSucceeded forgets the failures.
func (db *DB) SecretAnswerSucceeded(ctx context.Context, accountID string) error {
	_, err := db.exec(ctx, `UPDATE secret_questions SET failures = 0, locked_until = NULL WHERE account_id = ?`, accountID)
	return err
}

// maxKnownDevices bounds the devices remembered per account.
const maxKnownDevices = 50

// SeeDevice records that the account signed in from the device and reports
// whether the device was new and whether the account had any device before.
func (db *DB) SeeDevice(ctx context.Context, accountID, deviceHash string, now time.Time) (isNew, hadOthers bool, err error) {
	err = db.InTx(ctx, func(tx *DB) error {
		var total, this int
		if err := tx.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN device_hash = ? THEN 1 ELSE 0 END), 0)
			FROM known_devices WHERE account_id = ?`, deviceHash, accountID).Scan(&total, &this); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO known_devices (account_id, device_hash, first_seen, last_seen) VALUES (?, ?, ?, ?)
			ON CONFLICT (account_id, device_hash) DO UPDATE SET last_seen = excluded.last_seen`,
			accountID, deviceHash, ms(now), ms(now)); err != nil {
			return err
		}
		isNew, hadOthers = this == 0, total-this > 0
		// Keep the most recent devices only: a browser that never keeps
		// cookies would otherwise add a row at every sign-in.
		_, err := tx.exec(ctx, `DELETE FROM known_devices WHERE account_id = ? AND device_hash NOT IN
			(SELECT device_hash FROM known_devices WHERE account_id = ? ORDER BY last_seen DESC LIMIT ?)`,
			accountID, accountID, maxKnownDevices)
		return err
	})
	return isNew, hadOthers, err
}
