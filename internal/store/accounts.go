package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Account states and kinds.
const (
	StateProvisioned = "provisioned"
	StateActive      = "active"
	StateDisabled    = "disabled"

	KindRegular   = "regular"
	KindTemporary = "temporary"

	EmailInstitutional = "institutional"
	EmailPersonal      = "personal"
)

// Account is a person.
type Account struct {
	ID                string
	Identifier        string // unique, lower-case, no "@"
	DisplayName       string
	GivenName         string
	FamilyName        string
	Establishment     string
	State             string
	Kind              string
	ExpiresAt         *time.Time // end of a temporary account
	PasswordHash      string
	PasswordChangedAt *time.Time
	Locale            string
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Email is one address of an account.
type Email struct {
	ID         string
	AccountID  string
	Address    string // lower-case
	Kind       string
	Primary    bool
	VerifiedAt *time.Time
	CreatedAt  time.Time
}

const accountCols = `id, identifier, display_name, given_name, family_name, establishment, state, kind,
	expires_at, password_hash, password_changed_at, locale, created_at, updated_at`

// accountRow holds the columns of accountCols while they are scanned.
type accountRow struct {
	a                Account
	exp, pwd         sql.NullInt64
	created, updated int64
}

func (r *accountRow) dests() []any {
	return []any{&r.a.ID, &r.a.Identifier, &r.a.DisplayName, &r.a.GivenName, &r.a.FamilyName, &r.a.Establishment,
		&r.a.State, &r.a.Kind, &r.exp, &r.a.PasswordHash, &r.pwd, &r.a.Locale, &r.created, &r.updated}
}

func (r *accountRow) account() Account {
	a := r.a
	a.ExpiresAt, a.PasswordChangedAt = fromNull(r.exp), fromNull(r.pwd)
	a.CreatedAt, a.UpdatedAt = fromMS(r.created), fromMS(r.updated)
	return a
}

func scanAccount(row interface{ Scan(...any) error }) (Account, error) {
	var r accountRow
	if err := row.Scan(r.dests()...); err != nil {
		return r.a, err
	}
	return r.account(), nil
}

// CreateAccount inserts the account and its addresses. Call it inside InTx
// when the addresses must land with it (they always should).
func (db *DB) CreateAccount(ctx context.Context, a *Account, emails []Email) error {
	return db.InTx(ctx, func(tx *DB) error {
		if a.ID == "" {
			a.ID = NewID()
		}
		a.Identifier = strings.ToLower(a.Identifier)
		_, err := tx.exec(ctx, `INSERT INTO accounts (`+accountCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			a.ID, a.Identifier, a.DisplayName, a.GivenName, a.FamilyName, a.Establishment, a.State, a.Kind,
			msPtr(a.ExpiresAt), a.PasswordHash, msPtr(a.PasswordChangedAt), a.Locale, ms(a.CreatedAt), ms(a.UpdatedAt))
		if err != nil {
			return fmt.Errorf("store: create account: %w", err)
		}
		for i := range emails {
			emails[i].AccountID = a.ID
			if emails[i].CreatedAt.IsZero() {
				emails[i].CreatedAt = a.CreatedAt
			}
			if err := tx.AddEmail(ctx, &emails[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// AccountByID returns the account or ErrNotFound.
func (db *DB) AccountByID(ctx context.Context, id string) (Account, error) {
	a, err := scanAccount(db.queryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = ?`, id))
	return a, db.mapErr(err)
}

// AccountByLogin finds an account by any of its verified addresses or by
// its identifier, case-insensitively. An unverified address is only a claim:
// it opens nothing.
func (db *DB) AccountByLogin(ctx context.Context, login string) (Account, error) {
	login = strings.ToLower(strings.TrimSpace(login))
	var row *sql.Row
	if strings.Contains(login, "@") {
		row = db.queryRow(ctx, `SELECT `+prefixed("a.", accountCols)+` FROM accounts a JOIN emails e ON e.account_id = a.id WHERE e.address = ? AND e.verified_at IS NOT NULL`, login)
	} else {
		row = db.queryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE identifier = ?`, login)
	}
	a, err := scanAccount(row)
	return a, db.mapErr(err)
}

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// AccountFilter narrows ListAccounts.
type AccountFilter struct {
	Search string // part of the identifier, a name or an address
	State  string
	Limit  int
	Offset int
}

// ListAccounts returns accounts ordered by identifier.
func (db *DB) ListAccounts(ctx context.Context, f AccountFilter) ([]Account, error) {
	q := `SELECT ` + accountCols + ` FROM accounts WHERE 1=1`
	var args []any
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, f.State)
	}
	if s := strings.ToLower(strings.TrimSpace(f.Search)); s != "" {
		like := "%" + strings.NewReplacer("%", "", "_", "").Replace(s) + "%"
		q += ` AND (identifier LIKE ? OR LOWER(display_name) LIKE ? OR id IN (SELECT account_id FROM emails WHERE address LIKE ?))`
		args = append(args, like, like, like)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q += ` ORDER BY identifier LIMIT ? OFFSET ?`
	args = append(args, f.Limit, f.Offset)
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list accounts: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// SetAccountState changes the state.
func (db *DB) SetAccountState(ctx context.Context, id, state string, now time.Time) error {
	return db.execOne(ctx, `UPDATE accounts SET state = ?, updated_at = ? WHERE id = ?`, state, ms(now), id)
}

// SetPassword stores a new password hash.
func (db *DB) SetPassword(ctx context.Context, id, hash string, now time.Time) error {
	return db.execOne(ctx, `UPDATE accounts SET password_hash = ?, password_changed_at = ?, updated_at = ? WHERE id = ?`,
		hash, ms(now), ms(now), id)
}

// RehashPassword replaces the hash only if it is still the one that was verified.
func (db *DB) RehashPassword(ctx context.Context, id, oldHash, newHash string) error {
	_, err := db.exec(ctx, `UPDATE accounts SET password_hash = ? WHERE id = ? AND password_hash = ?`, newHash, id, oldHash)
	return err
}

const emailCols = `id, account_id, address, kind, is_primary, verified_at, created_at`

func scanEmail(row interface{ Scan(...any) error }) (Email, error) {
	var (
		e        Email
		primary  int
		verified sql.NullInt64
		created  int64
	)
	err := row.Scan(&e.ID, &e.AccountID, &e.Address, &e.Kind, &primary, &verified, &created)
	e.Primary, e.VerifiedAt, e.CreatedAt = primary == 1, fromNull(verified), fromMS(created)
	return e, err
}

// AddEmail inserts an address (lower-cased). ErrConflict if any account has it.
func (db *DB) AddEmail(ctx context.Context, e *Email) error {
	if e.ID == "" {
		e.ID = NewID()
	}
	e.Address = strings.ToLower(strings.TrimSpace(e.Address))
	if e.Kind == "" {
		e.Kind = EmailInstitutional
	}
	_, err := db.exec(ctx, `INSERT INTO emails (`+emailCols+`) VALUES (?,?,?,?,?,?,?)`,
		e.ID, e.AccountID, e.Address, e.Kind, boolInt(e.Primary), msPtr(e.VerifiedAt), ms(e.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: add email: %w", err)
	}
	return nil
}

// EmailsOf lists an account's addresses, primary first.
func (db *DB) EmailsOf(ctx context.Context, accountID string) ([]Email, error) {
	rows, err := db.query(ctx, `SELECT `+emailCols+` FROM emails WHERE account_id = ? ORDER BY is_primary DESC, created_at, address`, accountID)
	if err != nil {
		return nil, fmt.Errorf("store: emails: %w", err)
	}
	defer rows.Close()
	var out []Email
	for rows.Next() {
		e, err := scanEmail(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// EmailByID returns one address of the account.
func (db *DB) EmailByID(ctx context.Context, accountID, id string) (Email, error) {
	e, err := scanEmail(db.queryRow(ctx, `SELECT `+emailCols+` FROM emails WHERE id = ? AND account_id = ?`, id, accountID))
	return e, db.mapErr(err)
}

// DeleteEmail removes an address of the account.
func (db *DB) DeleteEmail(ctx context.Context, accountID, id string) error {
	return db.execOne(ctx, `DELETE FROM emails WHERE id = ? AND account_id = ?`, id, accountID)
}

// SetPrimaryEmail makes id the account's only primary address.
func (db *DB) SetPrimaryEmail(ctx context.Context, accountID, id string) error {
	return db.InTx(ctx, func(tx *DB) error {
		if _, err := tx.exec(ctx, `UPDATE emails SET is_primary = 0 WHERE account_id = ?`, accountID); err != nil {
			return err
		}
		return tx.execOne(ctx, `UPDATE emails SET is_primary = 1 WHERE id = ? AND account_id = ?`, id, accountID)
	})
}

// MarkEmailVerified records the verification time (kept if already verified).
func (db *DB) MarkEmailVerified(ctx context.Context, id string, now time.Time) error {
	return db.execOne(ctx, `UPDATE emails SET verified_at = COALESCE(verified_at, ?) WHERE id = ?`, ms(now), id)
}
