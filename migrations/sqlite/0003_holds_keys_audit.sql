-- Holds (reserve, then capture or release), worker API keys, and the audit log.

-- A hold reserves credits for a long job. It resolves exactly once: the
-- conditional UPDATE … WHERE status = 'open' lets only one of capture, release
-- and expiry win, on any number of server processes.
CREATE TABLE holds (
    id          TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    user_id     TEXT NOT NULL REFERENCES accounts (user_id),
    amount      BIGINT NOT NULL CHECK (amount > 0 AND amount < 1000000000),
    captured    BIGINT NOT NULL DEFAULT 0 CHECK (captured >= 0 AND captured <= amount),
    status      TEXT NOT NULL CHECK (status IN ('open', 'captured', 'released', 'expired')),
    reason      TEXT CHECK (length(reason) <= 500),
    actor       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL CHECK (expires_at > created_at),
    resolved_at BIGINT,
    CHECK ((status = 'open') = (resolved_at IS NULL)),
    CHECK (status = 'captured' OR captured = 0)
);
-- The expiry sweep reads open holds by expiry time.
CREATE INDEX holds_open_expiry ON holds (status, expires_at);
CREATE INDEX holds_user ON holds (user_id, status);

-- Worker keys: only a SHA-256 of the secret is stored; the key is shown once.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    key_hash   TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Every admin action: who, what, why, when, and the figures before and after.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_user TEXT,
    reason      TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    before_json TEXT,
    after_json  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX audit_log_target ON audit_log (target_user, id);
-- Daily statistics read entries by time.
CREATE INDEX ledger_entries_created ON ledger_entries (created_at);
