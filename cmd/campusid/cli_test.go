package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

// The CLI tests call run() as main does, with their own environment: a
// fresh database, cheap hashing and a settable clock.

type cliFixture struct {
	t       *testing.T
	dir     string
	dbURL   string
	environ []string
	clock   *clock

	once sync.Once
	db   *store.DB
}

// newCLI prepares a CLI on dbURL ("" = a new SQLite file in a temp dir).
func newCLI(t *testing.T, dbURL string) *cliFixture {
	t.Helper()
	dir := t.TempDir()
	if dbURL == "" {
		dbURL = "sqlite:" + filepath.Join(dir, "campusid.db")
	}
	return &cliFixture{t: t, dir: dir, dbURL: dbURL, clock: newClock(), environ: []string{
		"CAMPUSID_DATABASE_URL=" + dbURL,
		"CAMPUSID_DATA_DIR=" + dir,
		"CAMPUSID_PASSWORD_HASH_MEMORY_KIB=64",
		"CAMPUSID_PASSWORD_HASH_ITERATIONS=1",
	}}
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs `campusid args...` with stdin and extra environment variables.
func (c *cliFixture) runEnv(stdin string, extraEnv []string, args ...string) cliResult {
	c.t.Helper()
	var out, errb strings.Builder
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		environ: append(append([]string{}, c.environ...), extraEnv...), now: c.clock.Now}
	code := run(context.Background(), e, args)
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

func (c *cliFixture) run(stdin string, args ...string) cliResult {
	c.t.Helper()
	return c.runEnv(stdin, nil, args...)
}

// ok runs the command and fails the test unless it exits 0; it returns stdout.
func (c *cliFixture) ok(stdin string, args ...string) string {
	c.t.Helper()
	r := c.run(stdin, args...)
	if r.code != 0 {
		c.t.Fatalf("campusid %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

// store opens the CLI's database (after a first command migrated it).
func (c *cliFixture) store() *store.DB {
	c.t.Helper()
	c.once.Do(func() {
		db, err := store.Open(context.Background(), c.dbURL, 4)
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(func() { db.Close() })
		c.db = db
	})
	return c.db
}

// account reads an account by id, identifier or address.
func (c *cliFixture) account(ref string) store.Account {
	c.t.Helper()
	a, err := findAccount(context.Background(), c.store(), ref)
	if err != nil {
		c.t.Fatalf("account %s: %v", ref, err)
	}
	return a
}

// session starts a live session of the account directly in the store.
func (c *cliFixture) session(accountID string) store.Session {
	c.t.Helper()
	now := c.clock.Now()
	s := store.Session{TokenHash: session.HashToken(session.NewToken()), AccountID: accountID, AuthTime: now,
		AuthMethods: "pwd", UserAgent: "test", IP: "192.0.2.1", CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(8 * time.Hour)}
	if err := c.store().CreateSession(context.Background(), &s); err != nil {
		c.t.Fatal(err)
	}
	return s
}

func (c *cliFixture) liveSessions(accountID string) int {
	c.t.Helper()
	list, err := c.store().ListSessions(context.Background(), accountID, c.clock.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	return len(list)
}

// passwordWorks checks a password the way sign-in does, with the CLI's configuration.
func (c *cliFixture) passwordWorks(ref, password string) bool {
	c.t.Helper()
	cfg, err := loadConfig(&env{environ: c.environ}, "")
	if err != nil {
		c.t.Fatal(err)
	}
	svc, _, err := newAccounts(cfg, c.store(), cliDiscardLogger(), c.clock.Now)
	if err != nil {
		c.t.Fatal(err)
	}
	ok, err := svc.CheckPassword(context.Background(), c.account(ref), password)
	if err != nil {
		c.t.Fatal(err)
	}
	return ok
}

func cliDiscardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var cliIDRe = regexp.MustCompile(`^[a-z0-9]{16,}$`)

func TestCLIHelp(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // in stdout
	}{
		{"root --help", []string{"--help"}, []string{"Usage:", "serve", "migrate", "user", "audit", "config", "CAMPUSID_DATABASE_URL"}},
		{"root -h", []string{"-h"}, []string{"Usage:", "serve"}},
		{"root help", []string{"help"}, []string{"Usage:", "serve"}},
		{"serve", []string{"serve", "--help"}, []string{"Usage: campusid serve", "--config"}},
		{"migrate", []string{"migrate", "--help"}, []string{"Usage: campusid migrate", "-config"}},
		{"user", []string{"user", "--help"}, []string{"Usage: campusid user", "user add --email", "set-password", "-password-stdin", "-temporary-until"}},
		{"user add", []string{"user", "add", "--help"}, []string{"Usage: campusid user", "-email"}},
		{"user short -h", []string{"user", "-h"}, []string{"Usage: campusid user"}},
		{"audit", []string{"audit", "--help"}, []string{"Usage: campusid audit", "-type", "-json"}},
		{"config", []string{"config", "--help"}, []string{"Usage: campusid config", "check", "keys"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t, "")
			r := c.run("", tc.args...)
			if r.code != 0 {
				t.Fatalf("want exit 0: %v", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("usage lacks %q: %v", w, r)
				}
			}
			if r.stderr != "" {
				t.Errorf("--help wrote to stderr: %q", r.stderr)
			}
			if _, err := os.Stat(filepath.Join(c.dir, "campusid.db")); err == nil {
				t.Errorf("--help opened the database")
			}
		})
	}
}

func TestCLIUsageErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStderr []string
	}{
		{"no command", nil, nil},
		{"unknown command", []string{"frobnicate"}, []string{`unknown command "frobnicate"`, "Usage:"}},
		{"unknown flag", []string{"user", "list", "--colour"}, []string{"colour", "campusid user --help"}},
		{"user without subcommand", []string{"user"}, []string{"missing subcommand"}},
		{"unknown user subcommand", []string{"user", "delete", "x"}, []string{`unknown subcommand "delete"`}},
		{"show without account", []string{"user", "show"}, []string{"exactly one account"}},
		{"bad date", []string{"user", "add", "--email", "a@univ.example", "--temporary-until", "30/06/2027"}, []string{"--temporary-until", "2027-06-30"}},
		{"config without subcommand", []string{"config"}, []string{"check or keys"}},
		{"config unknown subcommand", []string{"config", "lint"}, []string{`"lint"`}},
		{"audit positional", []string{"audit", "extra"}, []string{`unexpected argument "extra"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newCLI(t, "").run("", tc.args...)
			if r.code != 2 {
				t.Fatalf("want exit 2: %v", r)
			}
			if len(tc.args) == 0 && !strings.Contains(r.stderr, "Usage:") { // an error: usage on stderr
				t.Errorf("no usage printed: %v", r)
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q: %v", w, r)
				}
			}
		})
	}
}

func TestCLIUserAdd(t *testing.T) {
	c := newCLI(t, "")
	id := strings.TrimSpace(c.ok("", "user", "add", "--email", "Jean.Dupont@Univ.example", "--id", "jdupont", "--name", "Jean Dupont"))
	if !cliIDRe.MatchString(id) {
		t.Fatalf("user add printed %q, want the account id alone", id)
	}
	if a := c.account(id); a.Identifier != "jdupont" || a.DisplayName != "Jean Dupont" || a.State != store.StateProvisioned {
		t.Fatalf("created %+v", a)
	}
	future := c.clock.Now().AddDate(0, 2, 0).Format("2006-01-02")
	tests := []struct {
		name      string
		stdin     string
		args      []string
		wantCode  int
		wantOut   string   // in stderr when the code is not 0
		wantState string   // of the created account ("" when refused)
		wantKind  string   // of the created account
		notOut    []string // must not be in stderr
	}{
		{name: "duplicate address, other case", args: []string{"--email", "jean.dupont@univ.EXAMPLE", "--id", "jdupont2"},
			wantCode: 1, wantOut: "this email address already belongs to an account"},
		{name: "duplicate identifier", args: []string{"--email", "other@univ.example", "--id", "JDupont"},
			wantCode: 1, wantOut: "this identifier is already taken"},
		{name: "invalid address", args: []string{"--email", "jean at univ"}, wantCode: 1, wantOut: "is not an email address"},
		{name: "no address", args: []string{"--id", "nobody"}, wantCode: 1, wantOut: "at least one email address"},
		{name: "invalid identifier", args: []string{"--email", "x@univ.example", "--id", "Jean Dupont!"}, wantCode: 1, wantOut: "identifier"},
		{name: "temporary in the past", args: []string{"--email", "tmp1@univ.example", "--temporary-until", "2020-01-01"},
			wantCode: 1, wantOut: "must be in the future"},
		{name: "temporary in the future", args: []string{"--email", "tmp2@univ.example", "--id", "tmp2", "--temporary-until", future},
			wantState: store.StateProvisioned, wantKind: store.KindTemporary},
		{name: "weak password", stdin: "abc\n", args: []string{"--email", "weak@univ.example", "--id", "weak", "--password-stdin"},
			wantCode: 1, wantOut: "password refused: wrong length; needs an upper-case letter A-Z; needs a digit 0-9; needs a special character",
			notOut: []string{"lower-case", "not allowed"}},
		{name: "password with a space", stdin: "Vq7!r2 Lp9_x\n", args: []string{"--email", "space@univ.example", "--password-stdin"},
			wantCode: 1, wantOut: "has a space or a character that is not allowed", notOut: []string{"wrong length", "upper-case"}},
		{name: "password from the name", stdin: "Marchand2024!\n", args: []string{"--email", "c.marchand@univ.example", "--name", "Claire Marchand", "--password-stdin"},
			wantCode: 1, wantOut: "built from the account's names or addresses"},
		{name: "empty stdin", stdin: "", args: []string{"--email", "empty@univ.example", "--password-stdin"},
			wantCode: 1, wantOut: "no password on standard input"},
		{name: "good password", stdin: goodPassword + "\r\nignored second line\n", args: []string{"--email", "good@univ.example", "--id", "good", "--password-stdin"},
			wantState: store.StateActive, wantKind: store.KindRegular},
		{name: "no password", args: []string{"--email", "prov@univ.example", "--id", "prov", "--given-name", "Paul", "--family-name", "Rov"},
			wantState: store.StateProvisioned, wantKind: store.KindRegular},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := c.store().ListAccounts(context.Background(), store.AccountFilter{Limit: 1000})
			r := c.run(tc.stdin, append([]string{"user", "add"}, tc.args...)...)
			if r.code != tc.wantCode {
				t.Fatalf("want exit %d: %v", tc.wantCode, r)
			}
			after, _ := c.store().ListAccounts(context.Background(), store.AccountFilter{Limit: 1000})
			if tc.wantCode != 0 {
				if !strings.Contains(r.stderr, tc.wantOut) {
					t.Errorf("stderr lacks %q: %v", tc.wantOut, r)
				}
				for _, n := range tc.notOut {
					if strings.Contains(r.stderr, n) {
						t.Errorf("stderr mentions %q: %v", n, r)
					}
				}
				if len(after) != len(before) {
					t.Errorf("a refused add left an account behind: %d -> %d", len(before), len(after))
				}
				if r.stdout != "" {
					t.Errorf("stdout on failure: %q", r.stdout)
				}
				return
			}
			newID := strings.TrimSpace(r.stdout)
			a := c.account(newID)
			if a.State != tc.wantState || a.Kind != tc.wantKind {
				t.Errorf("state %s kind %s, want %s %s", a.State, a.Kind, tc.wantState, tc.wantKind)
			}
			if tc.wantKind == store.KindTemporary {
				// Valid through the whole last day.
				end, _ := time.ParseInLocation("2006-01-02", future, time.Local)
				if a.ExpiresAt == nil || !a.ExpiresAt.Equal(end.AddDate(0, 0, 1)) {
					t.Errorf("expires %v, want the end of %s", a.ExpiresAt, future)
				}
				show := c.ok("", "user", "show", newID)
				if !strings.Contains(show, "temporary") || !strings.Contains(show, "ends:") {
					t.Errorf("show does not say temporary until:\n%s", show)
				}
			}
		})
	}
	if !c.passwordWorks("good", goodPassword) {
		t.Error("the password read from stdin (first line, CR stripped) does not work")
	}
	t.Run("identifier derived from the address, numbered when taken", func(t *testing.T) {
		for i, want := range []string{"claire.marchand", "claire.marchand2", "claire.marchand3"} {
			out := c.ok("", "user", "add", "--email", fmt.Sprintf("Claire.Marchand@site%d.example", i))
			if got := c.account(strings.TrimSpace(out)).Identifier; got != want {
				t.Errorf("identifier %q, want %q", got, want)
			}
		}
	})
	emails, _ := c.store().EmailsOf(context.Background(), id)
	if len(emails) != 1 || emails[0].Address != "jean.dupont@univ.example" || emails[0].VerifiedAt == nil || !emails[0].Primary {
		t.Errorf("addresses of jdupont: %+v", emails)
	}
}

func TestCLIUserListAndShow(t *testing.T) {
	c := newCLI(t, "")
	jd := strings.TrimSpace(c.ok("", "user", "add", "--email", "jean.dupont@univ.example", "--email", "jd@perso.example", "--id", "jdupont", "--name", "Jean Dupont", "--establishment", "UNIV-A"))
	c.ok(goodPassword+"\n", "user", "add", "--email", "marie.durand@univ.example", "--id", "mdurand", "--name", "Marie Durand", "--password-stdin")
	c.ok("", "user", "add", "--email", "paul@other.example", "--id", "pmartin", "--name", "Paul Martin")

	lines := func(out string) []string {
		var ids []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			ids = append(ids, strings.Fields(l)[1])
		}
		return ids
	}
	listTests := []struct {
		name string
		args []string
		want string // identifiers, space-separated, in order
	}{
		{"all", nil, "jdupont mdurand pmartin"},
		{"search identifier", []string{"--search", "dur"}, "mdurand"},
		{"search display name, any case", []string{"--search", "jean DU"}, "jdupont"},
		{"search address", []string{"--search", "perso.example"}, "jdupont"},
		{"search domain", []string{"--search", "@univ.example"}, "jdupont mdurand"},
		{"state active", []string{"--state", "active"}, "mdurand"},
		{"state provisioned", []string{"--state", "provisioned"}, "jdupont pmartin"},
		{"state and search", []string{"--state", "provisioned", "--search", "martin"}, "pmartin"},
		{"limit", []string{"--limit", "1"}, "jdupont"},
		{"nothing", []string{"--search", "zzz"}, ""},
	}
	for _, tc := range listTests {
		t.Run("list/"+tc.name, func(t *testing.T) {
			out := c.ok("", append([]string{"user", "list"}, tc.args...)...)
			if !strings.HasPrefix(out, "ID") || !strings.Contains(strings.Split(out, "\n")[0], "PRIMARY EMAIL") {
				t.Errorf("no header:\n%s", out)
			}
			if got := strings.Join(lines(out), " "); got != tc.want {
				t.Errorf("listed %q, want %q\n%s", got, tc.want, out)
			}
		})
	}
	t.Run("list shows the primary address", func(t *testing.T) {
		out := c.ok("", "user", "list", "--search", "jdupont")
		if !strings.Contains(out, "jean.dupont@univ.example") || strings.Contains(out, "jd@perso.example") {
			t.Errorf("list:\n%s", out)
		}
	})

	showTests := []struct{ name, ref string }{
		{"by id", jd}, {"by identifier", "jdupont"}, {"by identifier, upper case", "JDupont"},
		{"by primary address", "jean.dupont@univ.example"}, {"by other address, mixed case", "JD@Perso.Example"},
	}
	for _, tc := range showTests {
		t.Run("show/"+tc.name, func(t *testing.T) {
			out := c.ok("", "user", "show", tc.ref)
			for _, w := range []string{"id:", jd, "identifier:", "jdupont", "Jean Dupont", "UNIV-A", "provisioned", "regular",
				"password:", "none", "jean.dupont@univ.example (institutional, primary, verified)", "jd@perso.example (institutional, verified)", "live sessions:"} {
				if !strings.Contains(out, w) {
					t.Errorf("show lacks %q:\n%s", w, out)
				}
			}
		})
	}
	t.Run("show unknown", func(t *testing.T) {
		r := c.run("", "user", "show", "nobody@univ.example")
		if r.code != 1 || !strings.Contains(r.stderr, `no account with id, identifier or address "nobody@univ.example"`) {
			t.Fatalf("%v", r)
		}
	})
	t.Run("flags after the argument", func(t *testing.T) {
		out := c.ok("", "user", "show", "mdurand", "--config", "")
		if !strings.Contains(out, "active") {
			t.Errorf("show:\n%s", out)
		}
	})
}

func TestCLIUserDisableEnable(t *testing.T) {
	c := newCLI(t, "")
	c.ok(goodPassword+"\n", "user", "add", "--email", "jean.dupont@univ.example", "--id", "jdupont", "--password-stdin")
	c.ok("", "user", "add", "--email", "prov@univ.example", "--id", "prov")
	a := c.account("jdupont")
	c.session(a.ID)
	c.session(a.ID)
	other := c.account("prov")
	c.session(other.ID)
	if n := c.liveSessions(a.ID); n != 2 {
		t.Fatalf("%d live sessions before, want 2", n)
	}

	tests := []struct {
		name, args, ref string
		wantOut         string
		wantState       string
	}{
		{"disable by address", "disable", "jean.dupont@univ.example", "jdupont is now disabled", store.StateDisabled},
		{"enable with a password", "enable", "jdupont", "jdupont is now active", store.StateActive},
		{"disable provisioned", "disable", "prov", "prov is now disabled", store.StateDisabled},
		{"enable without a password stays to be activated", "enable", "prov", "prov is now provisioned", store.StateProvisioned},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := c.ok("", "user", tc.args, tc.ref)
			if !strings.Contains(out, tc.wantOut) {
				t.Errorf("stdout %q, want %q", out, tc.wantOut)
			}
			if got := c.account(tc.ref).State; got != tc.wantState {
				t.Errorf("state %s, want %s", got, tc.wantState)
			}
			if tc.name == "disable by address" {
				if n := c.liveSessions(a.ID); n != 0 {
					t.Errorf("%d sessions still live after disable", n)
				}
				if n := c.liveSessions(other.ID); n != 1 {
					t.Errorf("disabling jdupont ended another account's session (%d live)", n)
				}
				if show := c.ok("", "user", "show", "jdupont"); !strings.Contains(show, "disabled") {
					t.Errorf("show:\n%s", show)
				}
			}
		})
	}
	if !c.passwordWorks("jdupont", goodPassword) {
		t.Error("disable/enable lost the password")
	}
	if r := c.run("", "user", "disable", "ghost"); r.code != 1 || !strings.Contains(r.stderr, "no account") {
		t.Errorf("disable unknown: %v", r)
	}
}

func TestCLISetPassword(t *testing.T) {
	c := newCLI(t, "")
	c.ok(goodPassword+"\n", "user", "add", "--email", "jean.dupont@univ.example", "--id", "jdupont", "--name", "Jean Dupont", "--password-stdin")
	c.ok("", "user", "add", "--email", "prov@univ.example", "--id", "prov")
	a := c.account("jdupont")
	const second, third = "Tz9@mK4!pLq2", "Hq3#vN8]wRx5"
	tests := []struct {
		name         string
		args         []string
		stdin        string
		wantCode     int
		wantErr      string
		wantPassword string // the password that works afterwards
		wantSessions int    // of the 2 live sessions before
	}{
		{"ends sessions by default", nil, second + "\n", 0, "", second, 0},
		{"keep sessions", []string{"--keep-sessions"}, third + "\n", 0, "", third, 2},
		{"weak password refused", nil, "password\n", 1, "password refused:", third, 2},
		{"built from the name", nil, "Dupont!2024x\n", 1, "built from the account's names", third, 2},
		{"without --password-stdin", nil, second + "\n", 2, "--password-stdin", third, 2},
		{"empty input", []string{"--password-stdin"}, "\n", 1, "no password on standard input", third, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.store().RevokeOtherSessions(context.Background(), a.ID, "", c.clock.Now())
			c.session(a.ID)
			c.session(a.ID)
			args := append([]string{"user", "set-password", "jdupont"}, tc.args...)
			if tc.name != "without --password-stdin" && tc.name != "empty input" {
				args = append(args, "--password-stdin")
			}
			r := c.run(tc.stdin, args...)
			if r.code != tc.wantCode {
				t.Fatalf("want exit %d: %v", tc.wantCode, r)
			}
			if tc.wantCode == 0 && !strings.Contains(r.stdout, "password of jdupont changed") {
				t.Errorf("stdout %q", r.stdout)
			}
			if tc.wantCode != 0 && !strings.Contains(r.stderr, tc.wantErr) {
				t.Errorf("stderr lacks %q: %v", tc.wantErr, r)
			}
			if !c.passwordWorks("jdupont", tc.wantPassword) {
				t.Errorf("%q does not work afterwards", tc.wantPassword)
			}
			for _, old := range []string{goodPassword, second, third} {
				if old != tc.wantPassword && c.passwordWorks("jdupont", old) {
					t.Errorf("%q still works", old)
				}
			}
			if n := c.liveSessions(a.ID); n != tc.wantSessions {
				t.Errorf("%d live sessions, want %d", n, tc.wantSessions)
			}
		})
	}
	t.Run("activates a provisioned account", func(t *testing.T) {
		c.ok(second+"\n", "user", "set-password", "prov", "--password-stdin")
		if st := c.account("prov").State; st != store.StateActive {
			t.Errorf("state %s", st)
		}
	})
}

func TestCLIAudit(t *testing.T) {
	c := newCLI(t, "")
	c.ok(goodPassword+"\n", "user", "add", "--email", "jean.dupont@univ.example", "--id", "jdupont", "--password-stdin")
	c.ok("", "user", "add", "--email", "marie@univ.example", "--id", "marie")
	c.ok("Tz9@mK4!pLq2\n", "user", "set-password", "jdupont", "--password-stdin")
	c.clock.Advance(2 * time.Hour)
	c.ok("", "user", "disable", "jdupont")
	jd := c.account("jdupont").ID

	types := func(out string) []string {
		var ts []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			f := strings.Fields(l)
			ts = append(ts, f[2]) // date, time, type
		}
		return ts
	}
	tests := []struct {
		name string
		args []string
		want string // types, newest first
	}{
		{"all", nil, "account.disabled password.change account.create account.create"},
		{"type prefix", []string{"--type", "account."}, "account.disabled account.create account.create"},
		{"exact type", []string{"--type", "password.change"}, "password.change"},
		{"exact type is not a prefix", []string{"--type", "account"}, ""},
		{"by account", []string{"--account", "marie@univ.example"}, "account.create"},
		{"since", []string{"--since", "1h"}, "account.disabled"},
		{"limit", []string{"--limit", "2"}, "account.disabled password.change"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := c.ok("", append([]string{"audit"}, tc.args...)...)
			if !strings.HasPrefix(out, "TIME") {
				t.Errorf("no header:\n%s", out)
			}
			if got := strings.Join(types(out), " "); got != tc.want {
				t.Errorf("types %q, want %q\n%s", got, tc.want, out)
			}
		})
	}
	t.Run("table shows actor and details", func(t *testing.T) {
		out := c.ok("", "audit", "--type", "password.change")
		for _, w := range []string{jd, " cli ", "sessions_ended=0"} {
			if !strings.Contains(out, w) {
				t.Errorf("lacks %q:\n%s", w, out)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		out := c.ok("", "audit", "--json", "--account", "jdupont")
		var got []string
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var ev store.AuditEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			if ev.AccountID != jd || ev.Actor != "cli" || ev.At.IsZero() {
				t.Errorf("event %+v", ev)
			}
			got = append(got, ev.Type)
		}
		if strings.Join(got, " ") != "account.disabled password.change account.create" {
			t.Errorf("json types %v", got)
		}
		if strings.Contains(out, "Tz9@mK4") || strings.Contains(out, goodPassword) || strings.Contains(out, "argon2") {
			t.Errorf("audit shows a secret:\n%s", out)
		}
	})
}

func TestCLIMigrate(t *testing.T) {
	migs, err := store.Migrations(store.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("database at schema version %d (SQLite ", migs[len(migs)-1].Version)
	c := newCLI(t, "")
	for i := range 2 { // the second run has nothing to do and says the same
		out := c.ok("", "migrate")
		if !strings.HasPrefix(out, want) {
			t.Fatalf("run %d: %q, want prefix %q", i+1, out, want)
		}
	}
	// Without CAMPUSID_DATABASE_URL the database lives under data_dir.
	c2 := newCLI(t, "")
	c2.environ = []string{"CAMPUSID_DATA_DIR=" + c2.dir}
	c2.ok("", "migrate")
	if _, err := os.Stat(filepath.Join(c2.dir, "campusid.db")); err != nil {
		t.Errorf("migrate did not create the database under data_dir: %v", err)
	}
}

func TestCLIConfig(t *testing.T) {
	write := func(t *testing.T, body string) string {
		p := filepath.Join(t.TempDir(), "campusid.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name     string
		file     string // YAML; "" = no --config
		env      []string
		wantCode int
		want     []string // in stdout (exit 0) or stderr
	}{
		{name: "defaults", wantCode: 0, want: []string{"configuration OK", "localhost:8080", "http://localhost:8080", "SQLite", "dev"}},
		{name: "good file", file: "listen: 127.0.0.1:9999\npublic_url: https://id.univ.example\nmail:\n  smtp:\n    host: mx.univ.example\n",
			wantCode: 0, want: []string{"configuration OK", "127.0.0.1:9999", "https://id.univ.example", "smtp"}},
		{name: "environment only", env: []string{"CAMPUSID_DATABASE_URL=postgres://u@db/campusid"}, wantCode: 0, want: []string{"PostgreSQL"}},
		{name: "every problem at once", file: `
listen: localhost:8080
listn: localhost:8081
session:
  idle_timeout: eight hours
log:
  level: chatty
password:
  preset: strong
`, env: []string{"CAMPUSID_DATABASE_MAX_OPEN_CONNS=many"},
			wantCode: 1, want: []string{"invalid configuration", "listn", "eight hours", "log.level", "chatty", "password.preset", "CAMPUSID_DATABASE_MAX_OPEN_CONNS"}},
		{name: "environment problems with validation ones", env: []string{"CAMPUSID_SESSION_REMEMBER_FOR=forever", "CAMPUSID_LOG_FORMAT=xml", "CAMPUSID_DEFAULT_LANGUAGE=de"},
			wantCode: 1, want: []string{"CAMPUSID_SESSION_REMEMBER_FOR", "forever", "log.format", "default_language"}},
		{name: "missing file", file: "-", wantCode: 1, want: []string{"no such file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCLI(t, "")
			c.environ = []string{"CAMPUSID_DATA_DIR=" + c.dir}
			args := []string{"config", "check"}
			switch tc.file {
			case "":
			case "-":
				args = append(args, "--config", filepath.Join(c.dir, "absent.yaml"))
			default:
				args = append(args, "--config", write(t, tc.file))
			}
			r := c.runEnv("", tc.env, args...)
			if r.code != tc.wantCode {
				t.Fatalf("want exit %d: %v", tc.wantCode, r)
			}
			got := r.stdout
			if tc.wantCode != 0 {
				got = r.stderr
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q: %v", w, r)
				}
			}
		})
	}
	t.Run("CAMPUSID_CONFIG names the file", func(t *testing.T) {
		c := newCLI(t, "")
		r := c.runEnv("", []string{"CAMPUSID_CONFIG=" + write(t, "log:\n  level: chatty\n")}, "config", "check")
		if r.code != 1 || !strings.Contains(r.stderr, "log.level") {
			t.Fatalf("%v", r)
		}
	})
	t.Run("keys", func(t *testing.T) {
		out := newCLI(t, "").ok("", "config", "keys")
		rows := strings.Split(strings.TrimSpace(out), "\n")
		if rows[0] != "| key | environment variable | default | meaning |" || rows[1] != "| --- | --- | --- | --- |" {
			t.Fatalf("not a markdown table:\n%s", out)
		}
		for _, w := range []string{"| `database.url` | `CAMPUSID_DATABASE_URL` |", "| `listen` | `CAMPUSID_LISTEN` | `localhost:8080` |",
			"| `public_url` | `CAMPUSID_PUBLIC_URL` |", "| `data_dir` | `CAMPUSID_DATA_DIR` | `./campusid-data` |"} {
			if !strings.Contains(out, w) {
				t.Errorf("keys lacks %q", w)
			}
		}
		for _, r := range rows[2:] {
			if strings.Count(r, " | ") != 3 || !strings.HasPrefix(r, "| `") || !strings.HasSuffix(r, " |") {
				t.Errorf("malformed row %q", r)
			}
		}
	})
}

