-- OpenID Connect provider: signing keys, applications, the sign-in bridge,
-- consents, grants and tokens, device codes. Times are Unix milliseconds.
-- Tokens and secrets are stored as hex SHA-256 of random values of 256 bits.

-- signing_keys: the keys that sign ID tokens and JWT access tokens, shared by
-- every node. The private key (PKCS#8) is encrypted with AES-256-GCM under
-- keys.encryption_key; enc_key_id is that key's fingerprint, so a node with
-- another key says so instead of failing obscurely. Exactly one key is
-- active (signs); a retired key stays published in the JWKS until not_after,
-- when every token it signed has expired.
CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,          -- the JWS "kid"
    algorithm   TEXT NOT NULL,             -- ES256 or RS256
    public_jwk  TEXT NOT NULL,             -- JSON Web Key of the public half
    private_enc TEXT NOT NULL,             -- base64(nonce || AES-256-GCM(PKCS#8))
    enc_key_id  TEXT NOT NULL,             -- fingerprint of the encryption key
    active      INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT,                    -- when a newer key took over
    not_after   BIGINT                     -- out of the JWKS from then on (NULL while active)
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys(active) WHERE active = 1;

-- oidc_clients: the applications (relying parties). Public clients (native,
-- single-page) have no secret and must use PKCE; confidential ones hold a
-- secret of which only the SHA-256 is kept. Lists are JSON arrays (URIs) or
-- space-separated words (grants, scopes). source tells who manages the row:
-- 'config' (the YAML file, upserted at start) or 'cli'.
CREATE TABLE oidc_clients (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL,
    secret_hash            TEXT NOT NULL DEFAULT '',
    public                 INTEGER NOT NULL DEFAULT 0,
    first_party            INTEGER NOT NULL DEFAULT 0,  -- no consent page
    redirect_uris          TEXT NOT NULL DEFAULT '[]',
    post_logout_uris       TEXT NOT NULL DEFAULT '[]',
    backchannel_logout_uri TEXT NOT NULL DEFAULT '',
    grant_types            TEXT NOT NULL DEFAULT 'authorization_code refresh_token',
    scopes                 TEXT NOT NULL DEFAULT 'openid profile email offline_access',
    source                 TEXT NOT NULL DEFAULT 'cli',
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);

-- oidc_auth_requests: one authorization request between /oauth2/authorize
-- and the token endpoint (the login bridge, dex style). States:
--   new       stored by the authorize endpoint; the browser goes to /oidc/continue?id=
--   done      a campusid session satisfied prompt/max_age and consent: account_id,
--             session_id, auth_time and amr are set
--   code      the code was handed out (code_hash, code_expires_at)
--   exchanged the code was redeemed once; kept until expires_at so that a second
--             redemption is refused and revokes what the first one issued
-- consented_by is the account that approved this very request on the consent
-- page (prompt=consent asks again even when a consent is remembered).
-- login_from tells a fresh sign-in (prompt=login, max_age) from the session
-- that was there before: any other session is newer.
CREATE TABLE oidc_auth_requests (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES oidc_clients(id) ON DELETE CASCADE,
    redirect_uri    TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    response_type   TEXT NOT NULL,
    response_mode   TEXT NOT NULL DEFAULT '',
    oauth_state     TEXT NOT NULL DEFAULT '',
    nonce           TEXT NOT NULL DEFAULT '',
    prompt          TEXT NOT NULL DEFAULT '',
    max_age         BIGINT,                    -- seconds; NULL when not asked
    login_hint      TEXT NOT NULL DEFAULT '',
    code_challenge  TEXT NOT NULL DEFAULT '',
    code_method     TEXT NOT NULL DEFAULT '',
    state           TEXT NOT NULL DEFAULT 'new',
    account_id      TEXT REFERENCES accounts(id) ON DELETE CASCADE,
    session_id      TEXT NOT NULL DEFAULT '',
    auth_time       BIGINT,
    amr             TEXT NOT NULL DEFAULT '',
    consented_by    TEXT NOT NULL DEFAULT '',
    login_from      TEXT,                      -- NULL until sent to sign in; then the session it had ('' when none)
    code_hash       TEXT UNIQUE,
    code_expires_at BIGINT,
    grant_id        TEXT NOT NULL DEFAULT '',  -- what the code's redemption issued
    access_token_id TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX oidc_auth_requests_expires ON oidc_auth_requests(expires_at);

-- oidc_consents: what a person allowed an application to get, remembered per
-- account and client; a request whose scopes are all in scopes skips the page.
CREATE TABLE oidc_consents (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES oidc_clients(id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, client_id)
);

-- oidc_grants: one row per refresh-token family (a code flow with
-- offline_access, later a device flow): the "connected devices and
-- applications" of the account page. Every refresh token of the family points
-- here; revoking the grant (sign out this device, a reused refresh token, a
-- password reset, revoking the application) kills them all and the access
-- tokens issued under it. session_id is the single sign-on session that
-- authorized it (for back-channel logout).
CREATE TABLE oidc_grants (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    client_id     TEXT NOT NULL REFERENCES oidc_clients(id) ON DELETE CASCADE,
    scopes        TEXT NOT NULL,
    auth_time     BIGINT NOT NULL,
    amr           TEXT NOT NULL DEFAULT '',
    session_id    TEXT NOT NULL DEFAULT '',
    device_name   TEXT NOT NULL DEFAULT '',
    user_agent    TEXT NOT NULL DEFAULT '',
    ip            TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT NOT NULL,
    revoked_at    BIGINT,
    revoke_reason TEXT NOT NULL DEFAULT ''   -- user, reuse, client_revoked, password_reset, logout...
);
CREATE INDEX oidc_grants_account ON oidc_grants(account_id, client_id);

-- oidc_refresh_tokens: the refresh tokens of a grant, rotated at each use.
-- A used token (used_at set) presented again is a theft signal: the grant is
-- revoked. Rows stay until they expire, for that detection.
CREATE TABLE oidc_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES oidc_grants(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX oidc_refresh_tokens_grant ON oidc_refresh_tokens(grant_id);

-- oidc_access_tokens: every access token issued. The token given to the
-- client is opaque (encrypted "id:subject") or a JWT (client credentials,
-- jti = id); either way userinfo and introspection look the row up, so a
-- revoked token stops working at once. account_id is NULL for client
-- credentials (the subject is the client); grant_id is NULL without a
-- refresh token.
CREATE TABLE oidc_access_tokens (
    id         TEXT PRIMARY KEY,
    grant_id   TEXT REFERENCES oidc_grants(id) ON DELETE CASCADE,
    account_id TEXT REFERENCES accounts(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES oidc_clients(id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    session_id TEXT NOT NULL DEFAULT '',
    auth_time  BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX oidc_access_tokens_account ON oidc_access_tokens(account_id, client_id);
CREATE INDEX oidc_access_tokens_grant ON oidc_access_tokens(grant_id);
CREATE INDEX oidc_access_tokens_expires ON oidc_access_tokens(expires_at);

-- oidc_device_codes: device authorization requests (RFC 8628), for the next
-- step. The device polls with device_code (only its SHA-256 is kept); the
-- person types user_code at /device. state: pending, approved, denied (then
-- the row is consumed when the tokens are issued). last_poll_at and
-- poll_interval give slow_down.
CREATE TABLE oidc_device_codes (
    device_code_hash TEXT PRIMARY KEY,
    user_code        TEXT NOT NULL UNIQUE,
    client_id        TEXT NOT NULL REFERENCES oidc_clients(id) ON DELETE CASCADE,
    scopes           TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending',
    account_id       TEXT REFERENCES accounts(id) ON DELETE CASCADE,
    session_id       TEXT NOT NULL DEFAULT '',
    auth_time        BIGINT,
    amr              TEXT NOT NULL DEFAULT '',
    device_name      TEXT NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    last_poll_at     BIGINT,
    poll_interval    INTEGER NOT NULL DEFAULT 5
);
CREATE INDEX oidc_device_codes_expires ON oidc_device_codes(expires_at);
