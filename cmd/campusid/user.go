package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"campusid/internal/account"
	"campusid/internal/audit"
	"campusid/internal/config"
	"campusid/internal/onetime"
	"campusid/internal/portal"
	"campusid/internal/store"
	"campusid/internal/web"
)

const userAbout = `Manage accounts.

  user add --email ADDR [--email ADDR2...] [--personal-email ADDR...] [--id IDENT] [--name NAME] [--given-name G] [--family-name F]
           [--establishment ID] [--temporary-until YYYY-MM-DD] [--password-stdin]
      Create an account and print its id. Without --password-stdin it is 'provisioned' and
      must be activated; with it, it is active at once. The addresses count as verified.
  user list [--search TEXT] [--state provisioned|active|disabled] [--limit N]
  user show ID|IDENTIFIER|EMAIL
  user disable ID|IDENTIFIER|EMAIL     (also ends its sessions)
  user enable ID|IDENTIFIER|EMAIL
  user set-password ID|IDENTIFIER|EMAIL --password-stdin [--keep-sessions]
      Read the new password from the first line of standard input; it must meet the policy.
  user send-reset ID|IDENTIFIER|EMAIL [--code]
      Send a password reset link (valid self_service.reset_link_validity) to the account's
      primary verified address; temporary accounts included, which have no self-service
      reset. With --code, send a code instead and print the page where the person types it
      (give them that address by another channel). Prints where the message went.`

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runUser(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "user", "user <add|list|show|disable|enable|set-password|send-reset> [flags]", userAbout)
	path := fs.String("config", "", "configuration file (YAML)")
	var emails stringList
	fs.Var(&emails, "email", "institutional email address (add; repeat for several)")
	var personal stringList
	fs.Var(&personal, "personal-email", "personal email address (add; repeat for several)")
	ident := fs.String("id", "", "identifier, e.g. jdupont (add; default: from the first address)")
	name := fs.String("name", "", "display name (add)")
	given := fs.String("given-name", "", "given name (add)")
	family := fs.String("family-name", "", "family name (add)")
	estab := fs.String("establishment", "", "establishment (add)")
	until := fs.String("temporary-until", "", "end date YYYY-MM-DD of a temporary account (add)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input (add, set-password)")
	keep := fs.Bool("keep-sessions", false, "do not end the account's sessions (set-password)")
	code := fs.Bool("code", false, "send a code and print the page to type it in, instead of a link (send-reset)")
	search := fs.String("search", "", "part of an identifier, name or address (list)")
	state := fs.String("state", "", "only accounts in this state (list)")
	limit := fs.Int("limit", 100, "how many accounts at most (list)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError{"missing subcommand: add, list, show, disable, enable, set-password or send-reset"}
	}
	sub, rest := pos[0], pos[1:]
	cfg, err := loadConfig(e, *path)
	if err != nil {
		return err
	}
	log := newLogger(io.Discard, cfg)
	db, err := openStore(ctx, cfg, log, e.now)
	if err != nil {
		return err
	}
	defer db.Close()
	accounts, al, err := newAccounts(cfg, db, log, e.now)
	if err != nil {
		return err
	}
	ctx = web.WithInfo(ctx, &web.RequestInfo{RequestID: "cli", UserAgent: "campusid-cli", Lang: cfg.DefaultLanguage})
	one := func() (store.Account, error) {
		if len(rest) != 1 {
			return store.Account{}, usageError{"want exactly one account: its id, identifier or an address"}
		}
		return findAccount(ctx, db, rest[0])
	}
	switch sub {
	case "add":
		if len(rest) > 0 {
			return usageError{fmt.Sprintf("unexpected argument %q", rest[0])}
		}
		n := account.NewAccount{Identifier: *ident, Emails: emails, PersonalEmails: personal, DisplayName: *name, GivenName: *given,
			FamilyName: *family, Establishment: *estab, Actor: "cli"}
		if *until != "" {
			t, err := time.ParseInLocation("2006-01-02", *until, time.Local)
			if err != nil {
				return usageError{fmt.Sprintf("--temporary-until %q: want a date like 2027-06-30", *until)}
			}
			t = t.AddDate(0, 0, 1) // the account works through the whole last day
			n.TemporaryUntil = &t
		}
		if *pwStdin {
			if n.Password, err = readPassword(e.stdin); err != nil {
				return err
			}
		}
		a, err := accounts.Create(ctx, n)
		if err != nil {
			return explain(err)
		}
		fmt.Fprintln(e.stdout, a.ID)
		return nil
	case "list":
		list, err := db.ListAccounts(ctx, store.AccountFilter{Search: *search, State: *state, Limit: *limit})
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tIDENTIFIER\tNAME\tSTATE\tKIND\tPRIMARY EMAIL")
		for _, a := range list {
			primary := ""
			if em, err := db.EmailsOf(ctx, a.ID); err == nil && len(em) > 0 {
				primary = em[0].Address
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Identifier, a.DisplayName, a.State, a.Kind, primary)
		}
		return tw.Flush()
	case "show":
		a, err := one()
		if err != nil {
			return err
		}
		return showAccount(ctx, e.stdout, db, a, e.now())
	case "disable", "enable":
		a, err := one()
		if err != nil {
			return err
		}
		st := store.StateDisabled
		if sub == "enable" {
			st = store.StateActive
			if a.PasswordHash == "" {
				st = store.StateProvisioned // nothing to sign in with yet: it still needs activating
			}
		}
		if err := accounts.SetState(ctx, a.ID, st, "cli"); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s is now %s\n", a.Identifier, st)
		return nil
	case "set-password":
		a, err := one()
		if err != nil {
			return err
		}
		if !*pwStdin {
			return usageError{"set-password reads the password from standard input: add --password-stdin"}
		}
		pw, err := readPassword(e.stdin)
		if err != nil {
			return err
		}
		if err := accounts.SetPassword(ctx, a.ID, pw, "cli", "", !*keep); err != nil {
			return explain(err)
		}
		fmt.Fprintf(e.stdout, "password of %s changed\n", a.Identifier)
		return nil
	case "send-reset":
		a, err := one()
		if err != nil {
			return err
		}
		return sendReset(ctx, e.stdout, cfg, db, accounts, al, a, *code, e.now)
	}
	return usageError{fmt.Sprintf("unknown subcommand %q", sub)}
}

