-- Grants: every credit-adding entry is an identifiable block with an optional
-- start (`effective_at`) and end (`expires_at`), a priority and a category.
-- Spends and holds draw from live grants by priority, then soonest expiry,
-- then oldest; `grant_draws` records what each entry took from which grant, so
-- captures, releases, refunds and voids return to or take from the right one.

CREATE TABLE grants (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         TEXT NOT NULL REFERENCES accounts (user_id),
    -- The entry that made the grant count (NULL while it is scheduled).
    source_entry_id BIGINT UNIQUE REFERENCES ledger_entries (id),
    kind            TEXT NOT NULL CHECK (kind IN ('initial', 'purchase', 'adjust', 'referral')),
    category        TEXT NOT NULL CHECK (category IN ('free', 'paid', 'promotional')),
    amount          BIGINT NOT NULL CHECK (amount > 0 AND amount < 1000000000),
    remaining       BIGINT NOT NULL CHECK (remaining >= 0),
    held            BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0),
    used            BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0),
    -- Clawed back, adjusted away, or repaying a debt.
    removed         BIGINT NOT NULL DEFAULT 0 CHECK (removed >= 0),
    -- Left with the grant's expiry or void.
    expired         BIGINT NOT NULL DEFAULT 0 CHECK (expired >= 0),
    priority        BIGINT NOT NULL DEFAULT 50 CHECK (priority BETWEEN 0 AND 100),
    effective_at    BIGINT NOT NULL,
    expires_at      BIGINT CHECK (expires_at IS NULL OR expires_at > effective_at),
    status          TEXT NOT NULL CHECK (status IN ('scheduled', 'active', 'expired', 'voided')),
    reference       TEXT,
    reason          TEXT,
    expiring_notified BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    -- Every credit of a grant is somewhere.
    CHECK (remaining + held + used + removed + expired = amount),
    CHECK (status <> 'scheduled' OR (remaining = amount AND source_entry_id IS NULL))
);
CREATE INDEX grants_draw_order ON grants (user_id, status, priority, expires_at);
CREATE INDEX grants_due ON grants (status, expires_at);
CREATE INDEX grants_scheduled ON grants (status, effective_at);

CREATE TABLE grant_draws (
    entry_id BIGINT NOT NULL REFERENCES ledger_entries (id),
    grant_id BIGINT NOT NULL REFERENCES grants (id),
    amount   BIGINT NOT NULL CHECK (amount > 0),
    PRIMARY KEY (entry_id, grant_id)
);
CREATE INDEX grant_draws_grant ON grant_draws (grant_id);

-- When the credits of a payment expire (plan validity or subscription period end).
ALTER TABLE payments ADD COLUMN grant_expires_at BIGINT;
-- Credits a refund or dispute actually removed (clawed_back is what it aimed for;
-- credits that already expired with the grant are not taken twice).
ALTER TABLE payments ADD COLUMN removed_credits BIGINT NOT NULL DEFAULT 0;

-- The hold entry, whose draws a capture or release returns.
ALTER TABLE holds ADD COLUMN entry_id BIGINT REFERENCES ledger_entries (id);

-- Events for the operator's app and the browser, written in the same
-- transaction as their cause and delivered at least once from here.
CREATE TABLE outbox (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    event_type    TEXT NOT NULL CHECK (event_type IN ('credits.granted', 'credits.spent', 'credits.low',
                      'credits.depleted', 'credits.expiring')),
    payload       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until  BIGINT,
    delivered_at  BIGINT,
    last_error    TEXT
);
CREATE INDEX outbox_pending ON outbox (delivered_at, next_attempt_at);
CREATE INDEX outbox_user ON outbox (user_id, created_at);

-- Live updates watch for recently changed accounts.
CREATE INDEX accounts_updated ON accounts (updated_at);
