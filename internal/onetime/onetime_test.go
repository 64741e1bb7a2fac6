package onetime

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"campusid/internal/outbox"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
	"campusid/internal/throttle"
)

// fixture is an issuer over a fresh store with one account, a settable
// clock and the default limits (codes: 3 minutes, 5 tries; one message a
// minute per purpose and account).
type fixture struct {
	t       *testing.T
	db      *store.DB
	i       *Issuer
	account store.Account
	addr    string
	mu      sync.Mutex
	now     time.Time
}

func newFixture(t *testing.T, db *store.DB) *fixture {
	return newFixtureOn(t, db, "jdupont", "jean.dupont@univ.example")
}

// newFixtureOn is a fixture over db with an account of its own.
func newFixtureOn(t *testing.T, db *store.DB, ident, addr string) *fixture {
	f := &fixture{t: t, db: db, now: time.Date(2031, 3, 4, 14, 3, 0, 0, time.UTC), addr: addr}
	mailer, err := outbox.NewMailer(outbox.SiteInfo{Name: "campusid", PublicURL: "https://id.univ.example"}, f.Now)
	if err != nil {
		t.Fatal(err)
	}
	f.i = &Issuer{DB: db, Mailer: mailer, PublicURL: "https://id.univ.example", Now: f.Now,
		Validity:       map[string]time.Duration{store.TokenCode: 3 * time.Minute, store.PurposeLoginLink: 24 * time.Hour},
		ResendInterval: time.Minute, MaxCodeTries: 5,
		PerClient: throttle.Backoff{DB: db, Prefix: "send:ip:", Free: 20, Max: 10 * time.Minute, Window: time.Hour}}
	f.account = store.Account{Identifier: ident, DisplayName: ident, State: store.StateActive, Kind: store.KindRegular,
		CreatedAt: f.now, UpdatedAt: f.now}
	if err := db.CreateAccount(context.Background(), &f.account, []store.Email{{Address: addr,
		Kind: store.EmailInstitutional, Primary: true, VerifiedAt: &f.now}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }

func (f *fixture) advance(d time.Duration) { f.mu.Lock(); f.now = f.now.Add(d); f.mu.Unlock() }

var (
	codeRe = regexp.MustCompile(`(?m)^\s+(\d{6})\s*$`)
	linkRe = regexp.MustCompile(`\?token=([A-Za-z0-9_-]+)`)
)

// send queues a code (flowID != "") or a link through a transaction, as
// the handlers do, and returns the secret read back from the message.
func (f *fixture) send(purpose, flowID string) (string, error) {
	f.t.Helper()
	ctx := context.Background()
	m := Message{Purpose: purpose, Lang: "fr", To: f.addr, AccountID: f.account.ID, FlowID: flowID,
		Path: "/login/link", Data: map[string]any{"Name": f.account.DisplayName}}
	err := f.db.InTx(ctx, func(tx *store.DB) error {
		if flowID != "" {
			return f.i.SendCode(ctx, tx, m, "192.0.2.1")
		}
		return f.i.SendLink(ctx, tx, m, "192.0.2.1")
	})
	if err != nil {
		return "", err
	}
	mails, err := f.db.ListMail(ctx, "", 1)
	if err != nil || len(mails) != 1 {
		f.t.Fatalf("no message queued: %v", err)
	}
	re := codeRe
	if flowID == "" {
		re = linkRe
	}
	sub := re.FindStringSubmatch(mails[0].Text)
	if sub == nil {
		f.t.Fatalf("no secret in the message:\n%s", mails[0].Text)
	}
	return sub[1], nil
}

func (f *fixture) mustSend(purpose, flowID string) string {
	f.t.Helper()
	s, err := f.send(purpose, flowID)
	if err != nil {
		f.t.Fatalf("send %s: %v", purpose, err)
	}
	return s
}

// wrong is a code that is not c.
func wrong(c string) string {
	b := []byte(c)
	b[5] = '0' + (b[5]-'0'+1)%10
	return string(b)
}

// tries returns the tries of the flow's live codes.
func (f *fixture) tries(flowID string) []int {
	f.t.Helper()
	live, err := f.db.LiveTokens(context.Background(), flowID, store.PurposeLoginCode, f.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	var out []int
	for _, c := range live {
		out = append(out, c.Tries)
	}
	return out
}

func TestNormalizeCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "123456", "123456"},
		{"spaces", " 123 456 ", "123456"},
		{"dash", "123-456", "123456"},
		{"pairs", "12 34 56", "123456"},
		{"dots and tab", "123.456\t", "123456"},
		{"full-width digits", "１２３４５６", "123456"},
		{"full-width with ideographic space", "１２３\u3000４５６", "123456"},
		{"letters dropped", "code: 123456", "123456"},
		{"too short stays short", "12345", "12345"},
		{"too long stays too long", "1234567890", "1234567"},
		{"empty", "", ""},
		{"no digits", "abcdef", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := normalizeCode(tc.in); got != tc.want {
				t.Errorf("normalizeCode(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCheckCode(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		code := f.mustSend(store.PurposeLoginCode, "flow-a")

		if _, err := f.i.CheckCode(ctx, "flow-a", store.PurposeLoginCode, wrong(code)); !errors.Is(err, ErrCodeWrong) {
			t.Fatalf("wrong code: %v, want ErrCodeWrong", err)
		}
		if got := f.tries("flow-a"); len(got) != 1 || got[0] != 1 {
			t.Fatalf("tries after one wrong code: %v, want [1]", got)
		}
		// The code belongs to its flow: elsewhere it is not even looked at.
		if _, err := f.i.CheckCode(ctx, "flow-b", store.PurposeLoginCode, code); !errors.Is(err, ErrCodeDead) {
			t.Fatalf("code in another flow: %v, want ErrCodeDead", err)
		}
		// ...nor under another purpose.
		if _, err := f.i.CheckCode(ctx, "flow-a", store.PurposeResetCode, code); !errors.Is(err, ErrCodeDead) {
			t.Fatalf("code under another purpose: %v, want ErrCodeDead", err)
		}
		tok, err := f.i.CheckCode(ctx, "flow-a", store.PurposeLoginCode, code[:3]+" "+code[3:])
		if err != nil {
			t.Fatalf("right code, pasted with a space: %v", err)
		}
		if tok.AccountID != f.account.ID || tok.FlowID != "flow-a" || tok.SentTo != "jean.dupont@univ.example" {
			t.Fatalf("token %+v", tok)
		}
		// Used: dead, right or wrong.
		for _, c := range []string{code, wrong(code)} {
			if _, err := f.i.CheckCode(ctx, "flow-a", store.PurposeLoginCode, c); !errors.Is(err, ErrCodeDead) {
				t.Fatalf("used code: %v, want ErrCodeDead", err)
			}
		}
	})
}

func TestCheckCodeDiesAfterFiveWrongTries(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		code := f.mustSend(store.PurposeLoginCode, "flow-a")
		for i := 1; i <= 4; i++ {
			if _, err := f.i.CheckCode(ctx, "flow-a", store.PurposeLoginCode, wrong(code)); !errors.Is(err, ErrCodeWrong) {
				t.Fatalf("wrong try %d: %v, want ErrCodeWrong", i, err)
			}
		}
		// The fifth wrong try is compared, and kills the code.
		if _, err := f.i.CheckCode(ctx, "flow-a", store.PurposeLoginCode, wrong(code)); !errors.Is(err, ErrCodeDead) {
			t.Fatalf("fifth wrong try: %v, want ErrCodeDead", err)
		}
		// The right code is no longer compared at all.
		if _, err := f.i.CheckCode(ctx, "flow-a", store.PurposeLoginCode, code); !errors.Is(err, ErrCodeDead) {
			t.Fatalf("right code after five wrong tries: %v, want ErrCodeDead", err)
		}
		if got := f.tries("flow-a"); len(got) != 1 || got[0] != 5 {
			t.Fatalf("tries: %v, want [5]", got)
		}
	})
}

