package outbox_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"campusid/internal/outbox"
	"campusid/internal/outbox/smtptest"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

var ctx = context.Background()

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// setup returns a worker delivering through a real SMTP server (STARTTLS + AUTH).
func setup(t *testing.T, db *store.DB, opt smtptest.Options) (*outbox.Worker, *smtptest.Server, *clock) {
	t.Helper()
	opt.TLS, opt.Username, opt.Password = true, "campusid", "relay-secret"
	srv := smtptest.Start(t, opt)
	sender, err := outbox.NewSMTPSender(outbox.SMTPConfig{Host: srv.Host(), Port: srv.Port(), Security: "starttls",
		Username: "campusid", Password: "relay-secret", From: "campusid <noreply@univ.example>",
		TLSConfig: &tls.Config{RootCAs: srv.RootCAs(), ServerName: "127.0.0.1"}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	w := &outbox.Worker{DB: db, Sender: sender, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: c.Now,
		Poll: time.Second, RetryBase: 30 * time.Second, RetryMax: 10 * time.Minute, MaxAge: 48 * time.Hour}
	return w, srv, c
}

func mailer(t *testing.T, c *clock) *outbox.Mailer {
	m, err := outbox.NewMailer(outbox.SiteInfo{Name: "campusid", PublicURL: "https://login.univ.example"}, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func enqueue(t *testing.T, db *store.DB, m *outbox.Mailer, to, lang string) {
	t.Helper()
	err := m.Enqueue(ctx, db, "verify_email", lang, to, "", map[string]any{
		"Name": "Jean Dupont", "Address": to, "Link": "https://login.univ.example/verify?token=abc", "Validity": "24 heures"})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWorkerDelivers(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w, srv, c := setup(t, db, smtptest.Options{})
		m := mailer(t, c)
		enqueue(t, db, m, "jean@univ.example", "fr")
		enqueue(t, db, m, "john@univ.example", "en")
		if n, err := w.Process(ctx); err != nil || n != 2 {
			t.Fatalf("Process = %d, %v", n, err)
		}
		got := srv.Messages()
		if len(got) != 2 {
			t.Fatalf("server received %d messages", len(got))
		}
		subjects := map[string]string{}
		for _, r := range got {
			subjects[r.To[0]] = r.Subject
			if !r.TLS || r.AuthUser != "campusid" || !strings.Contains(r.Text, "https://login.univ.example/verify?token=abc") || !strings.Contains(r.HTML, "<a href=") {
				t.Errorf("message to %v: TLS %v auth %q text %q", r.To, r.TLS, r.AuthUser, r.Text)
			}
		}
		if subjects["jean@univ.example"] != "Vérifiez votre adresse email" || subjects["john@univ.example"] != "Verify your email address" {
			t.Errorf("subjects %v", subjects)
		}
		msgs, _ := db.ListMail(ctx, "", 10)
		for _, msg := range msgs {
			if msg.State != store.MailSent || msg.Attempts != 1 || msg.Text != "" || msg.HTML != "" {
				t.Errorf("after delivery: state %s attempts %d, body kept %v", msg.State, msg.Attempts, msg.Text != "")
			}
		}
		if n, _ := w.Process(ctx); n != 0 {
			t.Errorf("a second pass sent %d messages again", n)
		}
	})
}

// TestWorkerSurvivesServerDown: the relay is down for a while; nothing is
// lost, each attempt is recorded, retries back off, and everything leaves
// once it is back.
func TestWorkerSurvivesServerDown(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w, srv, c := setup(t, db, smtptest.Options{})
		m := mailer(t, c)
		for _, to := range []string{"a@univ.example", "b@univ.example", "c@univ.example"} {
			enqueue(t, db, m, to, "fr")
		}
		srv.Down()
		if n, _ := w.Process(ctx); n != 3 {
			t.Fatalf("first pass attempted %d", n)
		}
		msgs, _ := db.ListMail(ctx, store.MailPending, 10)
		if len(msgs) != 3 {
			t.Fatalf("%d messages still pending, want 3", len(msgs))
		}
		first := msgs[0]
		if first.Attempts != 1 || first.LastError == "" || !first.NextAttemptAt.After(c.Now()) {
			t.Fatalf("after a failed attempt: %+v", first)
		}
		if n, _ := w.Process(ctx); n != 0 {
			t.Fatalf("retried before the backoff: %d", n)
		}
		c.Advance(31 * time.Second)
		w.Process(ctx) // still down: second attempt, longer backoff
		msg, _ := db.MailByID(ctx, first.ID)
		if msg.Attempts != 2 || msg.NextAttemptAt.Sub(c.Now()) < 59*time.Second {
			t.Fatalf("second attempt: attempts %d, next in %v (want about 60s)", msg.Attempts, msg.NextAttemptAt.Sub(c.Now()))
		}
		srv.Up()
		c.Advance(61 * time.Second)
		if n, _ := w.Process(ctx); n != 3 {
			t.Fatalf("after the relay came back, attempted %d", n)
		}
		if got := len(srv.Messages()); got != 3 {
			t.Fatalf("received %d of 3 messages", got)
		}
		att, _ := db.MailAttempts(ctx, first.ID)
		if len(att) != 3 || att[0].Error == "" || att[2].Error != "" {
			t.Fatalf("attempts recorded: %+v", att)
		}
	})
}

func TestWorkerGivesUp(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w, srv, c := setup(t, db, smtptest.Options{RejectRcpt: func(a string) bool { return a == "gone@univ.example" }})
		m := mailer(t, c)
		enqueue(t, db, m, "gone@univ.example", "fr")
		w.Process(ctx)
		msgs, _ := db.ListMail(ctx, "", 10)
		if msgs[0].State != store.MailFailed || msgs[0].Attempts != 1 {
			t.Fatalf("a refused recipient: state %s after %d attempts, want failed after 1", msgs[0].State, msgs[0].Attempts)
		}
		// A message undeliverable for longer than MaxAge is given up too.
		enqueue(t, db, m, "late@univ.example", "fr")
		srv.Down()
		for i := 0; i < 20; i++ {
			w.Process(ctx)
			c.Advance(10 * time.Minute)
		}
		c.Advance(49 * time.Hour)
		w.Process(ctx)
		late, _ := db.ListMail(ctx, store.MailFailed, 10)
		if len(late) != 2 {
			t.Fatalf("failed messages: %d, want 2", len(late))
		}
	})
}

