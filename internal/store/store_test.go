package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

var ctx = context.Background()

func TestMigrationsSameVersionsOnBothDialects(t *testing.T) {
	lite, err := store.Migrations(store.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := store.Migrations(store.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pg) || len(lite) == 0 {
		t.Fatalf("sqlite has %d migrations, postgres %d", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].Name != pg[i].Name {
			t.Errorf("migration %d: sqlite %s, postgres %s", i, lite[i].Name, pg[i].Name)
		}
	}
}

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			url := storetest.URL(t, d)
			var wg sync.WaitGroup
			errs := make([]error, 4)
			applied := make([][]string, 4)
			for i := range 4 { // four nodes starting at once
				wg.Add(1)
				go func() {
					defer wg.Done()
					db, err := store.Open(ctx, url, 2)
					if err != nil {
						errs[i] = err
						return
					}
					defer db.Close()
					applied[i], errs[i] = db.Migrate(ctx, time.Now())
				}()
			}
			wg.Wait()
			total := 0
			for i := range 4 {
				if errs[i] != nil {
					t.Fatalf("node %d: %v", i, errs[i])
				}
				total += len(applied[i])
			}
			migs, _ := store.Migrations(d)
			if total != len(migs) {
				t.Fatalf("migrations applied %d times in all, want each once (%d)", total, len(migs))
			}
		})
	}
}

func newAccount(t *testing.T, db *store.DB, ident string, addrs ...string) store.Account {
	t.Helper()
	now := time.Now()
	a := store.Account{Identifier: ident, DisplayName: ident, State: store.StateActive, Kind: store.KindRegular, CreatedAt: now, UpdatedAt: now}
	var emails []store.Email
	for i, e := range addrs {
		emails = append(emails, store.Email{Address: e, Primary: i == 0, VerifiedAt: &now})
	}
	if err := db.CreateAccount(ctx, &a, emails); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAccounts(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		a := newAccount(t, db, "JDupont", "Jean.Dupont@Univ.example", "jd@perso.example")
		for _, login := range []string{"jdupont", "JDUPONT", "jean.dupont@univ.example", " JD@perso.EXAMPLE "} {
			got, err := db.AccountByLogin(ctx, login)
			if err != nil || got.ID != a.ID {
				t.Errorf("AccountByLogin(%q) = %v, %v", login, got.ID, err)
			}
		}
		if _, err := db.AccountByLogin(ctx, "nobody@univ.example"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown address: %v, want ErrNotFound", err)
		}
		// An address belongs to one account only; the failed insert leaves nothing behind.
		now := time.Now()
		b := store.Account{Identifier: "other", State: store.StateActive, Kind: store.KindRegular, CreatedAt: now, UpdatedAt: now}
		err := db.CreateAccount(ctx, &b, []store.Email{{Address: "JD@perso.example"}})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate address: %v, want ErrConflict", err)
		}
		if _, err := db.AccountByLogin(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("half-written account left behind: %v", err)
		}
		if err := db.CreateAccount(ctx, &store.Account{Identifier: "jdupont", CreatedAt: now, UpdatedAt: now}, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate identifier: %v", err)
		}
		emails, err := db.EmailsOf(ctx, a.ID)
		if err != nil || len(emails) != 2 || !emails[0].Primary || emails[0].Address != "jean.dupont@univ.example" {
			t.Fatalf("EmailsOf = %+v, %v", emails, err)
		}
		if err := db.SetPrimaryEmail(ctx, a.ID, emails[1].ID); err != nil {
			t.Fatal(err)
		}
		emails, _ = db.EmailsOf(ctx, a.ID)
		if emails[0].Address != "jd@perso.example" || emails[1].Primary {
			t.Fatalf("after SetPrimaryEmail: %+v", emails)
		}
		list, err := db.ListAccounts(ctx, store.AccountFilter{Search: "perso"})
		if err != nil || len(list) != 1 || list[0].ID != a.ID {
			t.Fatalf("ListAccounts(search) = %v, %v", list, err)
		}
		if err := db.SetAccountState(ctx, "nope", store.StateDisabled, now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SetAccountState(unknown) = %v", err)
		}
	})
}

