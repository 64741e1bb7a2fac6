package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The OpenID Connect provider's rows (migration 0003 documents each table).

// Client sources: who manages an application's row.
const (
	ClientFromConfig = "config" // the YAML file; upserted at every start
	ClientFromCLI    = "cli"
)

// OIDCClient is an application that signs people in with campusid.
type OIDCClient struct {
	ID                   string
	Name                 string
	SecretHash           string // hex SHA-256 of the secret; "" for a public client
	Public               bool
	FirstParty           bool // trusted: no consent page
	RedirectURIs         []string
	PostLogoutURIs       []string
	BackchannelLogoutURI string
	GrantTypes           []string
	Scopes               []string
	Source               string
	CreatedAt            time.Time
	UpdatedAt            time.Time
}

const clientCols = `id, name, secret_hash, public, first_party, redirect_uris, post_logout_uris, backchannel_logout_uri,
	grant_types, scopes, source, created_at, updated_at`

func scanClient(row interface{ Scan(...any) error }) (OIDCClient, error) {
	var (
		c                  OIDCClient
		public, first      int
		redirects, logouts string
		grants, scopes     string
		created, updated   int64
	)
	err := row.Scan(&c.ID, &c.Name, &c.SecretHash, &public, &first, &redirects, &logouts, &c.BackchannelLogoutURI,
		&grants, &scopes, &c.Source, &created, &updated)
	if err != nil {
		return c, err
	}
	c.Public, c.FirstParty = public == 1, first == 1
	json.Unmarshal([]byte(redirects), &c.RedirectURIs)
	json.Unmarshal([]byte(logouts), &c.PostLogoutURIs)
	c.GrantTypes, c.Scopes = strings.Fields(grants), strings.Fields(scopes)
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(updated)
	return c, nil
}

func jsonList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func (c OIDCClient) args() []any {
	if c.Source == "" {
		c.Source = ClientFromCLI
	}
	return []any{c.ID, c.Name, c.SecretHash, boolInt(c.Public), boolInt(c.FirstParty), jsonList(c.RedirectURIs),
		jsonList(c.PostLogoutURIs), c.BackchannelLogoutURI, strings.Join(c.GrantTypes, " "), strings.Join(c.Scopes, " "),
		c.Source, ms(c.CreatedAt), ms(c.UpdatedAt)}
}