func TestCheckCodeExpiry(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		code := f.mustSend(store.PurposeLoginCode, "flow-a")
		f.advance(3*time.Minute - time.Second)
		if _, err := f.i.CheckCode(ctx, "flow-a", store.PurposeLoginCode, code); err != nil {
			t.Fatalf("code at 2m59: %v", err)
		}
		code = f.mustSend(store.PurposeLoginCode, "flow-b")
		f.advance(3*time.Minute + time.Second)
		if _, err := f.i.CheckCode(ctx, "flow-b", store.PurposeLoginCode, code); !errors.Is(err, ErrCodeDead) {
			t.Fatalf("code at 3m01: %v, want ErrCodeDead", err)
		}
	})
}

// TestCheckCodeResend: a second code in the flow leaves the first one
// working; using either ends the other.
func TestCheckCodeResend(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		first := f.mustSend(store.PurposeLoginCode, "flow-a")
		f.advance(30 * time.Second)
		var soon ErrTooSoon
		if _, err := f.send(store.PurposeLoginCode, "flow-a"); !errors.As(err, &soon) || soon.Wait != 30*time.Second {
			t.Fatalf("second code after 30s: %v, want ErrTooSoon{30s}", err)
		}
		last, wait, err := f.i.LastSent(ctx, f.account.ID, store.PurposeLoginCode)
		if err != nil || !last.Equal(f.Now().Add(-30*time.Second)) || wait != 30*time.Second {
			t.Fatalf("LastSent = %v, %v, %v", last, wait, err)
		}
		f.advance(30 * time.Second)
		second := f.mustSend(store.PurposeLoginCode, "flow-a")
		if first == second {
			t.Skip("two equal random codes in a row (one chance in a million)")
		}
		if _, err := f.i.CheckCode(ctx, "flow-a", store.PurposeLoginCode, first); err != nil {
			t.Fatalf("the first code after a resend: %v", err)
		}
		if _, err := f.i.CheckCode(ctx, "flow-a", store.PurposeLoginCode, second); !errors.Is(err, ErrCodeDead) {
			t.Fatalf("the second code after the first was used: %v, want ErrCodeDead", err)
		}
	})
}

