package store

import (
	"context"
	"fmt"
	"time"
)

// Throttle is a failure counter under a key ("login:acct:<id>",
// "login:ip:<addr>"), kept in the database so every node sees it.
type Throttle struct {
	Count       int
	WindowStart time.Time
	LastAt      time.Time
}

// HitThrottle counts one event under key and returns the counter after it.
// A counter whose window started before now-window starts again at 1.
func (db *DB) HitThrottle(ctx context.Context, key string, now time.Time, window time.Duration) (Throttle, error) {
	var (
		t           Throttle
		start, last int64
	)
	cut := ms(now.Add(-window))
	err := db.queryRow(ctx, `INSERT INTO throttles (key, count, window_start, last_at) VALUES (?, 1, ?, ?)
		ON CONFLICT (key) DO UPDATE SET
			count = CASE WHEN throttles.window_start < ? THEN 1 ELSE throttles.count + 1 END,
			window_start = CASE WHEN throttles.window_start < ? THEN excluded.window_start ELSE throttles.window_start END,
			last_at = excluded.last_at
		RETURNING count, window_start, last_at`, key, ms(now), ms(now), cut, cut).Scan(&t.Count, &start, &last)
	if err != nil {
		return t, fmt.Errorf("store: throttle: %w", db.mapErr(err))
	}
	t.WindowStart, t.LastAt = fromMS(start), fromMS(last)
	return t, nil
}

// GetThrottle returns the counter under key; a zero Throttle when none or
// when its window has passed.
func (db *DB) GetThrottle(ctx context.Context, key string, now time.Time, window time.Duration) (Throttle, error) {
	var (
		t           Throttle
		start, last int64
	)
	err := db.queryRow(ctx, `SELECT count, window_start, last_at FROM throttles WHERE key = ? AND window_start >= ?`,
		key, ms(now.Add(-window))).Scan(&t.Count, &start, &last)
	if err != nil {
		if err = db.mapErr(err); err == ErrNotFound {
			return Throttle{}, nil
		}
		return t, fmt.Errorf("store: throttle: %w", err)
	}
	t.WindowStart, t.LastAt = fromMS(start), fromMS(last)
	return t, nil
}

// ResetThrottle forgets the counter under key.
func (db *DB) ResetThrottle(ctx context.Context, key string) error {
	_, err := db.exec(ctx, `DELETE FROM throttles WHERE key = ?`, key)
	return err
}

// DeleteStaleThrottles removes counters idle since before cutoff.
func (db *DB) DeleteStaleThrottles(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := db.exec(ctx, `DELETE FROM throttles WHERE last_at < ?`, ms(cutoff))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
