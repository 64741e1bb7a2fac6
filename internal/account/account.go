// Package account manages people: creation, addresses, passwords (hashing,
// policy, strength) and state.
package account

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"campusid/internal/audit"
	"campusid/internal/i18n"
	"campusid/internal/notify"
	"campusid/internal/store"
	"campusid/internal/web"
)

// Service is the account domain over the store.
type Service struct {
	DB     *store.DB
	Hasher *Hasher
	Policy Policy
	Audit  *audit.Log
	Now    func() time.Time
	// Notify, when set, tells the owner about password changes.
	Notify *notify.Notifier
}

// InputError is bad input from a person or an operator, with a message key
// for pages and a plain English text for the CLI and the API.
type InputError struct {
	Field string
	Key   string // message key, e.g. "account.email_invalid"
	Text  string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Text }

// PolicyError lists the password rules a password breaks.
type PolicyError struct{ Violations []Violation }

func (e *PolicyError) Error() string {
	codes := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		codes[i] = v.Code
	}
	return "password does not meet the policy: " + strings.Join(codes, ", ")
}

// NewAccount is what creating an account takes.
type NewAccount struct {
	Identifier     string   // "" = derived from the first address
	Emails         []string // institutional addresses
	PersonalEmails []string
	DisplayName    string
	GivenName      string
	FamilyName     string
	Establishment  string
	TemporaryUntil *time.Time
	Password       string // "" = provisioned, to be activated
	Actor          string
}

var identRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// NormalizeEmail lower-cases and checks an address; it returns an InputError.
func NormalizeEmail(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || !strings.Contains(s[strings.LastIndex(s, "@")+1:], ".") {
		return "", &InputError{Field: "email", Key: "account.email_invalid", Text: fmt.Sprintf("%q is not an email address", s)}
	}
	return s, nil
}

// Create makes an account with its addresses (verified: they were given by
// an authority), active when a password is given, provisioned otherwise.
func (s *Service) Create(ctx context.Context, n NewAccount) (store.Account, error) {
	now := s.Now()
	if len(n.Emails)+len(n.PersonalEmails) == 0 {
		return store.Account{}, &InputError{Field: "email", Key: "account.email_required", Text: "at least one email address is required"}
	}
	var emails []store.Email
	for i, e := range append(n.Emails, n.PersonalEmails...) {
		addr, err := NormalizeEmail(e)
		if err != nil {
			return store.Account{}, err
		}
		kind := store.EmailInstitutional
		if i >= len(n.Emails) {
			kind = store.EmailPersonal
		}
		emails = append(emails, store.Email{Address: addr, Primary: i == 0, VerifiedAt: &now, Kind: kind})
	}
	ident := strings.ToLower(strings.TrimSpace(n.Identifier))
	derived := ident == ""
	if derived {
		ident = deriveIdentifier(emails[0].Address)
	}
	if !identRe.MatchString(ident) {
		return store.Account{}, &InputError{Field: "id", Key: "account.identifier_invalid",
			Text: fmt.Sprintf("identifier %q: use 1 to 64 lower-case letters, digits, '.', '_' or '-'", ident)}
	}
	a := store.Account{
		Identifier: ident, DisplayName: strings.TrimSpace(n.DisplayName), GivenName: strings.TrimSpace(n.GivenName),
		FamilyName: strings.TrimSpace(n.FamilyName), Establishment: strings.TrimSpace(n.Establishment),
		State: store.StateProvisioned, Kind: store.KindRegular, CreatedAt: now, UpdatedAt: now,
	}
	if a.DisplayName == "" {
		a.DisplayName = strings.TrimSpace(a.GivenName + " " + a.FamilyName)
	}
	if a.DisplayName == "" {
		a.DisplayName = ident
	}
	if n.TemporaryUntil != nil {
		if !n.TemporaryUntil.After(now) {
			return store.Account{}, &InputError{Field: "temporary-until", Key: "account.end_past", Text: "the end date of a temporary account must be in the future"}
		}
		a.Kind, a.ExpiresAt = store.KindTemporary, n.TemporaryUntil
	}
	if n.Password != "" {
		hash, err := s.checkAndHash(ctx, a, emails, n.Password)
		if err != nil {
			return store.Account{}, err
		}
		a.PasswordHash, a.PasswordChangedAt, a.State = hash, &now, store.StateActive
	}
	// A derived identifier may be taken: try ident, ident2, ident3... each
	// in its own transaction (PostgreSQL aborts a transaction on error).
	var err error
	for i := 0; i < 100; i++ {
		if i > 0 {
			a.Identifier = fmt.Sprintf("%s%d", ident, i+1)
		}
		a.ID = ""
		err = s.DB.InTx(ctx, func(tx *store.DB) error {
			if err := tx.CreateAccount(ctx, &a, emails); err != nil {
				return err
			}
			return s.Audit.Record(ctx, tx, store.AuditEvent{Type: "account.create", AccountID: a.ID, Actor: n.Actor,
				Details: map[string]string{"identifier": a.Identifier, "state": a.State, "kind": a.Kind}})
		})
		if err == nil || !derived || !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "identifier") {
			break
		}
	}
	if err != nil {
		return store.Account{}, conflictError(err)
	}
	return a, err
}

