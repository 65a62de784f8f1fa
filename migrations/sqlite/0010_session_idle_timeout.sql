-- Local sessions end after a spell of no use as well as at their 30 days: a
-- cookie left on a shared computer stops working within the idle timeout.
-- `last_seen_at` is refreshed at most once a minute per session, so reading
-- a session rarely writes.

ALTER TABLE local_sessions ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
UPDATE local_sessions SET last_seen_at = created_at;
-- The sweep deletes ended sessions by these times.
CREATE INDEX local_sessions_expires ON local_sessions (expires_at);
CREATE INDEX local_sessions_last_seen ON local_sessions (last_seen_at);
