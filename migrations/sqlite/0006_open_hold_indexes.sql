-- Indexes that every hold, capture and spend writes, trimmed to what is read.
--
-- Every query on holds other than by id reads open holds only (the expiry
-- sweep, `credits check`, the admin view of a user), so both secondary
-- indexes hold open holds only: a capture, release or expiry takes the hold
-- out of them instead of moving it to another key, and they stay as small as
-- the number of holds open at once instead of growing with every hold ever
-- made. Each batch of holds then writes a page or two of them instead of one
-- page per account (BENCHMARKS.md, stop 26).
DROP INDEX holds_open_expiry;
DROP INDEX holds_user;
CREATE INDEX holds_open_expiry ON holds (expires_at) WHERE status = 'open';
CREATE INDEX holds_open_user ON holds (user_id) WHERE status = 'open';

-- No query reads grant_draws by grant (they read it by entry, through its
-- primary key), and grants are never deleted nor their ids changed, so the
-- foreign key never looks there either; every draw paid for one more
-- random page write in an index that only grew.
DROP INDEX grant_draws_grant;
