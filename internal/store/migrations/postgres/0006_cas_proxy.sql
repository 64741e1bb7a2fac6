-- CAS proxy tickets (docs/cas.md, "Proxy tickets").
-- cas_tickets.proxies: for a proxy ticket (PT-), the proxy chain, the
-- callback URLs (pgtUrl) most recent first, space-separated; '' for a
-- service ticket.
ALTER TABLE cas_tickets ADD COLUMN proxies TEXT NOT NULL DEFAULT '';

-- cas_pgts: proxy-granting tickets. A PGT is a bearer secret that lives as
-- long as the session it came from (it dies with a sign-out), so only its
-- SHA-256 is kept. service_id is the service that received it (through its
-- pgtUrl); proxies is the chain the proxy tickets it grants will carry.
CREATE TABLE cas_pgts (
    id_hash     TEXT PRIMARY KEY,
    service_id  TEXT NOT NULL REFERENCES cas_services(id) ON DELETE CASCADE,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    session_id  TEXT NOT NULL,
    auth_time   BIGINT NOT NULL,
    long_term   INTEGER NOT NULL DEFAULT 0,
    proxies     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX cas_pgts_session ON cas_pgts(session_id);