// sendReset sends an administrator's reset link or code (see portal.SendAdminReset).
func sendReset(ctx context.Context, w io.Writer, cfg config.Config, db *store.DB, accounts *account.Service, al *audit.Log,
	a store.Account, code bool, now func() time.Time) error {
	ss := cfg.SelfService
	tokens := newTokens(cfg, db, accounts.Notify.Mailer, now)
	sent, err := portal.SendAdminReset(ctx, tokens, al, a, code, "cli")
	var soon onetime.ErrTooSoon
	if errors.As(err, &soon) {
		return fmt.Errorf("a reset message left for %s less than %s ago; try again in %s", a.Identifier, ss.ResendInterval.D(), soon.Wait.Round(time.Second))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", a.Identifier, err)
	}
	if code {
		fmt.Fprintf(w, "reset code for %s sent to %s (valid %s)\nthe person types it at: %s\n", a.Identifier, sent.To, shortDuration(sent.Validity), sent.CodeURL)
		return nil
	}
	fmt.Fprintf(w, "reset link for %s sent to %s (valid %s)\n", a.Identifier, sent.To, shortDuration(sent.Validity))
	return nil
}

// shortDuration says 1h or 3m rather than 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func findAccount(ctx context.Context, db *store.DB, ref string) (store.Account, error) {
	a, err := db.AccountByID(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		a, err = db.AccountByLogin(ctx, ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return a, fmt.Errorf("no account with id, identifier or address %q (see 'campusid user list --search')", ref)
	}
	return a, err
}

func readPassword(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", errors.New("no password on standard input (e.g. printf '%s\\n' \"$PASSWORD\" | campusid user ...)")
	}
	return pw, nil
}

// ruleText says each password rule in plain English for the CLI.
var ruleText = map[string]string{
	"length": "wrong length", "upper": "needs an upper-case letter A-Z", "lower": "needs a lower-case letter a-z",
	"digit": "needs a digit 0-9", "special": "needs a special character among " + account.SeedSpecials,
	"allowed": "has a space or a character that is not allowed", "match": "confirmation differs",
	"common": "too common or easy to guess", "personal": "built from the account's names or addresses",
}

func explain(err error) error {
	var pe *account.PolicyError
	if errors.As(err, &pe) {
		var parts []string
		for _, v := range pe.Violations {
			parts = append(parts, ruleText[v.Code])
		}
		return fmt.Errorf("password refused: %s", strings.Join(parts, "; "))
	}
	var ie *account.InputError
	if errors.As(err, &ie) {
		return errors.New(ie.Text)
	}
	return err
}

func showAccount(ctx context.Context, w io.Writer, db *store.DB, a store.Account, now time.Time) error {
	emails, err := db.EmailsOf(ctx, a.ID)
	if err != nil {
		return err
	}
	sessions, err := db.ListSessions(ctx, a.ID, now)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id:\t%s\nidentifier:\t%s\nname:\t%s\n", a.ID, a.Identifier, a.DisplayName)
	if a.GivenName != "" || a.FamilyName != "" {
		fmt.Fprintf(tw, "given / family name:\t%s / %s\n", a.GivenName, a.FamilyName)
	}
	fmt.Fprintf(tw, "establishment:\t%s\nstate:\t%s\nkind:\t%s\n", a.Establishment, a.State, a.Kind)
	if a.ExpiresAt != nil {
		fmt.Fprintf(tw, "ends:\t%s\n", a.ExpiresAt.Local().Format(time.DateTime))
	}
	pw := "none"
	if a.PasswordChangedAt != nil {
		pw = "set " + a.PasswordChangedAt.Local().Format(time.DateTime)
	}
	fmt.Fprintf(tw, "password:\t%s\ncreated:\t%s\nlive sessions:\t%d\n", pw, a.CreatedAt.Local().Format(time.DateTime), len(sessions))
	for _, em := range emails {
		flags := []string{em.Kind}
		if em.Primary {
			flags = append(flags, "primary")
		}
		if em.VerifiedAt != nil {
			flags = append(flags, "verified")
		} else {
			flags = append(flags, "not verified")
		}
		fmt.Fprintf(tw, "email:\t%s (%s)\n", em.Address, strings.Join(flags, ", "))
	}
	return tw.Flush()
}