func TestRedeemEmailTokenExactlyOnceUnderConcurrency(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		a := newAccount(t, db, "tok", "tok@univ.example")
		now := time.Now()
		tok := store.EmailToken{TokenHash: "h1", Purpose: store.PurposeVerifyEmail, AccountID: a.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := db.CreateEmailToken(ctx, &tok); err != nil {
			t.Fatal(err)
		}
		var ok, notFound atomic.Int32
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := db.RedeemEmailToken(ctx, "h1", store.PurposeVerifyEmail, time.Now())
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, store.ErrNotFound):
					notFound.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 || notFound.Load() != 49 {
			t.Fatalf("%d redemptions succeeded, %d refused; want 1 and 49", ok.Load(), notFound.Load())
		}
		exp := store.EmailToken{TokenHash: "h2", Purpose: store.PurposeVerifyEmail, AccountID: a.ID, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
		db.CreateEmailToken(ctx, &exp)
		if _, err := db.RedeemEmailToken(ctx, "h2", store.PurposeVerifyEmail, now.Add(2*time.Minute)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired token redeemed: %v", err)
		}
		if _, err := db.RedeemEmailToken(ctx, "h2", "other", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("token redeemed for another purpose: %v", err)
		}
	})
}

func TestSessions(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		a := newAccount(t, db, "sess", "sess@univ.example")
		now := time.Now()
		var ids []string
		for i := range 3 {
			s := store.Session{TokenHash: string(rune('a' + i)), AccountID: a.ID, AuthTime: now, AuthMethods: "pwd",
				CreatedAt: now, LastSeenAt: now.Add(time.Duration(i) * time.Second), ExpiresAt: now.Add(time.Hour)}
			if err := db.CreateSession(ctx, &s); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, s.ID)
		}
		n, err := db.RevokeOtherSessions(ctx, a.ID, ids[0], now)
		if err != nil || n != 2 {
			t.Fatalf("RevokeOtherSessions = %d, %v", n, err)
		}
		live, _ := db.ListSessions(ctx, a.ID, now)
		if len(live) != 1 || live[0].ID != ids[0] {
			t.Fatalf("live sessions = %+v", live)
		}
		got, acct, err := db.SessionAndAccount(ctx, "b")
		if err != nil || got.RevokedAt == nil || acct.ID != a.ID || acct.Identifier != a.Identifier {
			t.Fatalf("revoked session: %+v, %+v, %v", got, acct, err)
		}
		if _, _, err := db.SessionAndAccount(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown token: %v", err)
		}
	})
}

func TestThrottleWindow(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		now := time.Now()
		for i := 1; i <= 3; i++ {
			th, err := db.HitThrottle(ctx, "k", now.Add(time.Duration(i)*time.Second), time.Minute)
			if err != nil || th.Count != i {
				t.Fatalf("hit %d: %+v, %v", i, th, err)
			}
		}
		th, _ := db.GetThrottle(ctx, "k", now.Add(10*time.Second), time.Minute)
		if th.Count != 3 {
			t.Fatalf("GetThrottle = %+v", th)
		}
		if th, _ := db.HitThrottle(ctx, "k", now.Add(2*time.Minute), time.Minute); th.Count != 1 {
			t.Fatalf("after the window, count = %d, want 1", th.Count)
		}
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() { defer wg.Done(); db.HitThrottle(ctx, "c", now, time.Minute) }()
		}
		wg.Wait()
		if th, _ := db.GetThrottle(ctx, "c", now, time.Minute); th.Count != 20 {
			t.Fatalf("20 concurrent hits counted %d", th.Count)
		}
	})
}

func TestOutboxClaimIsExclusive(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		now := time.Now()
		for range 10 {
			if err := db.EnqueueMail(ctx, &store.OutboxMessage{To: "x@univ.example", Subject: "s", Text: "t", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		var claimed atomic.Int32
		seen := sync.Map{}
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msgs, err := db.ClaimDueMail(ctx, now, time.Minute, 10)
				if err != nil {
					t.Error(err)
				}
				for _, m := range msgs {
					if _, dup := seen.LoadOrStore(m.ID, true); dup {
						t.Errorf("message %s claimed twice", m.ID)
					}
					claimed.Add(1)
				}
			}()
		}
		wg.Wait()
		if claimed.Load() != 10 {
			t.Fatalf("claimed %d messages, want 10", claimed.Load())
		}
		msgs, _ := db.ListMail(ctx, store.MailPending, 1)
		id := msgs[0].ID
		if err := db.RecordMailAttempt(ctx, id, now, "", store.MailSent, now, false); err != nil {
			t.Fatal(err)
		}
		m, _ := db.MailByID(ctx, id)
		att, _ := db.MailAttempts(ctx, id)
		if m.State != store.MailSent || m.Attempts != 1 || m.Text != "" || len(att) != 1 {
			t.Fatalf("after send: %+v attempts %v", m, att)
		}
		if n, _ := db.MailBacklog(ctx); n != 9 {
			t.Fatalf("backlog %d, want 9", n)
		}
	})
}

