// Package delivery POSTs queued back-channel messages (OpenID Connect
// back-channel logout tokens, CAS logoutRequests) to other systems.
// The queue is the deliveries table: a message is queued in the
// transaction of the change that causes it, and the worker of any node
// claims due messages with a lease (so two nodes never send the same one at
// once), POSTs each with a timeout and records every attempt. A temporary
// failure (no answer, 5xx, 408, 429) is retried with exponential backoff
// (RetryBase, doubling, capped at RetryMax) until the message is MaxAge
// old; a refusal (another 4xx, a redirect) is given up at once, except a
// redirect for the kinds in RedirectIsDelivered.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"campusid/internal/store"
)

// Source runs at the start of each pass, before due messages are claimed:
// producers that derive messages from durable state (an ended session
// becomes logout tokens) hook in here.
type Source func(ctx context.Context) error

// Worker delivers the deliveries table.
type Worker struct {
	DB        *store.DB
	Client    *http.Client // nil: a client with Timeout that follows no redirect
	Timeout   time.Duration
	Log       *slog.Logger
	Now       func() time.Time
	Poll      time.Duration
	RetryBase time.Duration
	RetryMax  time.Duration
	MaxAge    time.Duration
	Sources   []Source
	// Wake, when not nil, makes the worker look at once instead of at the
	// next poll (handlers signal it after ending a session).
	Wake chan struct{}
	// RedirectIsDelivered lists the kinds whose receivers answer a message
	// they took with a redirect: mod_auth_cas ends the session named by a
	// CAS logoutRequest, then redirects the (cookieless) request to the
	// sign-in page. For those a 3xx is a delivery, not a refusal.
	RedirectIsDelivered map[string]bool
}

// lease is how long a claimed message stays reserved for this worker.
const lease = 2 * time.Minute

// Settings are the tunable durations of a Worker (the delivery section of
// the configuration). A zero field takes its default.
type Settings struct {
	Poll      time.Duration // how often due messages are looked for
	Timeout   time.Duration // one POST
	RetryBase time.Duration // first retry delay, doubling
	RetryMax  time.Duration // longest delay between two attempts
	MaxAge    time.Duration // give up after this long
}

// DefaultSettings are the settings of New.
func DefaultSettings() Settings {
	return Settings{Poll: 5 * time.Second, Timeout: 10 * time.Second, RetryBase: 10 * time.Second,
		RetryMax: 30 * time.Minute, MaxAge: 24 * time.Hour}
}

// New returns a worker with the usual settings.
func New(db *store.DB, log *slog.Logger, now func() time.Time) *Worker {
	return NewWithSettings(db, log, now, DefaultSettings())
}

// NewWithSettings returns a worker with the given settings (zero fields:
// the defaults).
func NewWithSettings(db *store.DB, log *slog.Logger, now func() time.Time, s Settings) *Worker {
	d := DefaultSettings()
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	return &Worker{DB: db, Log: log, Now: now, Poll: pick(s.Poll, d.Poll), Timeout: pick(s.Timeout, d.Timeout),
		RetryBase: pick(s.RetryBase, d.RetryBase), RetryMax: pick(s.RetryMax, d.RetryMax),
		MaxAge: pick(s.MaxAge, d.MaxAge), Wake: make(chan struct{}, 1)}
}

// Signal wakes the worker without blocking.
func (w *Worker) Signal() {
	if w == nil || w.Wake == nil {
		return
	}
	select {
	case w.Wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends; the message in hand is finished first.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(w.Poll)
	defer t.Stop()
	for {
		if _, err := w.Process(context.WithoutCancel(ctx)); err != nil {
			w.Log.Error("delivery: pass failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.Wake:
		}
	}
}

// Process runs the sources, then makes one pass over the due messages and
// returns how many it attempted.
func (w *Worker) Process(ctx context.Context) (int, error) {
	var errs []error
	for _, src := range w.Sources {
		if err := src(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	n := 0
	for {
		ds, err := w.DB.ClaimDueDeliveries(ctx, w.Now(), lease, 20)
		if err != nil {
			return n, errors.Join(append(errs, err)...)
		}
		if len(ds) == 0 {
			return n, errors.Join(errs...)
		}
		for _, d := range ds {
			w.deliver(ctx, d)
			n++
		}
	}
}

// errPermanent marks a refusal that retrying will not change.
var errPermanent = errors.New("refused")

func (w *Worker) client() *http.Client {
	if w.Client != nil {
		return w.Client
	}
	return &http.Client{Timeout: w.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (w *Worker) post(ctx context.Context, d store.Delivery) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, strings.NewReader(d.Body))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", d.ContentType)
	req.Header.Set("User-Agent", "campusid")
	resp, err := w.client().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300, s >= 300 && s < 400 && w.RedirectIsDelivered[d.Kind]:
		return s, nil
	case s >= 500, s == http.StatusRequestTimeout, s == http.StatusTooManyRequests, s == http.StatusTooEarly:
		return s, fmt.Errorf("HTTP %d: %s", s, strings.TrimSpace(string(snippet)))
	default:
		return s, fmt.Errorf("%w: HTTP %d: %s", errPermanent, s, strings.TrimSpace(string(snippet)))
	}
}

func (w *Worker) deliver(ctx context.Context, d store.Delivery) {
	status, err := w.post(ctx, d)
	now := w.Now()
	state, next, errText := store.DeliveryDelivered, now, ""
	if err != nil {
		errText = err.Error()
		backoff := w.RetryBase << min(d.Attempts, 20)
		if backoff <= 0 || backoff > w.RetryMax {
			backoff = w.RetryMax
		}
		next = now.Add(backoff)
		state = store.DeliveryPending
		if errors.Is(err, errPermanent) || next.Sub(d.CreatedAt) > w.MaxAge {
			state = store.DeliveryFailed
		}
	}
	if rerr := w.DB.RecordDeliveryAttempt(ctx, d.ID, now, status, errText, state, next); rerr != nil {
		w.Log.Error("delivery: record attempt", "delivery_id", d.ID, "error", rerr.Error())
		return
	}
	attrs := []any{"delivery_id", d.ID, "kind", d.Kind, "subject", d.Subject, "url", d.URL, "attempt", d.Attempts + 1}
	switch state {
	case store.DeliveryDelivered:
		w.Log.Info("delivered", attrs...)
	case store.DeliveryFailed:
		w.Log.Error("delivery given up", append(attrs, "error", errText)...)
	default:
		w.Log.Warn("delivery failed, will retry", append(attrs, "retry_at", next, "error", errText)...)
	}
}
