package outbox

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"campusid/internal/store"
)

// Worker delivers the outbox: it claims due messages (a lease, so several
// nodes share the work without sending twice), sends each, and records
// every attempt. A temporary failure is retried with exponential backoff
// (RetryBase, doubling, capped at RetryMax) until the message is MaxAge
// old; a permanent one (ErrPermanent) is given up at once.
type Worker struct {
	DB        *store.DB
	Sender    Sender
	Log       *slog.Logger
	Now       func() time.Time
	Poll      time.Duration
	RetryBase time.Duration
	RetryMax  time.Duration
	MaxAge    time.Duration
	// KeepBodies keeps the bodies of sent messages (the development
	// mailbox shows them); otherwise they are blanked after delivery.
	KeepBodies bool
	// Wake, when not nil, makes the worker look at once instead of at the
	// next poll (the server signals it after queueing a message).
	Wake chan struct{}
}

// lease is how long a claimed message stays reserved for this worker.
const lease = 2 * time.Minute

// Run delivers until ctx ends; the message in hand is finished first.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(w.Poll)
	defer t.Stop()
	for {
		if _, err := w.Process(context.WithoutCancel(ctx)); err != nil {
			w.Log.Error("outbox: pass failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.Wake:
		}
	}
}

// Process makes one pass over the due messages and returns how many it
// attempted.
func (w *Worker) Process(ctx context.Context) (int, error) {
	n := 0
	for {
		msgs, err := w.DB.ClaimDueMail(ctx, w.Now(), lease, 20)
		if err != nil {
			return n, err
		}
		if len(msgs) == 0 {
			return n, nil
		}
		for _, m := range msgs {
			w.deliver(ctx, m)
			n++
		}
	}
}

func (w *Worker) deliver(ctx context.Context, m store.OutboxMessage) {
	sendCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err := w.Sender.Send(sendCtx, Message{ID: m.ID, To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML, Lang: m.Lang})
	cancel()
	now := w.Now()
	state, next, errText := store.MailSent, now, ""
	if err != nil {
		errText = err.Error()
		backoff := w.RetryBase << min(m.Attempts, 20)
		if backoff <= 0 || backoff > w.RetryMax {
			backoff = w.RetryMax
		}
		next = now.Add(backoff)
		state = store.MailPending
		if errors.Is(err, ErrPermanent) || next.Sub(m.CreatedAt) > w.MaxAge {
			state = store.MailFailed
		}
	}
	if rerr := w.DB.RecordMailAttempt(ctx, m.ID, now, errText, state, next, w.KeepBodies); rerr != nil {
		w.Log.Error("outbox: record attempt", "outbox_id", m.ID, "error", rerr.Error())
		return
	}
	switch state {
	case store.MailSent:
		w.Log.Info("mail sent", "outbox_id", m.ID, "purpose", m.Purpose, "account_id", m.AccountID, "attempt", m.Attempts+1)
	case store.MailFailed:
		w.Log.Error("mail given up", "outbox_id", m.ID, "purpose", m.Purpose, "account_id", m.AccountID, "attempt", m.Attempts+1, "error", errText)
	default:
		w.Log.Warn("mail delivery failed, will retry", "outbox_id", m.ID, "attempt", m.Attempts+1, "retry_at", next, "error", errText)
	}
}

// DevSender is the development mailbox's sender: delivery is keeping the
// message, which /dev/mail then shows.
type DevSender struct{}

// Send accepts every message.
func (DevSender) Send(context.Context, Message) error { return nil }

var _ Sender = DevSender{}