// TestTwoWorkersSendOnce: two nodes' workers on one database deliver every
// message exactly once.
func TestTwoWorkersSendOnce(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w1, srv, c := setup(t, db, smtptest.Options{})
		w2 := *w1
		m := mailer(t, c)
		for range 30 {
			enqueue(t, db, m, "many@univ.example", "en")
		}
		var wg sync.WaitGroup
		for _, w := range []*outbox.Worker{w1, &w2} {
			wg.Add(1)
			go func() { defer wg.Done(); w.Process(ctx) }()
		}
		wg.Wait()
		if got := len(srv.Messages()); got != 30 {
			t.Fatalf("server received %d messages, want exactly 30", got)
		}
	})
}

// TestEnqueueIsTransactional: a message queued in a transaction that rolls
// back is gone with it.
func TestEnqueueIsTransactional(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		c := &clock{t: time.Now()}
		m := mailer(t, c)
		boom := errors.New("boom")
		err := db.InTx(ctx, func(tx *store.DB) error {
			enqueue(t, tx, m, "x@univ.example", "fr")
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if n, _ := db.MailBacklog(ctx); n != 0 {
			t.Fatalf("a rolled-back message stayed queued (%d)", n)
		}
	})
}

func TestMailerRendersEveryKindInBothLanguages(t *testing.T) {
	m := mailer(t, &clock{t: time.Now()})
	for _, kind := range outbox.Kinds() {
		for _, lang := range []string{"fr", "en"} {
			r, err := m.Render(kind, lang, map[string]any{"Name": "Zoé <script>", "Address": "z@univ.example", "Link": "https://x.example/l?a=1&b=2", "Validity": "1"})
			if err != nil {
				t.Fatalf("%s/%s: %v", kind, lang, err)
			}
			if r.Subject == "" || !strings.Contains(r.Text, "Zoé <script>") || strings.Contains(r.HTML, "<script>") || !strings.Contains(r.HTML, `lang="`+lang+`"`) {
				t.Errorf("%s/%s: subject %q, HTML escaping or lang wrong:\n%s", kind, lang, r.Subject, r.HTML)
			}
		}
	}
}
