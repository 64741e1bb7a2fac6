// Package onetime sends and checks the one-time secrets that self-service
// runs on: links (256 random bits, in a URL) and 6-digit codes (bound to one
// flow, a few tries each). Both are stored as SHA-256 only, are single use
// under concurrency, and using one ends the others of its purpose. Each
// message goes through the outbox in the caller's transaction, at most one
// per purpose and account every ResendInterval; an earlier link keeps
// working when a new one is sent.
package onetime

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"campusid/internal/i18n"
	"campusid/internal/outbox"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/throttle"
	"campusid/internal/web"
)

// Issuer sends links and codes and checks them.
type Issuer struct {
	DB             *store.DB
	Mailer         *outbox.Mailer
	PublicURL      string
	Now            func() time.Time
	Validity       map[string]time.Duration // per purpose; codes use store.TokenCode's entry
	ResendInterval time.Duration
	MaxCodeTries   int
	// PerClient limits how many messages one client address may trigger.
	PerClient throttle.Backoff
}

// CodeValidity is the lifetime of every code.
func (i *Issuer) CodeValidity() time.Duration { return i.Validity[store.TokenCode] }

// Message says what to send.
type Message struct {
	Purpose   string // a store.Purpose*; also the mail template, unless Template is set
	Template  string
	Lang      string
	To        string
	AccountID string // "" for flows without an account (nothing is sent then)
	EmailID   string
	FlowID    string
	Path      string         // where a link points, e.g. "/login/link"
	Data      map[string]any // more template data
}

// ErrTooSoon: a message of this purpose left less than ResendInterval ago.
type ErrTooSoon struct{ Wait time.Duration }

func (e ErrTooSoon) Error() string { return fmt.Sprintf("onetime: next message allowed in %s", e.Wait) }

// LastSent returns when the latest message of purpose left for the account
// (zero if none) and how long before another may be sent.
func (i *Issuer) LastSent(ctx context.Context, accountID, purpose string) (time.Time, time.Duration, error) {
	if accountID == "" {
		return time.Time{}, 0, nil
	}
	last, err := i.DB.LastMailTo(ctx, accountID, purpose)
	if err != nil || last.IsZero() {
		return last, 0, err
	}
	return last, max(last.Add(i.ResendInterval).Sub(i.Now()), 0), nil
}

// ClientWait says how long a client address must wait before triggering
// another message (0: go ahead).
func (i *Issuer) ClientWait(ctx context.Context, ip string) (time.Duration, error) {
	return i.PerClient.Wait(ctx, ip, i.Now())
}

func (i *Issuer) check(ctx context.Context, tx *store.DB, m Message) error {
	_, wait, err := i.LastSent(ctx, m.AccountID, m.Purpose)
	if err != nil {
		return err
	}
	if wait > 0 {
		return ErrTooSoon{Wait: wait}
	}
	return nil
}

func (i *Issuer) validity(m Message, kind string) time.Duration {
	if kind == store.TokenCode {
		return i.Validity[store.TokenCode]
	}
	if v, ok := i.Validity[m.Purpose]; ok {
		return v
	}
	return 24 * time.Hour
}

// Validity text for pages and mails ("24 heures", "3 minutes").
func Human(l i18n.Localizer, d time.Duration) string {
	if d >= time.Hour && d%time.Hour == 0 {
		if d == time.Hour {
			return l.T("duration.one_hour")
		}
		return l.T("duration.hours", int(d/time.Hour))
	}
	m := int(d.Round(time.Minute) / time.Minute)
	if m <= 1 {
		return l.T("duration.one_minute")
	}
	return l.T("duration.minutes", m)
}

// SendLink creates a link of m.Purpose and queues its message through tx.
// It returns ErrTooSoon when the last one left too recently. Every send is
// counted against the client address (clientIP) when not empty.
func (i *Issuer) SendLink(ctx context.Context, tx *store.DB, m Message, clientIP string) error {
	if err := i.check(ctx, tx, m); err != nil {
		return err
	}
	now := i.Now()
	token := session.NewToken()
	v := i.validity(m, store.TokenLink)
	t := store.EmailToken{TokenHash: session.HashToken(token), Purpose: m.Purpose, Kind: store.TokenLink, AccountID: m.AccountID,
		EmailID: m.EmailID, FlowID: m.FlowID, SentTo: m.To, CreatedAt: now, ExpiresAt: now.Add(v)}
	if err := tx.CreateEmailToken(ctx, &t); err != nil {
		return err
	}
	data := i.data(m, v)
	data["Link"] = i.PublicURL + m.Path + "?token=" + url.QueryEscape(token)
	return i.enqueue(ctx, tx, m, data, clientIP)
}

// SendCode creates a code of m.Purpose bound to m.FlowID and queues its
// message through tx.
func (i *Issuer) SendCode(ctx context.Context, tx *store.DB, m Message, clientIP string) error {
	if m.FlowID == "" {
		return errors.New("onetime: a code needs a flow")
	}
	if err := i.check(ctx, tx, m); err != nil {
		return err
	}
	now := i.Now()
	code := newCode()
	v := i.validity(m, store.TokenCode)
	t := store.EmailToken{ID: store.NewID(), Purpose: m.Purpose, Kind: store.TokenCode, AccountID: m.AccountID, EmailID: m.EmailID,
		FlowID: m.FlowID, SentTo: m.To, CreatedAt: now, ExpiresAt: now.Add(v)}
	t.TokenHash = codeHash(t.ID, code)
	if err := tx.CreateEmailToken(ctx, &t); err != nil {
		return err
	}
	data := i.data(m, v)
	data["Code"] = code
	return i.enqueue(ctx, tx, m, data, clientIP)
}