func conflictError(err error) error {
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	if strings.Contains(err.Error(), "identifier") {
		return &InputError{Field: "id", Key: "account.identifier_taken", Text: "this identifier is already taken"}
	}
	return &InputError{Field: "email", Key: "account.email_taken", Text: "this email address already belongs to an account"}
}

// deriveIdentifier makes an identifier from an address's local part.
func deriveIdentifier(addr string) string {
	local := stripAccents(addr[:strings.LastIndex(addr, "@")])
	var b strings.Builder
	for _, r := range strings.ToLower(local) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		}
	}
	id := strings.Trim(b.String(), ".-_")
	if len(id) > 60 {
		id = id[:60]
	}
	if id == "" {
		id = "user"
	}
	return id
}

// Personal lists what a password must not be built from.
func Personal(a store.Account, emails []store.Email) []string {
	out := []string{a.Identifier, a.DisplayName, a.GivenName, a.FamilyName}
	for _, e := range emails {
		out = append(out, e.Address)
	}
	return out
}

func (s *Service) checkAndHash(ctx context.Context, a store.Account, emails []store.Email, password string) (string, error) {
	if v := s.Policy.Check(password, Personal(a, emails)); len(v) > 0 {
		return "", &PolicyError{Violations: v}
	}
	return s.Hasher.Hash(ctx, s.Policy.Normalize(password))
}

// SetPassword checks the policy, stores the new hash, and, when endSessions,
// ends the account's sessions but keepSession. When endSessions and no
// session is kept (an administrator's `user set-password`, a recovery), the
// connected devices and applications (OpenID Connect grants and access
// tokens) end too; a voluntary change chooses with ChangePassword.
func (s *Service) SetPassword(ctx context.Context, accountID, password, actor, keepSession string, endSessions bool) error {
	_, err := s.ChangePassword(ctx, PasswordChange{AccountID: accountID, Password: password, Actor: actor,
		KeepSession: keepSession, EndSessions: endSessions, EndDevices: endSessions && keepSession == ""})
	return err
}

// PasswordChange is what ChangePassword does.
type PasswordChange struct {
	AccountID, Password, Actor string
	KeepSession                string // the session that stays when EndSessions ("" for none)
	EndSessions                bool   // end the account's sessions (but KeepSession)
	EndDevices                 bool   // end every OpenID Connect grant and access token of the account
}

