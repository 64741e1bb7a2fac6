-- cas_services: the CAS service registry (docs/cas.md). url_pattern is
-- matched per match_kind: exact (after normalising), prefix (on a path
-- boundary) or regex (anchored). attributes: space-separated names released
-- by /cas/p3/serviceValidate. source: config (cas.services) or cli.
CREATE TABLE cas_services (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    url_pattern TEXT NOT NULL,
    match_kind  TEXT NOT NULL DEFAULT 'exact',
    attributes  TEXT NOT NULL DEFAULT '',
    allow_proxy INTEGER NOT NULL DEFAULT 0,
    logout_url  TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- cas_tickets: service tickets (ST-...). Single use: validation consumes a
-- ticket with one conditional UPDATE (used_at IS NULL), successful or not.
-- service_url is the normalised service the ticket was issued for. The id is
-- kept (not hashed): it lives seconds, is useless once used, and the single
-- logout request must name it. Times are Unix milliseconds.
CREATE TABLE cas_tickets (
    id          TEXT PRIMARY KEY,
    service_id  TEXT NOT NULL REFERENCES cas_services(id) ON DELETE CASCADE,
    service_url TEXT NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    session_id  TEXT NOT NULL,
    auth_time   BIGINT NOT NULL,
    renewed     INTEGER NOT NULL DEFAULT 0,
    long_term   INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX cas_tickets_session ON cas_tickets(session_id);
CREATE INDEX cas_tickets_expires ON cas_tickets(expires_at);