// TestCheckCodeConcurrentRight: 50 requests race with the right code;
// exactly one wins, and the tries counter never passes the maximum.
func TestCheckCodeConcurrentRight(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		code := f.mustSend(store.PurposeLoginCode, "flow-a")
		live, err := db.LiveTokens(context.Background(), "flow-a", store.PurposeLoginCode, f.Now())
		if err != nil || len(live) != 1 {
			t.Fatalf("live codes: %v, %v", live, err)
		}
		var ok, dead, other atomic.Int32
		race(50, func() {
			_, err := f.i.CheckCode(context.Background(), "flow-a", store.PurposeLoginCode, code)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrCodeDead):
				dead.Add(1)
			default:
				other.Add(1)
				t.Errorf("CheckCode: %v", err)
			}
		})
		if ok.Load() != 1 || dead.Load() != 49 {
			t.Fatalf("50 racing right codes: %d successes, %d dead, %d errors; want exactly 1 success", ok.Load(), dead.Load(), other.Load())
		}
		after, err := db.TokenByHash(context.Background(), live[0].TokenHash)
		if err != nil || after.UsedAt == nil || after.Tries > 5 {
			t.Fatalf("the code after the race: used %v, tries %d (max 5), %v", after.UsedAt, after.Tries, err)
		}
	})
}

// TestCheckCodeConcurrentWrong: 50 wrong codes at once get no more than 5
// comparisons; the right code afterwards is dead.
func TestCheckCodeConcurrentWrong(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		code := f.mustSend(store.PurposeLoginCode, "flow-a")
		var wrongs, dead atomic.Int32
		race(50, func() {
			_, err := f.i.CheckCode(context.Background(), "flow-a", store.PurposeLoginCode, wrong(code))
			switch {
			case errors.Is(err, ErrCodeWrong):
				wrongs.Add(1)
			case errors.Is(err, ErrCodeDead):
				dead.Add(1)
			default:
				t.Errorf("CheckCode: %v", err)
			}
		})
		if wrongs.Load() > 4 || wrongs.Load()+dead.Load() != 50 {
			t.Fatalf("%d 'wrong' (tries left) and %d 'dead' answers, want at most 4 'wrong'", wrongs.Load(), dead.Load())
		}
		if got := f.tries("flow-a"); len(got) != 1 || got[0] != 5 {
			t.Fatalf("tries after 50 racing wrong codes: %v, want [5]", got)
		}
		if _, err := f.i.CheckCode(context.Background(), "flow-a", store.PurposeLoginCode, code); !errors.Is(err, ErrCodeDead) {
			t.Fatalf("right code after the race: %v, want ErrCodeDead", err)
		}
	})
}

func TestRedeemLinkConcurrent(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		link := f.mustSend(store.PurposeLoginLink, "")
		var ok, gone atomic.Int32
		race(50, func() {
			_, err := f.i.RedeemLink(context.Background(), db, link, store.PurposeLoginLink)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrNotFound):
				gone.Add(1)
			default:
				t.Errorf("RedeemLink: %v", err)
			}
		})
		if ok.Load() != 1 || gone.Load() != 49 {
			t.Fatalf("50 racing redemptions: %d successes, %d refused; want exactly 1 success", ok.Load(), gone.Load())
		}
	})
}