func (i *Issuer) data(m Message, v time.Duration) map[string]any {
	data := map[string]any{"Validity": Human(i18n.Localizer{Lang: m.Lang}, v), "Address": m.To}
	for k, val := range m.Data {
		data[k] = val
	}
	return data
}

func (i *Issuer) enqueue(ctx context.Context, tx *store.DB, m Message, data map[string]any, clientIP string) error {
	tmpl := m.Template
	if tmpl == "" {
		tmpl = m.Purpose
	}
	if clientIP != "" {
		// Counted through tx: on SQLite a write outside the open
		// transaction would wait for its lock until the busy timeout.
		pc := i.PerClient
		pc.DB = tx
		if err := pc.Fail(ctx, clientIP, i.Now()); err != nil {
			return err
		}
	}
	r, err := i.Mailer.Render(tmpl, m.Lang, data)
	if err != nil {
		return err
	}
	web.Info(ctx).MailQueued = true
	// The purpose, not the template, keys the resend limit.
	return tx.EnqueueMail(ctx, &store.OutboxMessage{To: m.To, Subject: r.Subject, Text: r.Text, HTML: r.HTML,
		Lang: m.Lang, Purpose: m.Purpose, AccountID: m.AccountID, CreatedAt: i.Now()})
}

// RedeemLink uses the link token of purpose (see store.RedeemEmailToken).
// ErrNotFound covers unknown, used and expired links alike.
func (i *Issuer) RedeemLink(ctx context.Context, tx *store.DB, token, purpose string) (store.EmailToken, error) {
	if token == "" || len(token) > 100 {
		return store.EmailToken{}, store.ErrNotFound
	}
	return tx.RedeemEmailToken(ctx, session.HashToken(token), purpose, i.Now())
}

// PeekLink returns the live link token without using it (for the page
// that shows the button), or ErrNotFound.
func (i *Issuer) PeekLink(ctx context.Context, token, purpose string) (store.EmailToken, error) {
	if token == "" || len(token) > 100 {
		return store.EmailToken{}, store.ErrNotFound
	}
	t, err := i.DB.TokenByHash(ctx, session.HashToken(token))
	if err != nil {
		return t, err
	}
	if t.Purpose != purpose || t.UsedAt != nil || !i.Now().Before(t.ExpiresAt) {
		return t, store.ErrNotFound
	}
	return t, nil
}

// Code check outcomes.
var (
	// ErrCodeWrong: the code does not match; tries remain.
	ErrCodeWrong = errors.New("onetime: wrong code")
	// ErrCodeDead: no live code with tries left (expired, used, or too many wrong tries).
	ErrCodeDead = errors.New("onetime: no live code")
)

// CheckCode compares a typed code with the flow's live codes of purpose.
// Each call takes one try from every live code first, so no code is ever
// compared more than MaxCodeTries times, however many requests race. On a
// match the code is used (once) and the others of the flow end.
func (i *Issuer) CheckCode(ctx context.Context, flowID, purpose, typed string) (store.EmailToken, error) {
	now := i.Now()
	codes, err := i.DB.CodeTry(ctx, flowID, purpose, i.MaxCodeTries, now)
	if err != nil {
		return store.EmailToken{}, err
	}
	if len(codes) == 0 {
		return store.EmailToken{}, ErrCodeDead
	}
	typed = normalizeCode(typed)
	for _, c := range codes {
		if len(typed) == 6 && subtle.ConstantTimeCompare([]byte(codeHash(c.ID, typed)), []byte(c.TokenHash)) == 1 {
			if err := i.DB.UseCode(ctx, c, now); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return store.EmailToken{}, ErrCodeDead
				}
				return store.EmailToken{}, err
			}
			return c, nil
		}
	}
	for _, c := range codes {
		if c.Tries < i.MaxCodeTries {
			return store.EmailToken{}, ErrCodeWrong
		}
	}
	return store.EmailToken{}, ErrCodeDead
}

// normalizeCode keeps the digits of what was typed or pasted ("123 456", "123-456").
func normalizeCode(s string) string {
	out := make([]byte, 0, 6)
	for _, r := range s {
		if r >= '0' && r <= '9' {
			out = append(out, byte(r))
		} else if r >= '０' && r <= '９' { // full-width digits from some keyboards
			out = append(out, byte('0'+r-'０'))
		}
		if len(out) > 6 {
			break
		}
	}
	return string(out)
}

func newCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return fmt.Sprintf("%06d", n.Int64())
}

// codeHash binds a code to its row: the same digits give another hash in
// another row, so the unique index holds and a leaked hash is useless elsewhere.
func codeHash(id, code string) string {
	sum := sha256.Sum256([]byte(id + ":" + code))
	return hex.EncodeToString(sum[:])
}
