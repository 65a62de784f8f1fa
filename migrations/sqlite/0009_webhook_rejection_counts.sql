-- Refused webhook deliveries (forged, unsigned, stale or unparseable) are
-- kept as counts per provider and reason plus a sample of the newest ones, so
-- a flood of forged posts cannot grow the database without bound.
-- Verified deliveries (accepted, duplicate, ignored) are logged in full as before.

-- How many deliveries were refused, per provider and reason. The reasons are
-- a fixed set (src/webhooks/mod.rs, `Rejection`): nothing an attacker sends
-- becomes a key here, so this table has at most 2 × 6 rows.
CREATE TABLE webhook_rejections (
    provider TEXT NOT NULL CHECK (provider IN ('creem', 'clerk')),
    reason   TEXT NOT NULL CHECK (reason IN ('not_configured', 'missing_signature', 'bad_signature',
                                             'bad_timestamp', 'stale_timestamp', 'unparseable')),
    count    BIGINT NOT NULL CHECK (count > 0),
    last_at  BIGINT NOT NULL,
    PRIMARY KEY (provider, reason)
);

-- The sample: a refused delivery's row in `webhook_deliveries` keeps the
-- first bytes of its body (at most 1 KiB) for the admin to see what came.
-- Only the newest rejected rows are kept (src/service/webhooks.rs deletes
-- older ones in the transaction that adds one), found through this index.
ALTER TABLE webhook_deliveries ADD COLUMN body_prefix TEXT CHECK (length(CAST(body_prefix AS BLOB)) <= 1024);
CREATE INDEX webhook_deliveries_rejected ON webhook_deliveries (id) WHERE outcome = 'rejected';

-- Refusals logged before this migration become counts, by their logged reason.
INSERT INTO webhook_rejections (provider, reason, count, last_at)
SELECT provider, reason, COUNT(*), MAX(received_at)
FROM (
    SELECT provider, received_at,
           CASE
               WHEN reason LIKE '%not configured%' THEN 'not_configured'
               WHEN reason LIKE 'missing %' THEN 'missing_signature'
               WHEN reason = 'the timestamp is not a number' THEN 'bad_timestamp'
               WHEN reason LIKE 'the timestamp is more than%' THEN 'stale_timestamp'
               WHEN reason IN ('creem-signature does not match the body', 'no signature matches') THEN 'bad_signature'
               ELSE 'unparseable'
           END AS reason
    FROM webhook_deliveries
    WHERE outcome = 'rejected'
) AS refused
GROUP BY provider, reason;

-- And only the newest 100 of them stay in the log.
DELETE FROM webhook_deliveries
WHERE outcome = 'rejected'
  AND id <= (SELECT id FROM webhook_deliveries WHERE outcome = 'rejected' ORDER BY id DESC LIMIT 1 OFFSET 100);
