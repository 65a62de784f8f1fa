-- Payments from Creem, credited exactly once, and the webhook log.
--
-- Exactly-once rests on unique constraints checked in the same transaction as
-- the grant: one row per event id, one payment per payment key (and per order,
-- and per subscription period), one reversal per refund or dispute id.

-- Every verified event id ever processed, per provider (Creem, Clerk).
CREATE TABLE webhook_events (
    provider    TEXT NOT NULL CHECK (provider IN ('creem', 'clerk')),
    event_id    TEXT NOT NULL CHECK (length(event_id) BETWEEN 1 AND 255),
    event_type  TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);

-- Every delivery, for the admin: accepted, duplicate, ignored or rejected (with
-- the reason). Rejected deliveries keep no body and no unverified ids.
CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT NOT NULL CHECK (provider IN ('creem', 'clerk')),
    event_id    TEXT,
    event_type  TEXT,
    outcome     TEXT NOT NULL CHECK (outcome IN ('accepted', 'duplicate', 'ignored', 'rejected')),
    reason      TEXT,
    received_at BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (id);

-- One row per payment. `payment_key` is `order:<order id>` for one-time
-- orders and `sub:<subscription id>:first` or `sub:<id>:<period start>` for
-- subscription payments (see src/payments.rs).
CREATE TABLE payments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_key     TEXT NOT NULL UNIQUE,
    event_id        TEXT NOT NULL,
    order_id        TEXT UNIQUE,
    transaction_id  TEXT UNIQUE,
    subscription_id TEXT,
    period_start    TEXT,
    product_id      TEXT NOT NULL,
    plan            TEXT,
    amount_cents    BIGINT NOT NULL CHECK (amount_cents >= 0),
    currency        TEXT,
    user_id         TEXT,
    customer_email  TEXT,
    -- The plan's credits at the time of payment (0 for an unknown product).
    credits         BIGINT NOT NULL CHECK (credits >= 0),
    refunded_cents  BIGINT NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0),
    clawed_back     BIGINT NOT NULL DEFAULT 0 CHECK (clawed_back >= 0 AND clawed_back <= credits),
    -- credited: granted (grant_entry_id set); pending_user: waiting for the user
    -- to appear; unknown_product: recorded, never credited; reversed: refunded or
    -- disputed in full before it could be credited.
    status          TEXT NOT NULL CHECK (status IN ('credited', 'pending_user', 'unknown_product', 'reversed')),
    grant_entry_id  BIGINT UNIQUE REFERENCES ledger_entries (id),
    created_at      BIGINT NOT NULL,
    credited_at     BIGINT,
    CHECK (status <> 'credited' OR (grant_entry_id IS NOT NULL AND user_id IS NOT NULL)),
    UNIQUE (subscription_id, period_start)
);
CREATE INDEX payments_pending ON payments (status, user_id);
CREATE INDEX payments_email ON payments (customer_email);

-- Refunds and disputes, each applied at most once.
CREATE TABLE payment_reversals (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    reversal_id  TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL CHECK (kind IN ('refund', 'dispute')),
    payment_id   BIGINT REFERENCES payments (id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    credits      BIGINT NOT NULL CHECK (credits >= 0),
    entry_id     BIGINT UNIQUE REFERENCES ledger_entries (id),
    created_at   BIGINT NOT NULL
);

-- Checkouts this server created at Creem (request_id is echoed back in the webhook).
CREATE TABLE checkouts (
    request_id  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    plan        TEXT NOT NULL,
    product_id  TEXT NOT NULL,
    checkout_id TEXT,
    created_at  BIGINT NOT NULL
);
