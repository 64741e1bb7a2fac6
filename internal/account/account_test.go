package account_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"campusid/internal/account"
	"campusid/internal/audit"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

var ctx = context.Background()

func service(t *testing.T, db *store.DB, p account.HashParams) *account.Service {
	t.Helper()
	policy, err := account.NewPolicy("seed", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &account.Service{DB: db, Hasher: account.NewHasher(p, 2, time.Second), Policy: policy,
		Audit: &audit.Log{DB: db, Log: log, Now: time.Now}, Now: time.Now}
}

func cheap(m uint32) account.HashParams {
	p := account.DefaultHashParams()
	p.Memory, p.Iterations = m, 1
	return p
}

const pw = "Vq7!r2#Lp9_x"

func TestCreate(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		s := service(t, db, cheap(64))
		cases := []struct {
			name    string
			in      account.NewAccount
			wantErr string // InputError field, or "policy"
			check   func(t *testing.T, a store.Account)
		}{
			{name: "provisioned without password", in: account.NewAccount{Emails: []string{"Jean.Dupont@Univ.example"}, GivenName: "Jean", FamilyName: "Dupont"},
				check: func(t *testing.T, a store.Account) {
					if a.State != store.StateProvisioned || a.Identifier != "jean.dupont" || a.DisplayName != "Jean Dupont" {
						t.Errorf("got %+v", a)
					}
				}},
			{name: "derived identifier avoids a taken one", in: account.NewAccount{Emails: []string{"jean.dupont@other.example"}},
				check: func(t *testing.T, a store.Account) {
					if a.Identifier != "jean.dupont2" {
						t.Errorf("identifier %q, want jean.dupont2", a.Identifier)
					}
				}},
			{name: "active with password", in: account.NewAccount{Identifier: "MMartin", Emails: []string{"m.martin@univ.example"}, Password: pw},
				check: func(t *testing.T, a store.Account) {
					if a.State != store.StateActive || a.Identifier != "mmartin" || !strings.HasPrefix(a.PasswordHash, "$argon2id$") {
						t.Errorf("got %+v", a)
					}
				}},
			{name: "temporary", in: account.NewAccount{Emails: []string{"temp@univ.example"}, TemporaryUntil: ptr(time.Now().Add(48 * time.Hour))},
				check: func(t *testing.T, a store.Account) {
					if a.Kind != store.KindTemporary || a.ExpiresAt == nil {
						t.Errorf("got %+v", a)
					}
				}},
			{name: "no address", in: account.NewAccount{Identifier: "x"}, wantErr: "email"},
			{name: "bad address", in: account.NewAccount{Emails: []string{"not an address"}}, wantErr: "email"},
			{name: "address of another account", in: account.NewAccount{Identifier: "other", Emails: []string{"M.MARTIN@univ.example"}}, wantErr: "email"},
			{name: "identifier taken", in: account.NewAccount{Identifier: "mmartin", Emails: []string{"new@univ.example"}}, wantErr: "id"},
			{name: "identifier with @", in: account.NewAccount{Identifier: "a@b", Emails: []string{"ab@univ.example"}}, wantErr: "id"},
			{name: "end date in the past", in: account.NewAccount{Emails: []string{"old@univ.example"}, TemporaryUntil: ptr(time.Now().Add(-time.Hour))}, wantErr: "temporary-until"},
			{name: "weak password", in: account.NewAccount{Emails: []string{"weak@univ.example"}, Password: "Password1!"}, wantErr: "policy"},
			{name: "password from own name", in: account.NewAccount{Emails: []string{"zoe.quintard@univ.example"}, Password: "Quintard#2024x"}, wantErr: "policy"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before, _ := db.ListAccounts(ctx, store.AccountFilter{})
				a, err := s.Create(ctx, c.in)
				if c.wantErr != "" {
					var ie *account.InputError
					var pe *account.PolicyError
					switch {
					case c.wantErr == "policy" && errors.As(err, &pe):
					case errors.As(err, &ie) && ie.Field == c.wantErr:
					default:
						t.Fatalf("err = %v, want a %s error", err, c.wantErr)
					}
					if after, _ := db.ListAccounts(ctx, store.AccountFilter{}); len(after) != len(before) {
						t.Errorf("a refused creation left an account behind")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				c.check(t, a)
				evs, _ := db.ListAudit(ctx, store.AuditFilter{AccountID: a.ID, Type: "account.create"})
				if len(evs) != 1 {
					t.Errorf("audit events for the creation: %d", len(evs))
				}
			})
		}
	})
}

func TestCheckPasswordRehashesWhenParametersChange(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		old := service(t, db, cheap(64))
		a, err := old.Create(ctx, account.NewAccount{Identifier: "rehash", Emails: []string{"rehash@univ.example"}, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(a.PasswordHash, "m=64,") {
			t.Fatalf("hash %s", a.PasswordHash)
		}
		stronger := service(t, db, cheap(128))
		ok, err := stronger.CheckPassword(ctx, a, "wrong")
		if err != nil || ok {
			t.Fatalf("wrong password: %v %v", ok, err)
		}
		if got, _ := db.AccountByID(ctx, a.ID); got.PasswordHash != a.PasswordHash {
			t.Fatal("a failed check must not rehash")
		}
		ok, err = stronger.CheckPassword(ctx, a, pw)
		if err != nil || !ok {
			t.Fatalf("right password: %v %v", ok, err)
		}
		got, _ := db.AccountByID(ctx, a.ID)
		if !strings.Contains(got.PasswordHash, "m=128,") {
			t.Fatalf("not rehashed with the new parameters: %s", got.PasswordHash)
		}
		if ok, _ := stronger.CheckPassword(ctx, got, pw); !ok {
			t.Fatal("the new hash does not verify")
		}
	})
}

func TestSetPasswordEndsOtherSessions(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		s := service(t, db, cheap(64))
		a, err := s.Create(ctx, account.NewAccount{Identifier: "sp", Emails: []string{"sp@univ.example"}, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		var ids []string
		for i := range 3 {
			ss := store.Session{TokenHash: "t" + string(rune('a'+i)), AccountID: a.ID, AuthTime: now, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
			db.CreateSession(ctx, &ss)
			ids = append(ids, ss.ID)
		}
		if err := s.SetPassword(ctx, a.ID, "Zx8$kq2!Wm4_p", "self", ids[0], true); err != nil {
			t.Fatal(err)
		}
		live, _ := db.ListSessions(ctx, a.ID, now)
		if len(live) != 1 || live[0].ID != ids[0] {
			t.Fatalf("live sessions after change: %d", len(live))
		}
		var pe *account.PolicyError
		if err := s.SetPassword(ctx, a.ID, "short", "self", "", true); !errors.As(err, &pe) {
			t.Fatalf("weak password: %v", err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestCreateWithPersonalAddress(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		s := service(t, db, cheap(64))
		a, err := s.Create(ctx, account.NewAccount{Emails: []string{"ada@univ.example"}, PersonalEmails: []string{"ada@perso.example"}})
		if err != nil {
			t.Fatal(err)
		}
		emails, _ := db.EmailsOf(ctx, a.ID)
		if len(emails) != 2 || emails[0].Kind != store.EmailInstitutional || !emails[0].Primary || emails[1].Kind != store.EmailPersonal {
			t.Fatalf("emails %+v", emails)
		}
	})
}
