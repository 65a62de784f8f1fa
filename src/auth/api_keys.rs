//! Worker API keys: `crk_<32 random bytes, hex>`. Only a SHA-256 of the key is
//! stored, so the key is shown once, at creation. A key may hold, capture and
//! release for any user and read a user's figures, nothing else.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

pub const PREFIX: &str = "crk_";

/// A key as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether `key` has the shape of a worker key (checked before any hashing).
pub fn well_formed(key: &str) -> bool {
    key.starts_with(PREFIX) && key.len() <= 200
}

/// The digest a key is remembered by in memory (`service` keeps the ids of
/// keys it has verified, and confirms them where a write commits).
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Creates a key; returns its id and the secret (shown once).
pub async fn create(pool: &AnyPool, name: &str) -> Result<(String, String), String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err("--name must be 1 to 100 characters".into());
    }
    let id = format!("key_{}", hex::encode(rand::random::<[u8; 6]>()));
    let secret = format!("{PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
    sqlx::query("INSERT INTO api_keys (id, name, key_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(name)
        .bind(hash(&secret))
        .bind(crate::db::now_ms())
        .execute(pool)
        .await
        .map_err(|e| e.to_string())?;
    Ok((id, secret))
}

pub async fn list(pool: &AnyPool) -> Result<Vec<ApiKeyInfo>, sqlx::Error> {
    let rows = sqlx::query("SELECT id, name, created_at, revoked_at FROM api_keys ORDER BY created_at, id")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ApiKeyInfo {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                created_at: crate::db::rfc3339(row.try_get("created_at")?),
                revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(crate::db::rfc3339),
            })
        })
        .collect()
}

/// Revokes a key; false when no active key has that id.
pub async fn revoke(pool: &AnyPool, id: &str) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(crate::db::now_ms())
        .bind(id)
        .execute(pool)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// The id of the active key matching `key`, if any.
pub async fn verify(pool: &AnyPool, key: &str) -> Result<Option<String>, sqlx::Error> {
    if !well_formed(key) {
        return Ok(None);
    }
    let row = sqlx::query("SELECT id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
        .bind(hash(key))
        .fetch_optional(pool)
        .await?;
    row.map(|row| row.try_get("id")).transpose()
}

/// Whether the key `id` is still active, read on `conn` (inside the
/// transaction of the write it authorizes).
pub async fn active(conn: &mut sqlx::AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

/// The refusal of a key that is unknown or has been revoked.
pub fn revoked() -> super::AuthError {
    super::AuthError::Invalid("unknown or revoked API key".into())
}
