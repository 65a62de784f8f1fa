-- Who may resolve a hold, whose email may receive a payment, and which
-- payments are tests (contract §3, §4).

-- Who made each hold decides who may resolve it: one made with an API key
-- ('api_key') or by an admin for someone else ('admin') is resolved by an API
-- key or an admin only, never by the user it is for; one the user made for
-- itself ('user') also by that user. The column never changes after the
-- insert. A row that does not say is treated as a worker's, the stricter rule.
ALTER TABLE holds ADD COLUMN made_by TEXT NOT NULL DEFAULT 'api_key'
    CHECK (made_by IN ('api_key', 'user', 'admin'));
-- Holds made before this column: the actor says who made them.
UPDATE holds SET made_by = 'user' WHERE actor = user_id;
UPDATE holds SET made_by = 'admin' WHERE actor <> user_id AND actor NOT LIKE 'apikey:%';

-- A payment that names no user goes to the account whose email equals the
-- customer's only when Clerk vouches for that email (the session token's
-- `email` claim, or an address Clerk's webhook marks verified). Local
-- accounts' emails are never verified. Emails stored before this column are
-- not known to be vouched for: the user's next session token or Clerk
-- webhook marks them, and payments waiting meanwhile are kept.
ALTER TABLE accounts ADD COLUMN email_verified BIGINT NOT NULL DEFAULT 0
    CHECK (email_verified IN (0, 1));

-- A payment an admin sent through the test page: its credits are granted like
-- a purchase's but are never revenue (stats leave them out).
ALTER TABLE payments ADD COLUMN is_test BIGINT NOT NULL DEFAULT 0 CHECK (is_test IN (0, 1));
