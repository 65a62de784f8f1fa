//! `Idempotency-Key`: the key is claimed in the same transaction as the effect
//! it guards and stores the first response, so a replay returns that response
//! and changes nothing. A refused request rolls back and leaves no key behind,
//! so the client may retry it with the same key once the cause is fixed.

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

/// The contract's bound on key length.
pub const MAX_KEY_CHARS: usize = 255;

/// A validated key: 1..=255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > MAX_KEY_CHARS {
            return Err(format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters"));
        }
        if !raw.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err("Idempotency-Key must be visible ASCII characters".into());
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A digest of what the request asked for, to tell a replay from a reuse.
pub fn request_hash(route: &str, canonical_body: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update([0]);
    hasher.update(canonical_body.as_bytes());
    hex::encode(hasher.finalize())
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: go ahead, then `complete` in the same transaction.
    New,
    /// Seen before with the same request: here is the first response.
    Replay { status: i64, body: String },
    /// Seen before with a different request.
    Conflict,
}

/// Claims `key` for `scope` (the caller). Starts with a write, as every write
/// transaction here does; a concurrent claimant waits for this one's outcome.
pub async fn claim(
    conn: &mut AnyConnection,
    scope: &str,
    key: &IdempotencyKey,
    hash: &str,
) -> Result<Claim, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (scope, key) DO NOTHING RETURNING key",
    )
    .bind(scope)
    .bind(key.as_str())
    .bind(hash)
    .bind(crate::db::now_ms())
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        return Ok(Claim::New);
    }
    let row = sqlx::query(
        "SELECT request_hash, status, response FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key.as_str())
    .fetch_one(&mut *conn)
    .await?;
    let stored_hash: String = row.try_get("request_hash")?;
    if stored_hash != hash {
        return Ok(Claim::Conflict);
    }
    let status: Option<i64> = row.try_get("status")?;
    let body: Option<String> = row.try_get("response")?;
    match (status, body) {
        (Some(status), Some(body)) => Ok(Claim::Replay { status, body }),
        // A committed key always has its response; this row is being written now.
        _ => Ok(Claim::Conflict),
    }
}

/// Frees a key claimed in this transaction by a request that was then refused
/// (inside a shared transaction the claim would otherwise commit).
pub async fn forget(conn: &mut AnyConnection, scope: &str, key: &IdempotencyKey) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL")
        .bind(scope)
        .bind(key.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores the response of the request that claimed the key.
pub async fn complete(
    conn: &mut AnyConnection,
    scope: &str,
    key: &IdempotencyKey,
    status: i64,
    body: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE idempotency_keys SET status = $1, response = $2 WHERE scope = $3 AND key = $4")
        .bind(status)
        .bind(body)
        .bind(scope)
        .bind(key.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_visible() {
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
    }

    #[test]
    fn the_hash_separates_routes_and_bodies() {
        assert_ne!(request_hash("a", "{}"), request_hash("b", "{}"));
        assert_ne!(request_hash("a", "{\"x\":1}"), request_hash("a", "{\"x\":2}"));
        assert_eq!(request_hash("a", "{}"), request_hash("a", "{}"));
    }
}
