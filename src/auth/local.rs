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
    #[error("database: {0}")]
    Database(String),
}

impl From<sqlx::Error> for LocalAuthError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error.to_string())
    }
}

/// A signed-in local user and the session's CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSession {
    pub user_id: String,
    pub email: String,
    pub is_admin: bool,
    pub csrf_token: String,
}

/// A new session: the cookie token (shown once) and the CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub user_id: String,
    pub email: String,
    pub token: String,
    pub csrf_token: String,
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

/// Hashes on a blocking thread: argon2id takes tens of milliseconds on purpose.
async fn hash_password(password: String) -> Result<String, LocalAuthError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes of salt");
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|hash| hash.to_string())
    })
    .await
    .map_err(|e| LocalAuthError::Database(e.to_string()))?
    .map_err(|e| LocalAuthError::Database(e.to_string()))
}

async fn password_matches(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
    })
    .await
    .unwrap_or(false)
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
    let matches = password_matches(password.to_string(), stored).await;
    match (user_id, matches) {
        (Some(user_id), true) => start_session(pool, &user_id, &email).await,
        _ => Err(LocalAuthError::WrongCredentials),
    }
}

async fn start_session(pool: &AnyPool, user_id: &str, email: &str) -> Result<NewSession, LocalAuthError> {
    let (token, csrf_token) = (random_token(), random_token());
    let now = crate::db::now_ms();
    sqlx::query(
        "INSERT INTO local_sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
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

/// The session a cookie token belongs to, if it is live.
pub async fn session(pool: &AnyPool, token: &str) -> Result<Option<LocalSession>, sqlx::Error> {
    if token.len() != 64 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT s.user_id, s.csrf_token, u.email, u.is_admin FROM local_sessions s \
         JOIN local_users u ON u.user_id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2",
    )
    .bind(sha256(token))
    .bind(crate::db::now_ms())
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(LocalSession {
            user_id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            is_admin: row.try_get::<i64, _>("is_admin")? == 1,
            csrf_token: row.try_get("csrf_token")?,
        })
    })
    .transpose()
}

pub async fn sign_out(pool: &AnyPool, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM local_sessions WHERE token_hash = $1").bind(sha256(token)).execute(pool).await?;
    Ok(())
}

/// `credits admin promote --email`: makes a local account an admin.
pub async fn promote(pool: &AnyPool, email: &str) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("UPDATE local_users SET is_admin = 1 WHERE email = $1")
        .bind(email.trim().to_lowercase())
        .execute(pool)
        .await?;
    Ok(result.rows_affected() == 1)
}