// ChangePassword checks the policy, stores the new hash, ends what c asks,
// audits and notifies the owner (the email lists the devices and
// applications signed out). It returns their names ("Application — device").
func (s *Service) ChangePassword(ctx context.Context, c PasswordChange) ([]string, error) {
	accountID, actor := c.AccountID, c.Actor
	a, err := s.DB.AccountByID(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("account: set password: %w", err)
	}
	emails, err := s.DB.EmailsOf(ctx, accountID)
	if err != nil {
		return nil, err
	}
	hash, err := s.checkAndHash(ctx, a, emails, c.Password)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	var names []string
	err = s.DB.InTx(ctx, func(tx *store.DB) error {
		names = nil
		if err := tx.SetPassword(ctx, accountID, hash, now); err != nil {
			return err
		}
		if a.State == store.StateProvisioned && actor == "cli" {
			if err := tx.SetAccountState(ctx, accountID, store.StateActive, now); err != nil {
				return err
			}
		}
		ended := int64(0)
		if c.EndSessions {
			if ended, err = tx.RevokeOtherSessions(ctx, accountID, c.KeepSession, now); err != nil {
				return err
			}
		}
		lang := web.Info(ctx).Lang
		grants := int64(0)
		if c.EndDevices {
			if names, grants, err = EndDevices(ctx, tx, accountID, "password_change", lang, now); err != nil {
				return err
			}
		}
		if err := s.Audit.Record(ctx, tx, store.AuditEvent{Type: "password.change", AccountID: accountID, Actor: actor,
			Details: map[string]string{"sessions_ended": fmt.Sprint(ended), "grants_ended": fmt.Sprint(grants)}}); err != nil {
			return err
		}
		if s.Notify == nil {
			return nil
		}
		// The email lists what was signed out, or says the devices stay connected.
		return s.Notify.Send(ctx, tx, a, notify.PasswordChanged, lang,
			map[string]any{"DevicesReported": true, "DevicesEnded": append([]string{}, names...)})
	})
	if err != nil {
		return nil, err
	}
	return names, nil
}

// GrantName names a connected device or application for people: the
// application's name, and the device (its recorded name, or what its user
// agent says), e.g. "Nextcloud Desktop — Windows".
// EndDevices revokes every connected device and application of the account
// (OpenID Connect grants and access tokens) through tx and returns their
// names, in lang, for the email that tells of it.
func EndDevices(ctx context.Context, tx *store.DB, accountID, reason, lang string, now time.Time) ([]string, int64, error) {
	live, err := tx.ListLiveOIDCGrants(ctx, accountID, now)
	if err != nil {
		return nil, 0, err
	}
	l := i18n.Localizer{Lang: lang}
	names := []string{}
	for _, g := range live {
		names = append(names, GrantName(l, g))
	}
	n, err := tx.RevokeAccountOIDC(ctx, accountID, reason, now)
	return names, n, err
}

func GrantName(l i18n.Localizer, g store.OIDCLiveGrant) string {
	dev := g.DeviceName
	if dev == "" && g.UserAgent != "" {
		dev = notify.Device(l, g.UserAgent)
	}
	switch {
	case dev == "" || dev == g.ClientName:
		return g.ClientName
	case strings.HasPrefix(dev, g.ClientName): // the device flow names it "App (device)"
		return dev
	}
	return g.ClientName + " — " + dev
}

// CheckPassword verifies password against the account's hash and rehashes
// it when the parameters changed. An account without a password never
// matches, but costs the same time. Errors are ErrBusy, ctx errors or a
// malformed stored hash.
func (s *Service) CheckPassword(ctx context.Context, a store.Account, password string) (bool, error) {
	password = s.Policy.Normalize(password)
	if a.PasswordHash == "" {
		return false, s.Hasher.DummyVerify(ctx, password)
	}
	ok, rehash, err := s.Hasher.Verify(ctx, a.PasswordHash, password)
	if err != nil || !ok {
		return false, err
	}
	if rehash {
		if h, err := s.Hasher.Hash(ctx, password); err == nil {
			s.DB.RehashPassword(ctx, a.ID, a.PasswordHash, h)
		}
	}
	return true, nil
}

// SetState enables or disables an account; disabling ends its sessions.
func (s *Service) SetState(ctx context.Context, accountID, state, actor string) error {
	now := s.Now()
	return s.DB.InTx(ctx, func(tx *store.DB) error {
		if err := tx.SetAccountState(ctx, accountID, state, now); err != nil {
			return err
		}
		if state == store.StateDisabled {
			if _, err := tx.RevokeOtherSessions(ctx, accountID, "", now); err != nil {
				return err
			}
		}
		return s.Audit.Record(ctx, tx, store.AuditEvent{Type: "account." + state, AccountID: accountID, Actor: actor})
	})
}

// SignInProblem says why an account may not sign in now ("" when it may).
func SignInProblem(a store.Account, now time.Time) string {
	switch {
	case a.State == store.StateDisabled:
		return "disabled"
	case a.Kind == store.KindTemporary && a.ExpiresAt != nil && !now.Before(*a.ExpiresAt):
		return "expired"
	case a.State == store.StateProvisioned:
		return "provisioned"
	}
	return ""
}
