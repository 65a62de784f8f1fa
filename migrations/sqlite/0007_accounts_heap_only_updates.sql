-- Live updates follow the ledger, not `accounts.updated_at`.
--
-- Every change of an account's figures writes a ledger entry in the same
-- transaction, so the live-update watcher (server/src/routes/events.rs) reads
-- new entries by id instead of accounts by `updated_at`. That index was the
-- only one on a column every spend, hold and capture changes; without it an
-- account's update no longer moves an entry in an index b-tree.
DROP INDEX accounts_updated;