// TestLinksOfAPurpose: a new link leaves the earlier one working; using one
// ends the others; a link of another purpose is untouched; expiry holds.
func TestLinksOfAPurpose(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		first := f.mustSend(store.PurposeLoginLink, "")
		f.advance(time.Minute)
		second := f.mustSend(store.PurposeLoginLink, "")
		f.advance(time.Minute)
		third := f.mustSend(store.PurposeLoginLink, "")
		if _, err := f.i.RedeemLink(ctx, db, first, store.PurposeActivation); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("link redeemed under another purpose: %v", err)
		}
		if _, err := f.i.RedeemLink(ctx, db, second, store.PurposeLoginLink); err != nil {
			t.Fatalf("the second link: %v", err)
		}
		for name, l := range map[string]string{"first": first, "third": third, "second again": second} {
			if _, err := f.i.PeekLink(ctx, l, store.PurposeLoginLink); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s link after the second was used: %v, want ErrNotFound", name, err)
			}
		}
		f.advance(time.Minute)
		late := f.mustSend(store.PurposeLoginLink, "")
		f.advance(24*time.Hour - time.Second)
		if _, err := f.i.PeekLink(ctx, late, store.PurposeLoginLink); err != nil {
			t.Fatalf("link at 23h59m59s: %v", err)
		}
		f.advance(2 * time.Second)
		if _, err := f.i.RedeemLink(ctx, db, late, store.PurposeLoginLink); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("link after 24h: %v, want ErrNotFound", err)
		}
	})
}

func TestPeekLinkDoesNotConsume(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		link := f.mustSend(store.PurposeLoginLink, "")
		for i := range 3 {
			tok, err := f.i.PeekLink(ctx, link, store.PurposeLoginLink)
			if err != nil || tok.UsedAt != nil || tok.AccountID != f.account.ID {
				t.Fatalf("peek %d: %+v, %v", i+1, tok, err)
			}
		}
		if _, err := f.i.PeekLink(ctx, link, store.PurposeResetLink); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("peek under another purpose: %v", err)
		}
		if _, err := f.i.PeekLink(ctx, "not-a-token", store.PurposeLoginLink); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("peek of an unknown token: %v", err)
		}
		if _, err := f.i.RedeemLink(ctx, db, link, store.PurposeLoginLink); err != nil {
			t.Fatalf("redeem after peeks: %v", err)
		}
		if _, err := f.i.PeekLink(ctx, link, store.PurposeLoginLink); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("peek after use: %v, want ErrNotFound", err)
		}
	})
}

// TestSendCountsAgainstTheClient: every message counts against the client
// address, inside the caller's transaction (on SQLite a write beside the
// open transaction would wait for the busy timeout), and a rolled-back
// send counts nothing and leaves no code.
func TestSendCountsAgainstTheClient(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		for i := range 20 {
			f.mustSend(store.PurposeLoginCode, "flow-a")
			if i < 19 {
				f.advance(time.Minute)
			}
		}
		if wait, err := f.i.ClientWait(ctx, "192.0.2.1"); err != nil || wait != time.Second {
			t.Fatalf("after 20 messages: client wait %v (%v), want 1s", wait, err)
		}
		if wait, err := f.i.ClientWait(ctx, "192.0.2.2"); err != nil || wait != 0 {
			t.Fatalf("another client: wait %v (%v), want 0", wait, err)
		}

		g := newFixtureOn(t, db, "mmartin", "marie.martin@univ.example")
		boom := errors.New("boom")
		err := db.InTx(ctx, func(tx *store.DB) error {
			if err := g.i.SendCode(ctx, tx, Message{Purpose: store.PurposeLoginCode, Lang: "en", To: "marie.martin@univ.example",
				AccountID: g.account.ID, FlowID: "flow-m", Data: map[string]any{"Name": "Marie"}}, "192.0.2.3"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx: %v", err)
		}
		if wait, _ := g.i.ClientWait(ctx, "192.0.2.3"); wait != 0 {
			t.Fatalf("a rolled-back send was counted: wait %v", wait)
		}
		if got := g.tries("flow-m"); len(got) != 0 {
			t.Fatalf("a rolled-back send left a code: %v", got)
		}
		if last, _, _ := g.i.LastSent(ctx, g.account.ID, store.PurposeLoginCode); !last.IsZero() {
			t.Fatalf("a rolled-back send left a message at %v", last)
		}
	})
}

// race runs fn n times at once.
func race(n int, fn func()) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() { <-start; fn() })
	}
	close(start)
	wg.Wait()
}
