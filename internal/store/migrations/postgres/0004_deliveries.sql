-- deliveries: durable, retried HTTP back-channel deliveries (OpenID Connect
-- back-channel logout tokens; later CAS logoutRequest). A row is queued in
-- the transaction of the change that causes it; the delivery worker of any
-- node claims due rows with a lease (locked_until), POSTs body with
-- content_type to url, and records every attempt. States: pending, delivered,
-- failed (gave up: permanent refusal or older than the maximum age).
-- Times are Unix milliseconds.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,             -- e.g. oidc_backchannel_logout
    url             TEXT NOT NULL,
    body            TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    subject         TEXT NOT NULL DEFAULT '',  -- what it is about (e.g. client id), for logs
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX deliveries_due ON deliveries(state, next_attempt_at);

-- delivery_attempts: one row per attempt; status is the HTTP status (0 when
-- no answer).
CREATE TABLE delivery_attempts (
    delivery_id  TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    attempted_at BIGINT NOT NULL,
    status       INTEGER NOT NULL DEFAULT 0,
    error        TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, attempt)
);

-- session_logouts: the ended single sign-on sessions whose logout has been
-- propagated (access tokens revoked, back-channel logout tokens queued).
-- Sessions end in many places (sign-out, the account page, password change
-- and reset, disabling); the delivery worker picks up every newly revoked
-- session not yet here, so no path can forget it.
CREATE TABLE session_logouts (
    session_id   TEXT PRIMARY KEY,
    processed_at BIGINT NOT NULL
);
CREATE INDEX sessions_revoked ON sessions(revoked_at);
