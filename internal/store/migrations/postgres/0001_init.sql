-- campusid initial schema (PostgreSQL). Times are Unix milliseconds.
CREATE TABLE accounts (
    id                  TEXT PRIMARY KEY,
    identifier          TEXT NOT NULL UNIQUE,
    display_name        TEXT NOT NULL DEFAULT '',
    given_name          TEXT NOT NULL DEFAULT '',
    family_name         TEXT NOT NULL DEFAULT '',
    establishment       TEXT NOT NULL DEFAULT '',
    state               TEXT NOT NULL DEFAULT 'provisioned',
    kind                TEXT NOT NULL DEFAULT 'regular',
    expires_at          BIGINT,
    password_hash       TEXT NOT NULL DEFAULT '',
    password_changed_at BIGINT,
    locale              TEXT NOT NULL DEFAULT '',
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE emails (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    address     TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL DEFAULT 'institutional',
    is_primary  INTEGER NOT NULL DEFAULT 0,
    verified_at BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX emails_account ON emails(account_id);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    remember     INTEGER NOT NULL DEFAULT 0,
    auth_time    BIGINT NOT NULL,
    auth_methods TEXT NOT NULL DEFAULT '',
    user_agent   TEXT NOT NULL DEFAULT '',
    ip           TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX sessions_account ON sessions(account_id);

CREATE TABLE login_flows (
    id         TEXT PRIMARY KEY,
    account_id TEXT REFERENCES accounts(id) ON DELETE CASCADE,
    identifier TEXT NOT NULL DEFAULT '',
    return_to  TEXT NOT NULL DEFAULT '',
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE email_tokens (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    purpose    TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    email_id   TEXT REFERENCES emails(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX email_tokens_account ON email_tokens(account_id, purpose);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    to_addr         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL DEFAULT '',
    lang            TEXT NOT NULL DEFAULT '',
    purpose         TEXT NOT NULL DEFAULT '',
    account_id      TEXT,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at);

CREATE TABLE outbox_attempts (
    outbox_id    TEXT NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    attempted_at BIGINT NOT NULL,
    error        TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (outbox_id, attempt)
);

CREATE TABLE audit_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    type       TEXT NOT NULL,
    account_id TEXT NOT NULL DEFAULT '',
    actor      TEXT NOT NULL DEFAULT '',
    ip         TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    details    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_account ON audit_events(account_id, at);
CREATE INDEX audit_events_at ON audit_events(at);

CREATE TABLE throttles (
    key          TEXT PRIMARY KEY,
    count        INTEGER NOT NULL,
    window_start BIGINT NOT NULL,
    last_at      BIGINT NOT NULL
);
