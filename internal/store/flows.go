package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// LoginFlow is one sign-in in progress (see package login for the states).
// ID is the SHA-256 of the random reference the browser carries.
type LoginFlow struct {
	ID          string
	AccountID   string // "" while unknown, or when the identifier matched no account
	Identifier  string // what the person typed
	ReturnTo    string
	State       string
	Purpose     string // "login", "activate", "recover"
	Remember    bool
	BrowserHash string // SHA-256 of the cookie binding the flow to the browser that started it
	Data        string // JSON of the steps' own data, owned by the package running the flow
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

const flowCols = `id, account_id, identifier, return_to, state, purpose, remember, browser_hash, data, created_at, expires_at`

// CreateLoginFlow inserts a flow.
func (db *DB) CreateLoginFlow(ctx context.Context, f *LoginFlow) error {
	if f.Purpose == "" {
		f.Purpose = "login"
	}
	if f.Data == "" {
		f.Data = "{}"
	}
	_, err := db.exec(ctx, `INSERT INTO login_flows (`+flowCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		f.ID, nullString(f.AccountID), f.Identifier, f.ReturnTo, f.State, f.Purpose, boolInt(f.Remember), f.BrowserHash, f.Data,
		ms(f.CreatedAt), ms(f.ExpiresAt))
	if err != nil {
		return fmt.Errorf("store: create login flow: %w", err)
	}
	return nil
}

// LoginFlowByID returns the flow, expired or not.
func (db *DB) LoginFlowByID(ctx context.Context, id string) (LoginFlow, error) {
	var (
		f                LoginFlow
		acc              sql.NullString
		remember         int
		created, expires int64
	)
	err := db.queryRow(ctx, `SELECT `+flowCols+` FROM login_flows WHERE id = ?`, id).
		Scan(&f.ID, &acc, &f.Identifier, &f.ReturnTo, &f.State, &f.Purpose, &remember, &f.BrowserHash, &f.Data, &created, &expires)
	f.AccountID, f.Remember, f.CreatedAt, f.ExpiresAt = acc.String, remember == 1, fromMS(created), fromMS(expires)
	return f, db.mapErr(err)
}

// UpdateLoginFlow moves the flow from state from to f.State and saves its
// data and remember choice; ErrNotFound when it is no longer in state from.
func (db *DB) UpdateLoginFlow(ctx context.Context, f LoginFlow, from string) error {
	return db.execOne(ctx, `UPDATE login_flows SET state = ?, data = ?, remember = ? WHERE id = ? AND state = ?`,
		f.State, f.Data, boolInt(f.Remember), f.ID, from)
}

// AdvanceLoginFlow moves the flow from state from to state to; ErrNotFound
// when it is no longer in state from (another request moved it first).
func (db *DB) AdvanceLoginFlow(ctx context.Context, id, from, to string) error {
	return db.execOne(ctx, `UPDATE login_flows SET state = ? WHERE id = ? AND state = ?`, to, id, from)
}

// DeleteExpiredLoginFlows removes flows that ended before cutoff.
func (db *DB) DeleteExpiredLoginFlows(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := db.exec(ctx, `DELETE FROM login_flows WHERE expires_at < ?`, ms(cutoff))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
