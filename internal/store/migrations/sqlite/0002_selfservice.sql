-- Self-service: codes and links bound to flows, flow data, secret questions, known devices.
ALTER TABLE email_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'link';
ALTER TABLE email_tokens ADD COLUMN tries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE email_tokens ADD COLUMN flow_id TEXT NOT NULL DEFAULT '';
ALTER TABLE email_tokens ADD COLUMN sent_to TEXT NOT NULL DEFAULT '';
CREATE INDEX email_tokens_flow ON email_tokens(flow_id, purpose);

ALTER TABLE login_flows ADD COLUMN purpose TEXT NOT NULL DEFAULT 'login';
ALTER TABLE login_flows ADD COLUMN remember INTEGER NOT NULL DEFAULT 0;
ALTER TABLE login_flows ADD COLUMN browser_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE login_flows ADD COLUMN data TEXT NOT NULL DEFAULT '{}';

CREATE TABLE secret_questions (
    account_id   TEXT PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    question     TEXT NOT NULL,
    answer_hash  TEXT NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE known_devices (
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    device_hash TEXT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    PRIMARY KEY (account_id, device_hash)
);