// CreateOIDCClient inserts an application; ErrConflict when the id is taken.
func (db *DB) CreateOIDCClient(ctx context.Context, c OIDCClient) error {
	_, err := db.exec(ctx, `INSERT INTO oidc_clients (`+clientCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`, c.args()...)
	if err != nil {
		return fmt.Errorf("store: create client: %w", err)
	}
	return nil
}

// UpsertOIDCClient inserts the application or replaces every field but its
// creation time (the configuration file's clients at start).
func (db *DB) UpsertOIDCClient(ctx context.Context, c OIDCClient) error {
	_, err := db.exec(ctx, `INSERT INTO oidc_clients (`+clientCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, secret_hash = excluded.secret_hash, public = excluded.public,
		first_party = excluded.first_party, redirect_uris = excluded.redirect_uris, post_logout_uris = excluded.post_logout_uris,
		backchannel_logout_uri = excluded.backchannel_logout_uri, grant_types = excluded.grant_types, scopes = excluded.scopes,
		source = excluded.source, updated_at = excluded.updated_at`, c.args()...)
	if err != nil {
		return fmt.Errorf("store: upsert client: %w", err)
	}
	return nil
}

// UpdateOIDCClient replaces an application's fields (not its id, source or creation time).
func (db *DB) UpdateOIDCClient(ctx context.Context, c OIDCClient) error {
	return db.execOne(ctx, `UPDATE oidc_clients SET name = ?, secret_hash = ?, public = ?, first_party = ?, redirect_uris = ?,
		post_logout_uris = ?, backchannel_logout_uri = ?, grant_types = ?, scopes = ?, updated_at = ? WHERE id = ?`,
		c.Name, c.SecretHash, boolInt(c.Public), boolInt(c.FirstParty), jsonList(c.RedirectURIs), jsonList(c.PostLogoutURIs),
		c.BackchannelLogoutURI, strings.Join(c.GrantTypes, " "), strings.Join(c.Scopes, " "), ms(c.UpdatedAt), c.ID)
}

// OIDCClientByID returns an application.
func (db *DB) OIDCClientByID(ctx context.Context, id string) (OIDCClient, error) {
	c, err := scanClient(db.queryRow(ctx, `SELECT `+clientCols+` FROM oidc_clients WHERE id = ?`, id))
	return c, db.mapErr(err)
}

// ListOIDCClients returns every application by id.
func (db *DB) ListOIDCClients(ctx context.Context) ([]OIDCClient, error) {
	rows, err := db.query(ctx, `SELECT `+clientCols+` FROM oidc_clients ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list clients: %w", err)
	}
	defer rows.Close()
	var out []OIDCClient
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteOIDCClient removes an application with its consents, grants and tokens.
func (db *DB) DeleteOIDCClient(ctx context.Context, id string) error {
	return db.execOne(ctx, `DELETE FROM oidc_clients WHERE id = ?`, id)
}

// Auth request states (see migration 0003).
const (
	AuthRequestNew       = "new"
	AuthRequestDone      = "done"
	AuthRequestCode      = "code"
	AuthRequestExchanged = "exchanged"
)

// OIDCAuthRequest is one authorization request on its way through sign-in.
type OIDCAuthRequest struct {
	ID            string
	ClientID      string
	RedirectURI   string
	Scopes        []string
	ResponseType  string
	ResponseMode  string
	OAuthState    string // the client's "state" parameter
	Nonce         string
	Prompt        []string
	MaxAge        *int64 // seconds
	LoginHint     string
	CodeChallenge string
	CodeMethod    string
	State         string
	AccountID     string
	SessionID     string
	AuthTime      *time.Time
	AMR           []string
	ConsentedBy   string
	LoginFrom     *string // nil until sent to sign in; then the sign-in it had: session id and token hash prefix ("" when none)
	CodeHash      string
	CodeExpiresAt *time.Time
	GrantID       string
	AccessTokenID string
	CreatedAt     time.Time
	ExpiresAt     time.Time
}

const authReqCols = `id, client_id, redirect_uri, scopes, response_type, response_mode, oauth_state, nonce, prompt, max_age,
	login_hint, code_challenge, code_method, state, account_id, session_id, auth_time, amr, consented_by, login_from, code_hash,
	code_expires_at, grant_id, access_token_id, created_at, expires_at`

func scanAuthRequest(row interface{ Scan(...any) error }) (OIDCAuthRequest, error) {
	var (
		a                        OIDCAuthRequest
		scopes, prompt, amr      string
		maxAge, authTime, codeEx sql.NullInt64
		account, codeHash, from  sql.NullString
		created, expires         int64
	)
	err := row.Scan(&a.ID, &a.ClientID, &a.RedirectURI, &scopes, &a.ResponseType, &a.ResponseMode, &a.OAuthState, &a.Nonce,
		&prompt, &maxAge, &a.LoginHint, &a.CodeChallenge, &a.CodeMethod, &a.State, &account, &a.SessionID, &authTime, &amr,
		&a.ConsentedBy, &from, &codeHash, &codeEx, &a.GrantID, &a.AccessTokenID, &created, &expires)
	if err != nil {
		return a, err
	}
	a.Scopes, a.Prompt, a.AMR = strings.Fields(scopes), strings.Fields(prompt), strings.Fields(amr)
	if maxAge.Valid {
		v := maxAge.Int64
		a.MaxAge = &v
	}
	a.AccountID, a.CodeHash = account.String, codeHash.String
	if from.Valid {
		a.LoginFrom = &from.String
	}
	a.AuthTime, a.CodeExpiresAt = fromNull(authTime), fromNull(codeEx)
	a.CreatedAt, a.ExpiresAt = fromMS(created), fromMS(expires)
	return a, nil
}

// CreateOIDCAuthRequest stores a new request (state "new").
func (db *DB) CreateOIDCAuthRequest(ctx context.Context, a *OIDCAuthRequest) error {
	if a.ID == "" {
		a.ID = NewID()
	}
	a.State = AuthRequestNew
	var maxAge sql.NullInt64
	if a.MaxAge != nil {
		maxAge = sql.NullInt64{Int64: *a.MaxAge, Valid: true}
	}
	_, err := db.exec(ctx, `INSERT INTO oidc_auth_requests (id, client_id, redirect_uri, scopes, response_type, response_mode,
		oauth_state, nonce, prompt, max_age, login_hint, code_challenge, code_method, state, created_at, expires_at)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		a.ID, a.ClientID, a.RedirectURI, strings.Join(a.Scopes, " "), a.ResponseType, a.ResponseMode, a.OAuthState, a.Nonce,
		strings.Join(a.Prompt, " "), maxAge, a.LoginHint, a.CodeChallenge, a.CodeMethod, a.State, ms(a.CreatedAt), ms(a.ExpiresAt))
	if err != nil {
		return fmt.Errorf("store: create auth request: %w", err)
	}
	return nil
}

// OIDCAuthRequestByID returns the request, expired or not.
func (db *DB) OIDCAuthRequestByID(ctx context.Context, id string) (OIDCAuthRequest, error) {
	a, err := scanAuthRequest(db.queryRow(ctx, `SELECT `+authReqCols+` FROM oidc_auth_requests WHERE id = ?`, id))
	return a, db.mapErr(err)
}

// OIDCAuthRequestByCode returns the request whose code has this hash.
func (db *DB) OIDCAuthRequestByCode(ctx context.Context, codeHash string) (OIDCAuthRequest, error) {
	a, err := scanAuthRequest(db.queryRow(ctx, `SELECT `+authReqCols+` FROM oidc_auth_requests WHERE code_hash = ?`, codeHash))
	return a, db.mapErr(err)
}

// CompleteOIDCAuthRequest records who signed in (state "done"); ErrNotFound
// when the request is gone or past that point.
func (db *DB) CompleteOIDCAuthRequest(ctx context.Context, id, accountID, sessionID string, authTime time.Time, amr []string) error {
	return db.execOne(ctx, `UPDATE oidc_auth_requests SET state = ?, account_id = ?, session_id = ?, auth_time = ?, amr = ?
		WHERE id = ? AND state IN (?, ?)`, AuthRequestDone, accountID, sessionID, ms(authTime), strings.Join(amr, " "),
		id, AuthRequestNew, AuthRequestDone)
}

// ConsentOIDCAuthRequest records that accountID approved this request.
func (db *DB) ConsentOIDCAuthRequest(ctx context.Context, id, accountID string) error {
	return db.execOne(ctx, `UPDATE oidc_auth_requests SET consented_by = ? WHERE id = ? AND state IN (?, ?)`,
		accountID, id, AuthRequestNew, AuthRequestDone)
}

// SendOIDCAuthRequestToLogin records that the browser was sent to sign in
// while it had session fromSession ("" for none).
func (db *DB) SendOIDCAuthRequestToLogin(ctx context.Context, id, fromSession string) error {
	return db.execOne(ctx, `UPDATE oidc_auth_requests SET login_from = ? WHERE id = ? AND state IN (?, ?)`,
		fromSession, id, AuthRequestNew, AuthRequestDone)
}

// SaveOIDCAuthCode hands out the code of a done request (state "code"), once.
func (db *DB) SaveOIDCAuthCode(ctx context.Context, id, codeHash string, expires time.Time) error {
	return db.execOne(ctx, `UPDATE oidc_auth_requests SET state = ?, code_hash = ?, code_expires_at = ? WHERE id = ? AND state = ?`,
		AuthRequestCode, codeHash, ms(expires), id, AuthRequestDone)
}

// ClaimOIDCAuthCode moves a request from "code" to "exchanged": of two
// redemptions of one code, exactly one gets nil.
func (db *DB) ClaimOIDCAuthCode(ctx context.Context, id string) error {
	return db.execOne(ctx, `UPDATE oidc_auth_requests SET state = ? WHERE id = ? AND state = ?`, AuthRequestExchanged, id, AuthRequestCode)
}

// SetOIDCAuthRequestIssued records what a code's redemption issued.
func (db *DB) SetOIDCAuthRequestIssued(ctx context.Context, id, grantID, accessTokenID string) error {
	_, err := db.exec(ctx, `UPDATE oidc_auth_requests SET grant_id = ?, access_token_id = ? WHERE id = ?`, grantID, accessTokenID, id)
	return err
}

// DeleteOIDCAuthRequest removes a request, except a redeemed one, which stays
// until it expires so that a second redemption of its code is detected.
func (db *DB) DeleteOIDCAuthRequest(ctx context.Context, id string) error {
	_, err := db.exec(ctx, `DELETE FROM oidc_auth_requests WHERE id = ? AND state <> ?`, id, AuthRequestExchanged)
	return err
}

// OIDCConsent is what an account allowed an application.
type OIDCConsent struct {
	AccountID  string
	ClientID   string
	ClientName string // filled by ListOIDCConsents
	Scopes     []string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// OIDCConsentOf returns the account's consent to the client.
func (db *DB) OIDCConsentOf(ctx context.Context, accountID, clientID string) (OIDCConsent, error) {
	var (
		c                OIDCConsent
		scopes           string
		created, updated int64
	)
	err := db.queryRow(ctx, `SELECT account_id, client_id, scopes, created_at, updated_at FROM oidc_consents
		WHERE account_id = ? AND client_id = ?`, accountID, clientID).Scan(&c.AccountID, &c.ClientID, &scopes, &created, &updated)
	c.Scopes, c.CreatedAt, c.UpdatedAt = strings.Fields(scopes), fromMS(created), fromMS(updated)
	return c, db.mapErr(err)
}

// SaveOIDCConsent inserts or replaces the account's consent to the client.
func (db *DB) SaveOIDCConsent(ctx context.Context, c OIDCConsent) error {
	_, err := db.exec(ctx, `INSERT INTO oidc_consents (account_id, client_id, scopes, created_at, updated_at) VALUES (?,?,?,?,?)
		ON CONFLICT (account_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at`,
		c.AccountID, c.ClientID, strings.Join(c.Scopes, " "), ms(c.CreatedAt), ms(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store: save consent: %w", err)
	}
	return nil
}

// ListOIDCConsents returns the applications the account allowed, newest first.
func (db *DB) ListOIDCConsents(ctx context.Context, accountID string) ([]OIDCConsent, error) {
	rows, err := db.query(ctx, `SELECT c.account_id, c.client_id, k.name, c.scopes, c.created_at, c.updated_at
		FROM oidc_consents c JOIN oidc_clients k ON k.id = c.client_id WHERE c.account_id = ? ORDER BY c.updated_at DESC`, accountID)
	if err != nil {
		return nil, fmt.Errorf("store: list consents: %w", err)
	}
	defer rows.Close()
	var out []OIDCConsent
	for rows.Next() {
		var (
			c                OIDCConsent
			scopes           string
			created, updated int64
		)
		if err := rows.Scan(&c.AccountID, &c.ClientID, &c.ClientName, &scopes, &created, &updated); err != nil {
			return nil, err
		}
		c.Scopes, c.CreatedAt, c.UpdatedAt = strings.Fields(scopes), fromMS(created), fromMS(updated)
		out = append(out, c)
	}
	return out, rows.Err()
}

// RevokeOIDCClientAccess withdraws everything the account gave the client:
// the consent, every grant (refresh tokens) and every access token. It
// returns whether there was anything to withdraw.
func (db *DB) RevokeOIDCClientAccess(ctx context.Context, accountID, clientID, reason string, now time.Time) (bool, error) {
	var found bool
	err := db.InTx(ctx, func(tx *DB) error {
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`DELETE FROM oidc_consents WHERE account_id = ? AND client_id = ?`, []any{accountID, clientID}},
			{`UPDATE oidc_grants SET revoked_at = ?, revoke_reason = ? WHERE account_id = ? AND client_id = ? AND revoked_at IS NULL`,
				[]any{ms(now), reason, accountID, clientID}},
			{`UPDATE oidc_access_tokens SET revoked_at = ? WHERE account_id = ? AND client_id = ? AND revoked_at IS NULL AND expires_at > ?`,
				[]any{ms(now), accountID, clientID, ms(now)}},
		} {
			res, err := tx.exec(ctx, q.sql, q.args...)
			if err != nil {
				return fmt.Errorf("store: revoke client access: %w", err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				found = true
			}
		}
		return nil
	})
	return found, err
}

// RevokeAccountOIDC ends every grant and access token of the account (a
// password reset) and returns how many grants it ended.
func (db *DB) RevokeAccountOIDC(ctx context.Context, accountID, reason string, now time.Time) (int64, error) {
	var n int64
	err := db.InTx(ctx, func(tx *DB) error {
		res, err := tx.exec(ctx, `UPDATE oidc_grants SET revoked_at = ?, revoke_reason = ? WHERE account_id = ? AND revoked_at IS NULL`,
			ms(now), reason, accountID)
		if err != nil {
			return fmt.Errorf("store: revoke grants: %w", err)
		}
		n, _ = res.RowsAffected()
		_, err = tx.exec(ctx, `UPDATE oidc_access_tokens SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL AND expires_at > ?`,
			ms(now), accountID, ms(now))
		return err
	})
	return n, err
}

// OIDCGrant is a refresh-token family: a connected device or application.
type OIDCGrant struct {
	ID           string
	AccountID    string
	ClientID     string
	Scopes       []string
	AuthTime     time.Time
	AMR          []string
	SessionID    string
	DeviceName   string
	UserAgent    string
	IP           string
	CreatedAt    time.Time
	LastUsedAt   time.Time
	RevokedAt    *time.Time
	RevokeReason string
}

const grantCols = `id, account_id, client_id, scopes, auth_time, amr, session_id, device_name, user_agent, ip,
	created_at, last_used_at, revoked_at, revoke_reason`

func scanGrant(row interface{ Scan(...any) error }) (OIDCGrant, error) {
	var (
		g                   OIDCGrant
		scopes, amr         string
		auth, created, used int64
		revoked             sql.NullInt64
	)
	err := row.Scan(&g.ID, &g.AccountID, &g.ClientID, &scopes, &auth, &amr, &g.SessionID, &g.DeviceName, &g.UserAgent, &g.IP,
		&created, &used, &revoked, &g.RevokeReason)
	g.Scopes, g.AMR = strings.Fields(scopes), strings.Fields(amr)
	g.AuthTime, g.CreatedAt, g.LastUsedAt, g.RevokedAt = fromMS(auth), fromMS(created), fromMS(used), fromNull(revoked)
	return g, err
}

// CreateOIDCGrant inserts a grant.
func (db *DB) CreateOIDCGrant(ctx context.Context, g *OIDCGrant) error {
	if g.ID == "" {
		g.ID = NewID()
	}
	_, err := db.exec(ctx, `INSERT INTO oidc_grants (`+grantCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		g.ID, g.AccountID, g.ClientID, strings.Join(g.Scopes, " "), ms(g.AuthTime), strings.Join(g.AMR, " "), g.SessionID,
		g.DeviceName, g.UserAgent, g.IP, ms(g.CreatedAt), ms(g.LastUsedAt), msPtr(g.RevokedAt), g.RevokeReason)
	if err != nil {
		return fmt.Errorf("store: create grant: %w", err)
	}
	return nil
}

// OIDCGrantByID returns a grant, revoked or not.
func (db *DB) OIDCGrantByID(ctx context.Context, id string) (OIDCGrant, error) {
	g, err := scanGrant(db.queryRow(ctx, `SELECT `+grantCols+` FROM oidc_grants WHERE id = ?`, id))
	return g, db.mapErr(err)
}

// ListOIDCGrants returns the account's live grants, most recently used first.
func (db *DB) ListOIDCGrants(ctx context.Context, accountID string) ([]OIDCGrant, error) {
	rows, err := db.query(ctx, `SELECT `+grantCols+` FROM oidc_grants WHERE account_id = ? AND revoked_at IS NULL
		ORDER BY last_used_at DESC`, accountID)
	if err != nil {
		return nil, fmt.Errorf("store: list grants: %w", err)
	}
	defer rows.Close()
	var out []OIDCGrant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// TouchOIDCGrant records a use of the grant.
func (db *DB) TouchOIDCGrant(ctx context.Context, id string, now time.Time, ip string) error {
	_, err := db.exec(ctx, `UPDATE oidc_grants SET last_used_at = ?, ip = ? WHERE id = ?`, ms(now), ip, id)
	return err
}

// RevokeOIDCGrant ends a grant and the access tokens issued under it;
// ErrNotFound when it was already revoked.
func (db *DB) RevokeOIDCGrant(ctx context.Context, id, reason string, now time.Time) error {
	return db.InTx(ctx, func(tx *DB) error {
		if err := tx.execOne(ctx, `UPDATE oidc_grants SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL`,
			ms(now), reason, id); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `UPDATE oidc_access_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL`, ms(now), id)
		return err
	})
}

// OIDCRefreshToken is one refresh token of a grant.
type OIDCRefreshToken struct {
	TokenHash string
	GrantID   string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// CreateOIDCRefreshToken inserts a refresh token.
func (db *DB) CreateOIDCRefreshToken(ctx context.Context, t OIDCRefreshToken) error {
	_, err := db.exec(ctx, `INSERT INTO oidc_refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES (?,?,?,?)`,
		t.TokenHash, t.GrantID, ms(t.CreatedAt), ms(t.ExpiresAt))
	if err != nil {
		return fmt.Errorf("store: create refresh token: %w", err)
	}
	return nil
}

// OIDCRefreshTokenByHash returns a refresh token, used or not.
func (db *DB) OIDCRefreshTokenByHash(ctx context.Context, hash string) (OIDCRefreshToken, error) {
	var (
		t                OIDCRefreshToken
		created, expires int64
		used             sql.NullInt64
	)
	err := db.queryRow(ctx, `SELECT token_hash, grant_id, created_at, expires_at, used_at FROM oidc_refresh_tokens WHERE token_hash = ?`, hash).
		Scan(&t.TokenHash, &t.GrantID, &created, &expires, &used)
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromMS(created), fromMS(expires), fromNull(used)
	return t, db.mapErr(err)
}

// UseOIDCRefreshToken marks a refresh token used: of two uses, exactly one
// gets nil; the other gets ErrNotFound.
func (db *DB) UseOIDCRefreshToken(ctx context.Context, hash string, now time.Time) error {
	return db.execOne(ctx, `UPDATE oidc_refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL`, ms(now), hash)
}

// OIDCAccessToken is an issued access token.
type OIDCAccessToken struct {
	ID        string
	GrantID   string
	AccountID string // "" for client credentials
	ClientID  string
	Scopes    []string
	SessionID string
	AuthTime  *time.Time
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt *time.Time
}

// CreateOIDCAccessToken inserts an access token.
func (db *DB) CreateOIDCAccessToken(ctx context.Context, t *OIDCAccessToken) error {
	if t.ID == "" {
		t.ID = NewID()
	}
	_, err := db.exec(ctx, `INSERT INTO oidc_access_tokens (id, grant_id, account_id, client_id, scopes, session_id, auth_time,
		created_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?)`, t.ID, nullString(t.GrantID), nullString(t.AccountID), t.ClientID,
		strings.Join(t.Scopes, " "), t.SessionID, msPtr(t.AuthTime), ms(t.CreatedAt), ms(t.ExpiresAt))
	if err != nil {
		return fmt.Errorf("store: create access token: %w", err)
	}
	return nil
}

// OIDCAccessTokenByID returns an access token, revoked or expired ones included.
func (db *DB) OIDCAccessTokenByID(ctx context.Context, id string) (OIDCAccessToken, error) {
	var (
		t                OIDCAccessToken
		grant, account   sql.NullString
		scopes           string
		auth, revoked    sql.NullInt64
		created, expires int64
	)
	err := db.queryRow(ctx, `SELECT id, grant_id, account_id, client_id, scopes, session_id, auth_time, created_at, expires_at, revoked_at
		FROM oidc_access_tokens WHERE id = ?`, id).
		Scan(&t.ID, &grant, &account, &t.ClientID, &scopes, &t.SessionID, &auth, &created, &expires, &revoked)
	t.GrantID, t.AccountID, t.Scopes = grant.String, account.String, strings.Fields(scopes)
	t.AuthTime, t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromNull(auth), fromMS(created), fromMS(expires), fromNull(revoked)
	return t, db.mapErr(err)
}

// RevokeOIDCAccessToken ends one access token.
func (db *DB) RevokeOIDCAccessToken(ctx context.Context, id string, now time.Time) error {
	_, err := db.exec(ctx, `UPDATE oidc_access_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, ms(now), id)
	return err
}

// DeleteExpiredOIDC removes requests, tokens and device codes that ended
// before cutoff, and grants whose every refresh token has.
func (db *DB) DeleteExpiredOIDC(ctx context.Context, cutoff time.Time) error {
	for _, q := range []string{
		`DELETE FROM oidc_auth_requests WHERE expires_at < ?`,
		`DELETE FROM oidc_access_tokens WHERE expires_at < ?`,
		`DELETE FROM oidc_refresh_tokens WHERE expires_at < ?`,
		`DELETE FROM oidc_device_codes WHERE expires_at < ?`,
		`DELETE FROM oidc_grants WHERE revoked_at < ?`,
		`DELETE FROM oidc_grants WHERE created_at < ? AND NOT EXISTS
			(SELECT 1 FROM oidc_refresh_tokens r WHERE r.grant_id = oidc_grants.id)`,
	} {
		if _, err := db.exec(ctx, q, ms(cutoff)); err != nil {
			return fmt.Errorf("store: delete expired oidc rows: %w", err)
		}
	}
	return nil
}

// OIDCLiveGrant is a grant that still works (not revoked, with a refresh
// token neither used nor expired), with its application's name: a connected
// device or application of the account page.
type OIDCLiveGrant struct {
	OIDCGrant
	ClientName string
}

// ListLiveOIDCGrants returns the account's working grants at now, most
// recently used first.
func (db *DB) ListLiveOIDCGrants(ctx context.Context, accountID string, now time.Time) ([]OIDCLiveGrant, error) {
	cols := "g." + strings.ReplaceAll(strings.Join(strings.Fields(grantCols), " "), ", ", ", g.")
	rows, err := db.query(ctx, `SELECT `+cols+`, k.name FROM oidc_grants g JOIN oidc_clients k ON k.id = g.client_id
		WHERE g.account_id = ? AND g.revoked_at IS NULL AND EXISTS (SELECT 1 FROM oidc_refresh_tokens r
			WHERE r.grant_id = g.id AND r.used_at IS NULL AND r.expires_at > ?)
		ORDER BY g.last_used_at DESC, g.id`, accountID, ms(now))
	if err != nil {
		return nil, fmt.Errorf("store: list live grants: %w", err)
	}
	defer rows.Close()
	var out []OIDCLiveGrant
	for rows.Next() {
		var name string
		g, err := scanGrant(scanFunc(func(dest ...any) error { return rows.Scan(append(dest, &name)...) }))
		if err != nil {
			return nil, err
		}
		out = append(out, OIDCLiveGrant{OIDCGrant: g, ClientName: name})
	}
	return out, rows.Err()
}

// scanFunc adapts a function to scanGrant's row.
type scanFunc func(dest ...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

// Device code states (RFC 8628; see migration 0003). "used" marks a device
// code whose tokens were issued: presented again, it is refused.
const (
	DeviceCodePending  = "pending"
	DeviceCodeApproved = "approved"
	DeviceCodeDenied   = "denied"
	DeviceCodeUsed     = "used"
)

// OIDCDeviceCode is one device authorization request.
type OIDCDeviceCode struct {
	DeviceCodeHash string
	UserCode       string // normalized: the letters without dash
	ClientID       string
	Scopes         []string
	State          string
	AccountID      string
	SessionID      string
	AuthTime       *time.Time
	AMR            []string
	DeviceName     string // the device's user agent at the device_authorization call
	CreatedAt      time.Time
	ExpiresAt      time.Time
	LastPollAt     *time.Time
	PollInterval   int // seconds
}

const deviceCols = `device_code_hash, user_code, client_id, scopes, state, account_id, session_id, auth_time, amr, device_name,
	created_at, expires_at, last_poll_at, poll_interval`

func scanDeviceCode(row interface{ Scan(...any) error }) (OIDCDeviceCode, error) {
	var (
		d                OIDCDeviceCode
		scopes, amr      string
		account          sql.NullString
		auth, lastPoll   sql.NullInt64
		created, expires int64
	)
	err := row.Scan(&d.DeviceCodeHash, &d.UserCode, &d.ClientID, &scopes, &d.State, &account, &d.SessionID, &auth, &amr,
		&d.DeviceName, &created, &expires, &lastPoll, &d.PollInterval)
	d.Scopes, d.AMR, d.AccountID = strings.Fields(scopes), strings.Fields(amr), account.String
	d.AuthTime, d.LastPollAt, d.CreatedAt, d.ExpiresAt = fromNull(auth), fromNull(lastPoll), fromMS(created), fromMS(expires)
	return d, err
}

// CreateOIDCDeviceCode stores a new device authorization (state "pending").
func (db *DB) CreateOIDCDeviceCode(ctx context.Context, d OIDCDeviceCode) error {
	_, err := db.exec(ctx, `INSERT INTO oidc_device_codes (device_code_hash, user_code, client_id, scopes, state, device_name,
		created_at, expires_at, poll_interval) VALUES (?,?,?,?,?,?,?,?,?)`, d.DeviceCodeHash, d.UserCode, d.ClientID,
		strings.Join(d.Scopes, " "), DeviceCodePending, d.DeviceName, ms(d.CreatedAt), ms(d.ExpiresAt), d.PollInterval)
	if err != nil {
		return fmt.Errorf("store: create device code: %w", err)
	}
	return nil
}

// OIDCDeviceCodeByHash returns a device authorization by its device code's hash.
func (db *DB) OIDCDeviceCodeByHash(ctx context.Context, hash string) (OIDCDeviceCode, error) {
	d, err := scanDeviceCode(db.queryRow(ctx, `SELECT `+deviceCols+` FROM oidc_device_codes WHERE device_code_hash = ?`, hash))
	return d, db.mapErr(err)
}

// OIDCDeviceCodeByUserCode returns a device authorization by its (normalized) user code.
func (db *DB) OIDCDeviceCodeByUserCode(ctx context.Context, userCode string) (OIDCDeviceCode, error) {
	d, err := scanDeviceCode(db.queryRow(ctx, `SELECT `+deviceCols+` FROM oidc_device_codes WHERE user_code = ?`, userCode))
	return d, db.mapErr(err)
}

// PollOIDCDeviceCode records a poll of the device: its time and interval
// (seconds, raised after a slow_down).
func (db *DB) PollOIDCDeviceCode(ctx context.Context, hash string, now time.Time, interval int) error {
	return db.execOne(ctx, `UPDATE oidc_device_codes SET last_poll_at = ?, poll_interval = ? WHERE device_code_hash = ?`,
		ms(now), interval, hash)
}

// DecideOIDCDeviceCode approves (with who signed in) or denies a pending
// device authorization; ErrNotFound when it is no longer pending.
func (db *DB) DecideOIDCDeviceCode(ctx context.Context, userCode, state, accountID, sessionID string, authTime time.Time, amr []string) error {
	return db.execOne(ctx, `UPDATE oidc_device_codes SET state = ?, account_id = ?, session_id = ?, auth_time = ?, amr = ?
		WHERE user_code = ? AND state = ?`, state, accountID, sessionID, ms(authTime), strings.Join(amr, " "), userCode, DeviceCodePending)
}

// ClaimOIDCDeviceCode moves an approved device code to "used": of two
// redemptions, exactly one gets nil.
func (db *DB) ClaimOIDCDeviceCode(ctx context.Context, hash string) error {
	return db.execOne(ctx, `UPDATE oidc_device_codes SET state = ? WHERE device_code_hash = ? AND state = ?`,
		DeviceCodeUsed, hash, DeviceCodeApproved)
}
