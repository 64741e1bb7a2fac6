package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// CASService is one entry of the CAS service registry (migration 0005).
type CASService struct {
	ID         string
	Name       string
	URLPattern string
	Match      string // exact, prefix or regex
	Attributes []string
	AllowProxy bool
	LogoutURL  string
	Order      int    // lower first when several match (migration 0007)
	Source     string // ClientFromConfig or ClientFromCLI
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

const casServiceCols = `id, name, url_pattern, match_kind, attributes, allow_proxy, logout_url, source, created_at, updated_at, evaluation_order`

func scanCASService(row interface{ Scan(...any) error }) (CASService, error) {
	var (
		s                CASService
		attrs            string
		proxy            int
		created, updated int64
	)
	err := row.Scan(&s.ID, &s.Name, &s.URLPattern, &s.Match, &attrs, &proxy, &s.LogoutURL, &s.Source, &created, &updated, &s.Order)
	s.Attributes = strings.Fields(attrs)
	s.AllowProxy = proxy == 1
	s.CreatedAt, s.UpdatedAt = fromMS(created), fromMS(updated)
	return s, err
}

func (s CASService) args() []any {
	if s.Source == "" {
		s.Source = ClientFromCLI
	}
	return []any{s.ID, s.Name, s.URLPattern, s.Match, strings.Join(s.Attributes, " "), boolInt(s.AllowProxy), s.LogoutURL,
		s.Source, ms(s.CreatedAt), ms(s.UpdatedAt), s.Order}
}

// CreateCASService inserts a service; ErrConflict when the id is taken.
func (db *DB) CreateCASService(ctx context.Context, s CASService) error {
	_, err := db.exec(ctx, `INSERT INTO cas_services (`+casServiceCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)`, s.args()...)
	return err
}

// UpsertCASService inserts or replaces a service (the configuration file's).
func (db *DB) UpsertCASService(ctx context.Context, s CASService) error {
	_, err := db.exec(ctx, `INSERT INTO cas_services (`+casServiceCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, evaluation_order = excluded.evaluation_order, url_pattern = excluded.url_pattern, match_kind = excluded.match_kind,
		attributes = excluded.attributes, allow_proxy = excluded.allow_proxy, logout_url = excluded.logout_url,
		source = excluded.source, updated_at = excluded.updated_at`, s.args()...)
	if err != nil {
		return fmt.Errorf("store: upsert cas service: %w", err)
	}
	return nil
}

// CASServiceByID returns a service.
func (db *DB) CASServiceByID(ctx context.Context, id string) (CASService, error) {
	s, err := scanCASService(db.queryRow(ctx, `SELECT `+casServiceCols+` FROM cas_services WHERE id = ?`, id))
	return s, db.mapErr(err)
}

// ListCASServices returns every service by id.
func (db *DB) ListCASServices(ctx context.Context) ([]CASService, error) {
	rows, err := db.query(ctx, `SELECT `+casServiceCols+` FROM cas_services ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list cas services: %w", err)
	}
	defer rows.Close()
	var out []CASService
	for rows.Next() {
		s, err := scanCASService(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeleteCASService removes a service with its tickets.
func (db *DB) DeleteCASService(ctx context.Context, id string) error {
	return db.execOne(ctx, `DELETE FROM cas_services WHERE id = ?`, id)
}

// CASTicket is a service ticket.
type CASTicket struct {
	ID         string
	ServiceID  string
	ServiceURL string // normalised
	AccountID  string
	SessionID  string
	AuthTime   time.Time
	Renewed    bool // from a new login: issued right after the person signed in for it, not by single sign-on
	LongTerm   bool // the session is a remember-me one
	CreatedAt  time.Time
	ExpiresAt  time.Time
	Proxies    []string // a proxy ticket's chain of callback URLs, most recent first (migration 0006)
}

const casTicketCols = `id, service_id, service_url, account_id, session_id, auth_time, renewed, long_term, created_at, expires_at, used_at, proxies`

// CreateCASTicket inserts a ticket.
func (db *DB) CreateCASTicket(ctx context.Context, t CASTicket) error {
	_, err := db.exec(ctx, `INSERT INTO cas_tickets (`+casTicketCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		t.ID, t.ServiceID, t.ServiceURL, t.AccountID, t.SessionID, ms(t.AuthTime), boolInt(t.Renewed), boolInt(t.LongTerm),
		ms(t.CreatedAt), ms(t.ExpiresAt), nil, strings.Join(t.Proxies, " "))
	if err != nil {
		return fmt.Errorf("store: create cas ticket: %w", err)
	}
	return nil
}

// ConsumeCASTicket marks a ticket used and returns it, in one conditional
// UPDATE: of concurrent callers exactly one gets it; a used or unknown
// ticket is ErrNotFound. Expiry is the caller's to check (an expired
// ticket is consumed all the same).
func (db *DB) ConsumeCASTicket(ctx context.Context, id string, now time.Time) (CASTicket, error) {
	var (
		t                      CASTicket
		auth, created, expires int64
		renewed, longTerm      int
		used                   sql.NullInt64
		proxies                string
	)
	err := db.queryRow(ctx, `UPDATE cas_tickets SET used_at = ? WHERE id = ? AND used_at IS NULL RETURNING `+casTicketCols,
		ms(now), id).Scan(&t.ID, &t.ServiceID, &t.ServiceURL, &t.AccountID, &t.SessionID, &auth, &renewed, &longTerm,
		&created, &expires, &used, &proxies)
	if err != nil {
		return t, db.mapErr(err)
	}
	t.Proxies = strings.Fields(proxies)
	t.AuthTime, t.CreatedAt, t.ExpiresAt = fromMS(auth), fromMS(created), fromMS(expires)
	t.Renewed, t.LongTerm = renewed == 1, longTerm == 1
	return t, nil
}

// DeleteExpiredCASTickets removes tickets expired before cutoff whose
// session is gone: single logout names every ticket of an ended session, so
// a ticket is kept as long as its session row is (DeleteExpiredSessions
// removes it a while after it ended, once propagated). Proxy-granting
// tickets go with their session too.
func (db *DB) DeleteExpiredCASTickets(ctx context.Context, cutoff time.Time) error {
	_, err := db.exec(ctx, `DELETE FROM cas_tickets WHERE expires_at < ?
		AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = cas_tickets.session_id)`, ms(cutoff))
	if err != nil {
		return err
	}
	_, err = db.exec(ctx, `DELETE FROM cas_pgts WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = cas_pgts.session_id)`)
	return err
}

// CASPGT is a proxy-granting ticket (migration 0006); the ticket itself is
// known by its hash only.
type CASPGT struct {
	IDHash    string
	ServiceID string
	AccountID string
	SessionID string
	AuthTime  time.Time
	LongTerm  bool
	Proxies   []string // the callback URLs, most recent first
	CreatedAt time.Time
}

// CreateCASPGT inserts a proxy-granting ticket.
func (db *DB) CreateCASPGT(ctx context.Context, p CASPGT) error {
	_, err := db.exec(ctx, `INSERT INTO cas_pgts (id_hash, service_id, account_id, session_id, auth_time, long_term, proxies, created_at)
		VALUES (?,?,?,?,?,?,?,?)`, p.IDHash, p.ServiceID, p.AccountID, p.SessionID, ms(p.AuthTime), boolInt(p.LongTerm),
		strings.Join(p.Proxies, " "), ms(p.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: create cas pgt: %w", err)
	}
	return nil
}

// DeleteCASPGT removes a proxy-granting ticket (one whose callback failed).
func (db *DB) DeleteCASPGT(ctx context.Context, idHash string) error {
	return db.execOne(ctx, `DELETE FROM cas_pgts WHERE id_hash = ?`, idHash)
}

// CASPGTByHash returns a proxy-granting ticket. Whether it may still be
// used is its session's affair (AccountOfLiveSession).
func (db *DB) CASPGTByHash(ctx context.Context, idHash string) (CASPGT, error) {
	var (
		p             CASPGT
		auth, created int64
		longTerm      int
		proxies       string
	)
	err := db.queryRow(ctx, `SELECT id_hash, service_id, account_id, session_id, auth_time, long_term, proxies, created_at
		FROM cas_pgts WHERE id_hash = ?`, idHash).Scan(
		&p.IDHash, &p.ServiceID, &p.AccountID, &p.SessionID, &auth, &longTerm, &proxies, &created)
	if err != nil {
		return p, db.mapErr(err)
	}
	p.AuthTime, p.CreatedAt, p.LongTerm, p.Proxies = fromMS(auth), fromMS(created), longTerm == 1, strings.Fields(proxies)
	return p, nil
}

// CASLogoutTarget is a service ticket of a session whose service has a
// single logout URL.
type CASLogoutTarget struct {
	TicketID  string
	ServiceID string
	LogoutURL string
}

// CASLogoutTargets lists the session's tickets issued to services with a
// logout URL, oldest first.
func (db *DB) CASLogoutTargets(ctx context.Context, sessionID string) ([]CASLogoutTarget, error) {
	rows, err := db.query(ctx, `SELECT t.id, s.id, s.logout_url FROM cas_tickets t JOIN cas_services s ON s.id = t.service_id
		WHERE t.session_id = ? AND s.logout_url <> '' ORDER BY t.created_at, t.id`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("store: cas logout targets: %w", err)
	}
	defer rows.Close()
	var out []CASLogoutTarget
	for rows.Next() {
		var t CASLogoutTarget
		if err := rows.Scan(&t.TicketID, &t.ServiceID, &t.LogoutURL); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
