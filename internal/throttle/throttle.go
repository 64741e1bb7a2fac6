// Package throttle slows down guessing: after Free failures under a key
// within Window, each further try must wait 1s, 2s, 4s... capped at Max
// since the last failure. The cap keeps an attacker from locking a victim
// out for long: at worst the victim waits Max between two tries. Counters
// live in the database, so every node enforces the same limits.
package throttle

import (
	"context"
	"time"

	"campusid/internal/store"
)

// Backoff is one kind of limit (per account, per client address...).
type Backoff struct {
	DB     *store.DB
	Prefix string // e.g. "login:acct:"
	Free   int
	Max    time.Duration
	Window time.Duration
}

// Delay is the wait imposed after count failures.
func (b Backoff) Delay(count int) time.Duration {
	if count < b.Free {
		return 0
	}
	n := count - b.Free
	if n > 30 {
		return b.Max
	}
	return min(time.Second<<n, b.Max)
}

// Wait returns how long the caller must still wait before trying under
// key (0: go ahead).
func (b Backoff) Wait(ctx context.Context, key string, now time.Time) (time.Duration, error) {
	t, err := b.DB.GetThrottle(ctx, b.Prefix+key, now, b.Window)
	if err != nil || t.Count == 0 {
		return 0, err
	}
	return max(t.LastAt.Add(b.Delay(t.Count)).Sub(now), 0), nil
}

// Fail counts one failure under key.
func (b Backoff) Fail(ctx context.Context, key string, now time.Time) error {
	_, err := b.DB.HitThrottle(ctx, b.Prefix+key, now, b.Window)
	return err
}

// Reset forgets the failures under key (after a success).
func (b Backoff) Reset(ctx context.Context, key string) error {
	return b.DB.ResetThrottle(ctx, b.Prefix+key)
}
