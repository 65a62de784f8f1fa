//! Local accounts (email + password) for when Clerk is not configured, so the
//! embedded default is usable offline. Passwords are hashed with argon2id;
//! the session cookie carries a random token stored only as its SHA-256.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

/// The session cookie (HttpOnly, SameSite=Lax).
pub const SESSION_COOKIE: &str = "credits_session";
/// The CSRF cookie, readable by the page, echoed in `x-csrf-token`.
pub const CSRF_COOKIE: &str = "credits_csrf";
pub const SESSION_DAYS: i64 = 30;
/// A session unused for this long has ended, whatever its 30 days say.
pub const SESSION_IDLE_HOURS: i64 = 24;
/// `last_seen_at` is written at most this often per session.
const SEEN_EVERY_MS: i64 = 60_000;
/// Password hashes computed at once (argon2id takes 19 MiB and tens of
/// milliseconds each); more waiting than `MAX_HASHES_WAITING` are refused
/// with `Busy`, so a flood of sign-ins cannot take the memory or the
/// blocking-thread pool.
pub const MAX_HASHES_AT_ONCE: usize = 4;
pub const MAX_HASHES_WAITING: usize = 32;
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalAuthError {
    #[error("{0}")]
    Invalid(String),
    #[error("an account with this email already exists")]
    Taken,
    #[error("wrong email or password")]
    WrongCredentials,
    /// Too many password hashes are under way; retry in a moment.
    #[error("sign-in is busy; retry in a moment")]
    Busy,
    #[error("database: {0}")]
    Database(String),
}

impl From<sqlx::Error> for LocalAuthError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error.to_string())
    }
}

/// A signed-in local user and the session's CSRF token.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalSession {
    pub user_id: String,
    pub email: String,
    pub is_admin: bool,
    pub csrf_token: String,
}

/// A new session: the cookie token (shown once) and the CSRF token.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSession {
    pub user_id: String,
    pub email: String,
    pub token: String,
    pub csrf_token: String,
}

impl std::fmt::Debug for LocalSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSession").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Checks an email and password before anything is stored.
pub fn validate(email: &str, password: &str) -> Result<String, LocalAuthError> {
    let email = email.trim().to_lowercase();
    let shape_ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.'));
    if !shape_ok {
        return Err(LocalAuthError::Invalid("enter a valid email address".into()));
    }
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(LocalAuthError::Invalid(format!(
            "the password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(email)
}

/// Bounds password hashing: `running` at once, at most `waiting` queued
/// behind them; anything beyond is refused at once with `Busy`.
pub struct HashGate {
    running: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
}

impl HashGate {
    pub const fn new(running: usize, max_waiting: usize) -> Self {
        Self {
            running: tokio::sync::Semaphore::const_new(running),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// A permit to compute one hash, or `Busy` when the queue is full.
    pub async fn enter(&self) -> Result<tokio::sync::SemaphorePermit<'_>, LocalAuthError> {
        use std::sync::atomic::Ordering;
        if let Ok(permit) = self.running.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(LocalAuthError::Busy);
        }
        let permit = self.running.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.map_err(|_| LocalAuthError::Busy)
    }

    /// Callers queued for a permit now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }
}

static HASHING: HashGate = HashGate::new(MAX_HASHES_AT_ONCE, MAX_HASHES_WAITING);

async fn hashing_permit() -> Result<tokio::sync::SemaphorePermit<'static>, LocalAuthError> {
    HASHING.enter().await
}

/// Hashes on a blocking thread: argon2id takes tens of milliseconds on purpose.
async fn hash_password(password: String) -> Result<String, LocalAuthError> {
    let _permit = hashing_permit().await?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes of salt");
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|hash| hash.to_string())
    })
    .await
    .map_err(|e| LocalAuthError::Database(e.to_string()))?
    .map_err(|e| LocalAuthError::Database(e.to_string()))
}

async fn password_matches(password: String, stored: String) -> Result<bool, LocalAuthError> {
    let _permit = hashing_permit().await?;
    let verified = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
    })
    .await;
    Ok(verified.unwrap_or(false))
}

/// Creates a local user; its ledger account is made on first use like any other.
pub async fn sign_up(pool: &AnyPool, email: &str, password: &str) -> Result<NewSession, LocalAuthError> {
    let email = validate(email, password)?;
    let hash = hash_password(password.to_string()).await?;
    let user_id = format!("local_{}", hex::encode(rand::random::<[u8; 10]>()));
    let inserted = sqlx::query(
        "INSERT INTO local_users (user_id, email, password_hash, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING RETURNING user_id",
    )
    .bind(&user_id)
    .bind(&email)
    .bind(&hash)
    .bind(crate::db::now_ms())
    .fetch_optional(pool)
    .await?;
    if inserted.is_none() {
        return Err(LocalAuthError::Taken);
    }
    start_session(pool, &user_id, &email).await
}

