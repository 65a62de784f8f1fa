-- Local accounts, used when Clerk is not configured (the embedded default).
-- Passwords are argon2id PHC strings; sessions are stored as SHA-256 of the
-- cookie's token, with the CSRF token the session's forms must echo.

CREATE TABLE local_users (
    user_id       TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
    password_hash TEXT NOT NULL,
    is_admin      BIGINT NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at    BIGINT NOT NULL
);

CREATE TABLE local_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES local_users (user_id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX local_sessions_user ON local_sessions (user_id);