// TestCLIOnPostgres runs the account commands against PostgreSQL.
func TestCLIOnPostgres(t *testing.T) {
	c := newCLI(t, storetest.URL(t, store.Postgres))
	migs, err := store.Migrations(store.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if out := c.ok("", "migrate"); !strings.Contains(out, fmt.Sprintf("schema version %d (PostgreSQL)", migs[len(migs)-1].Version)) {
		t.Errorf("migrate: %q", out)
	}
	id := strings.TrimSpace(c.ok(goodPassword+"\n", "user", "add", "--email", "jean.dupont@univ.example", "--id", "jdupont", "--name", "Jean Dupont", "--password-stdin"))
	if r := c.run("", "user", "add", "--email", "JEAN.DUPONT@univ.example"); r.code != 1 || !strings.Contains(r.stderr, "already belongs") {
		t.Errorf("duplicate: %v", r)
	}
	if out := c.ok("", "user", "list", "--search", "dupont", "--state", "active"); !strings.Contains(out, id) {
		t.Errorf("list:\n%s", out)
	}
	if out := c.ok("", "user", "show", "Jean.Dupont@univ.example"); !strings.Contains(out, "active") {
		t.Errorf("show:\n%s", out)
	}
	c.session(id)
	c.ok("Tz9@mK4!pLq2\n", "user", "set-password", "jdupont", "--password-stdin")
	if !c.passwordWorks("jdupont", "Tz9@mK4!pLq2") || c.liveSessions(id) != 0 {
		t.Error("set-password on PostgreSQL")
	}
	c.ok("", "user", "disable", id)
	if c.account(id).State != store.StateDisabled {
		t.Error("disable on PostgreSQL")
	}
	// The identifier derived from an address that is taken gets a number,
	// on PostgreSQL too (where a failed statement spoils the transaction).
	c.ok("", "user", "add", "--email", "jean.dupont@other.example")
	c.ok("", "user", "add", "--email", "jean.dupont@third.example")
	if out := c.ok("", "user", "list", "--search", "jean.dupont"); !strings.Contains(out, " jean.dupont2 ") || !strings.Contains(out, " jean.dupont ") {
		t.Errorf("derived identifiers:\n%s", out)
	}
	out := c.ok("", "audit", "--type", "account.", "--json")
	if n := strings.Count(out, "\n"); n != 4 || !strings.Contains(out, `"account.disabled"`) || !strings.Contains(out, `"account.create"`) {
		t.Errorf("audit:\n%s", out)
	}
}