/// Verifies the password and starts a session.
pub async fn sign_in(pool: &AnyPool, email: &str, password: &str) -> Result<NewSession, LocalAuthError> {
    let email = email.trim().to_lowercase();
    let row = sqlx::query("SELECT user_id, password_hash FROM local_users WHERE email = $1")
        .bind(&email)
        .fetch_optional(pool)
        .await?;
    // Unknown emails cost a hash too, so timing does not reveal which exist.
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2sVJRy1gYwJ5eC8m3vCm7VdC9mBCdxFDe4nFb8Xq3a0";
    let (user_id, stored) = match &row {
        Some(row) => (Some(row.try_get::<String, _>("user_id")?), row.try_get::<String, _>("password_hash")?),
        None => (None, DUMMY.to_string()),
    };
    let matches = password_matches(password.to_string(), stored).await?;
    match (user_id, matches) {
        (Some(user_id), true) => start_session(pool, &user_id, &email).await,
        _ => Err(LocalAuthError::WrongCredentials),
    }
}

async fn start_session(pool: &AnyPool, user_id: &str, email: &str) -> Result<NewSession, LocalAuthError> {
    let (token, csrf_token) = (random_token(), random_token());
    let now = crate::db::now_ms();
    sqlx::query(
        "INSERT INTO local_sessions (token_hash, user_id, csrf_token, created_at, expires_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $4)",
    )
    .bind(sha256(&token))
    .bind(user_id)
    .bind(&csrf_token)
    .bind(now)
    .bind(now + SESSION_DAYS * 24 * 3600 * 1000)
    .execute(pool)
    .await?;
    Ok(NewSession { user_id: user_id.into(), email: email.into(), token, csrf_token })
}

/// The session a cookie token belongs to, if it is live. A request counts
/// as use: it keeps the session from its idle timeout.
pub async fn session(pool: &AnyPool, token: &str) -> Result<Option<LocalSession>, sqlx::Error> {
    let now = crate::db::now_ms();
    let Some((session, last_seen)) = live_session(pool, token, now).await? else { return Ok(None) };
    if last_seen < now - SEEN_EVERY_MS {
        sqlx::query("UPDATE local_sessions SET last_seen_at = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(sha256(token))
            .execute(pool)
            .await?;
    }
    Ok(Some(session))
}

/// Whether the session is still live, without counting as use: an open
/// event stream re-checks its session and must not keep it from idling out.
pub async fn session_is_live(pool: &AnyPool, token: &str) -> Result<bool, sqlx::Error> {
    Ok(live_session(pool, token, crate::db::now_ms()).await?.is_some())
}

async fn live_session(
    pool: &AnyPool,
    token: &str,
    now: i64,
) -> Result<Option<(LocalSession, i64)>, sqlx::Error> {
    if token.len() != 64 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT s.user_id, s.csrf_token, s.last_seen_at, u.email, u.is_admin FROM local_sessions s \
         JOIN local_users u ON u.user_id = s.user_id \
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3",
    )
    .bind(sha256(token))
    .bind(now)
    .bind(now - SESSION_IDLE_HOURS * 3600 * 1000)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        let session = LocalSession {
            user_id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            is_admin: row.try_get::<i64, _>("is_admin")? == 1,
            csrf_token: row.try_get("csrf_token")?,
        };
        Ok((session, row.try_get::<i64, _>("last_seen_at")?))
    })
    .transpose()
}

/// Ends the session of a cookie token (sign-out, or a new sign-in in the
/// same browser replacing it).
pub async fn sign_out(pool: &AnyPool, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM local_sessions WHERE token_hash = $1").bind(sha256(token)).execute(pool).await?;
    Ok(())
}

/// Deletes up to `limit` sessions that have ended (expired or idle), so the
/// table holds live sessions only.
pub async fn sweep(pool: &AnyPool, limit: i64) -> Result<u64, sqlx::Error> {
    let now = crate::db::now_ms();
    let done = sqlx::query(
        "DELETE FROM local_sessions WHERE token_hash IN (SELECT token_hash FROM local_sessions \
         WHERE expires_at <= $1 OR last_seen_at <= $2 LIMIT $3)",
    )
    .bind(now)
    .bind(now - SESSION_IDLE_HOURS * 3600 * 1000)
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// `credits admin promote --email`: makes a local account an admin.
pub async fn promote(pool: &AnyPool, email: &str) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("UPDATE local_users SET is_admin = 1 WHERE email = $1")
        .bind(email.trim().to_lowercase())
        .execute(pool)
        .await?;
    Ok(result.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashing_beyond_the_queue_is_refused_at_once() {
        let gate: &'static HashGate = Box::leak(Box::new(HashGate::new(2, 3)));
        let held = [gate.enter().await.unwrap(), gate.enter().await.unwrap()];
        let queued: Vec<_> =
            (0..3).map(|_| tokio::spawn(async move { gate.enter().await.map(drop) })).collect();
        while gate.waiting() < 3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.enter().await.err(), Some(LocalAuthError::Busy), "the queue is full");
        drop(held);
        for waiter in queued {
            assert_eq!(waiter.await.unwrap(), Ok(()), "queued callers get their turn");
        }
        assert!(gate.enter().await.is_ok(), "free again once the queue drained");
    }

    #[test]
    fn session_debug_output_shows_no_token() {
        let session = NewSession {
            user_id: "local_1".into(),
            email: "a@example.com".into(),
            token: "secret-session-token".into(),
            csrf_token: "secret-csrf".into(),
        };
        let printed = format!("{session:?}");
        assert!(!printed.contains("secret"), "{printed}");
    }
}
