-- The ledger: one row per user in `accounts`, one append-only row per change in
-- `ledger_entries`. Both are written in the same transaction, always.
--
-- Amounts are integer credits. Timestamps are milliseconds since the epoch.

CREATE TABLE accounts (
    user_id     TEXT PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 255),
    email       TEXT,
    name        TEXT,
    -- 'closed' accounts (Clerk user.deleted) keep their ledger but cannot spend.
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
    -- May go below zero only through a clawback; spends are guarded in the
    -- UPDATE itself and by the balance_after check on spend entries below.
    remaining   BIGINT NOT NULL,
    held        BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0),
    used        BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0),
    initial     BIGINT NOT NULL DEFAULT 0 CHECK (initial >= 0),
    bonus       BIGINT NOT NULL DEFAULT 0 CHECK (bonus >= 0),
    adjustments BIGINT NOT NULL DEFAULT 0,
    total       BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    -- The contract's invariant, held by the database on every write.
    CHECK (remaining + held + used = total),
    CHECK (total = initial + bonus + adjustments)
);

CREATE INDEX accounts_email ON accounts (email);

CREATE TABLE ledger_entries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       TEXT NOT NULL REFERENCES accounts (user_id),
    kind          TEXT NOT NULL CHECK (kind IN ('initial', 'purchase', 'spend', 'hold', 'capture',
                      'release', 'refund', 'clawback', 'adjust', 'expire', 'void')),
    -- `amount` is the change to `remaining`; the other columns change the other figures.
    amount        BIGINT NOT NULL,
    held_delta    BIGINT NOT NULL DEFAULT 0,
    used_delta    BIGINT NOT NULL DEFAULT 0,
    initial_delta BIGINT NOT NULL DEFAULT 0,
    bonus_delta   BIGINT NOT NULL DEFAULT 0,
    adjust_delta  BIGINT NOT NULL DEFAULT 0,
    balance_after BIGINT NOT NULL,
    reason        TEXT CHECK (length(reason) <= 500),
    reference     TEXT CHECK (length(reference) <= 255),
    -- Who caused it: a user id, 'admin:<id>', 'cli' or 'system'.
    actor         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    -- Every entry is balanced, so any sum of entries keeps the invariant.
    CHECK (amount + held_delta + used_delta = initial_delta + bonus_delta + adjust_delta),
    -- An entry changes something.
    CHECK (amount <> 0 OR held_delta <> 0 OR used_delta <> 0),
    -- A spend or a hold never takes remaining below zero.
    CHECK (kind NOT IN ('spend', 'hold') OR balance_after >= 0),
    CHECK (kind <> 'spend' OR (amount < 0 AND used_delta = -amount)),
    CHECK (kind <> 'initial' OR (amount > 0 AND initial_delta = amount))
);

-- History pages walk one user's entries newest first.
CREATE INDEX ledger_entries_user_id ON ledger_entries (user_id, id);
-- The initial grant happens exactly once per user.
CREATE UNIQUE INDEX ledger_entries_one_initial ON ledger_entries (user_id) WHERE kind = 'initial';

-- Idempotency keys: stored in the same transaction as the effect they guard,
-- with the response that the first request got.
CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  TEXT NOT NULL,
    status        BIGINT,
    response      TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
