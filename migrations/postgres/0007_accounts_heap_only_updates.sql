-- Live updates follow the ledger, not `accounts.updated_at`.
--
-- Every change of an account's figures writes a ledger entry in the same
-- transaction, so the live-update watcher (server/src/routes/events.rs) reads
-- new entries by id instead of accounts by `updated_at`. That index was the
-- only one on a column every spend, hold and capture changes: without it, an
-- account's update changes no indexed column and PostgreSQL can make it
-- heap-only (HOT), writing no index entry at all, instead of a new entry in
-- each of the table's three indexes per update. The free space a fill factor
-- leaves on each page lets the new version stay on its row's page.
DROP INDEX accounts_updated;
ALTER TABLE accounts SET (fillfactor = 80);