func TestAudit(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		now := time.Now()
		db.InsertAudit(ctx, store.AuditEvent{At: now, Type: "login.failure", AccountID: "a1", Details: map[string]string{"reason": "password"}})
		db.InsertAudit(ctx, store.AuditEvent{At: now, Type: "login.success", AccountID: "a1"})
		db.InsertAudit(ctx, store.AuditEvent{At: now, Type: "password.change", AccountID: "a2"})
		evs, err := db.ListAudit(ctx, store.AuditFilter{Type: "login."})
		if err != nil || len(evs) != 2 || evs[0].Type != "login.success" || evs[1].Details["reason"] != "password" {
			t.Fatalf("ListAudit = %+v, %v", evs, err)
		}
	})
}

func TestUnverifiedAddressOpensNothing(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		a := newAccount(t, db, "claim", "claim@univ.example")
		e := store.Email{AccountID: a.ID, Address: "pending@perso.example", CreatedAt: time.Now()}
		if err := db.AddEmail(ctx, &e); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AccountByLogin(ctx, "pending@perso.example"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("an unverified address found the account: %v", err)
		}
		db.MarkEmailVerified(ctx, e.ID, time.Now())
		if got, err := db.AccountByLogin(ctx, "pending@perso.example"); err != nil || got.ID != a.ID {
			t.Fatalf("after verification: %v, %v", got.ID, err)
		}
	})
}

func TestKnownDevicesAreBounded(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		a := newAccount(t, db, "dev", "dev@univ.example")
		now := time.Now()
		for i := range 60 {
			isNew, hadOthers, err := db.SeeDevice(ctx, a.ID, fmt.Sprintf("h%02d", i), now.Add(time.Duration(i)*time.Second))
			if err != nil || !isNew || hadOthers != (i > 0) {
				t.Fatalf("device %d: new %v others %v err %v", i, isNew, hadOthers, err)
			}
		}
		if isNew, _, _ := db.SeeDevice(ctx, a.ID, "h59", now.Add(time.Hour)); isNew {
			t.Fatal("a recent device was forgotten")
		}
		if isNew, _, _ := db.SeeDevice(ctx, a.ID, "h00", now.Add(time.Hour)); !isNew {
			t.Fatal("the oldest devices are kept beyond the bound")
		}
	})
}

// TestPreparedStatementsFollowTheTransaction: SQLite's cached prepared
// statements run on the transaction's connection inside InTx (they see its
// uncommitted writes), and a statement first met inside a transaction does
// not wait for a second connection (max_open_conns 1).
func TestPreparedStatementsFollowTheTransaction(t *testing.T) {
	for _, conns := range []int{1, 2} {
		t.Run(fmt.Sprint(conns, "conns"), func(t *testing.T) {
			db, err := store.Open(ctx, storetest.URL(t, store.SQLite), conns)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Migrate(ctx, time.Now()); err != nil {
				t.Fatal(err)
			}
			tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := db.ListCASServices(tctx); err != nil { // now cached
				t.Fatal(err)
			}
			now := time.Now()
			err = db.InTx(tctx, func(tx *store.DB) error {
				// First met here: CreateCASService has never run.
				if err := tx.CreateCASService(tctx, store.CASService{ID: "ent", Name: "ENT", URLPattern: "https://ent.example/",
					Match: "exact", CreatedAt: now, UpdatedAt: now}); err != nil {
					return err
				}
				list, err := tx.ListCASServices(tctx)
				if err != nil {
					return err
				}
				if len(list) != 1 {
					return fmt.Errorf("the cached statement does not see the transaction's write: %d services", len(list))
				}
				return errors.New("roll back")
			})
			if err == nil || err.Error() != "roll back" {
				t.Fatalf("transaction: %v", err)
			}
			if list, err := db.ListCASServices(tctx); err != nil || len(list) != 0 {
				t.Fatalf("after rollback: %d services, %v", len(list), err)
			}
		})
	}
}
