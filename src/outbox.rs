//! Delivering the outbox to the operator's endpoint (`CREDITS_WEBHOOK_URL`),
//! signed the Standard Webhooks way, at least once, with exponential backoff.
//! A row is claimed with a lease (`locked_until`), so several instances may
//! deliver at once without sending one event twice in parallel.

use serde::Serialize;
use sqlx::{AnyPool, Row};
use std::time::Duration;

/// How long one delivery attempt may hold its lease.
const LEASE_MS: i64 = 30_000;
/// Backoff: 1 s, 2 s, 4 s … capped at one hour.
const MAX_BACKOFF_MS: i64 = 3_600_000;

/// Where to deliver and the signing key (from `whsec_…`).
#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
    pub key: Vec<u8>,
    pub client: reqwest::Client,
}

impl Endpoint {
    pub fn new(url: &str, secret: &str) -> Result<Self, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err("CREDITS_WEBHOOK_URL must be an http(s) URL".into());
        }
        let key = crate::webhooks::clerk::secret_key(secret)
            .map_err(|why| format!("CREDITS_WEBHOOK_SECRET {why}"))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("CREDITS_WEBHOOK_URL: {e}"))?;
        Ok(Self { url: url.to_string(), key, client })
    }
}

/// A notice as the browser sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: serde_json::Value,
    pub created_at: String,
}

/// The user's recent low, depleted and expiring notices, newest first.
pub async fn notices(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    limit: i64,
) -> Result<Vec<Notice>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, event_type, payload, created_at FROM outbox WHERE user_id = $1 \
         AND event_type IN ('credits.low', 'credits.depleted', 'credits.expiring') ORDER BY created_at DESC, id LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let payload: serde_json::Value =
                serde_json::from_str(&row.try_get::<String, _>("payload")?).unwrap_or_default();
            Ok(Notice {
                id: row.try_get("id")?,
                event_type: row.try_get("event_type")?,
                data: payload["data"].clone(),
                created_at: crate::db::rfc3339(row.try_get("created_at")?),
            })
        })
        .collect()
}

/// Delivers what is due; returns how many were delivered.
pub async fn deliver_due(pool: &AnyPool, endpoint: &Endpoint, limit: i64) -> Result<usize, sqlx::Error> {
    let now = crate::db::now_ms();
    let due = sqlx::query(
        "SELECT id FROM outbox WHERE delivered_at IS NULL AND next_attempt_at <= $1 \
         AND (locked_until IS NULL OR locked_until < $1) ORDER BY created_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut delivered = 0;
    for row in due {
        let id: String = row.try_get("id")?;
        let claimed = sqlx::query(
            "UPDATE outbox SET locked_until = $1, attempts = attempts + 1 WHERE id = $2 AND delivered_at IS NULL \
             AND (locked_until IS NULL OR locked_until < $3) RETURNING payload, attempts",
        )
        .bind(now + LEASE_MS)
        .bind(&id)
        .bind(now)
        .fetch_optional(pool)
        .await?;
        let Some(claimed) = claimed else { continue };
        let payload: String = claimed.try_get("payload")?;
        let attempts: i64 = claimed.try_get("attempts")?;
        match send(endpoint, &id, &payload).await {
            Ok(()) => {
                sqlx::query("UPDATE outbox SET delivered_at = $1, locked_until = NULL, last_error = NULL WHERE id = $2")
                    .bind(crate::db::now_ms())
                    .bind(&id)
                    .execute(pool)
                    .await?;
                metrics::counter!("outbox_delivered_total").increment(1);
                delivered += 1;
            }
            Err(error) => {
                let backoff = (1000_i64 << attempts.clamp(0, 22)).min(MAX_BACKOFF_MS);
                tracing::warn!(event_id = %id, attempts, %error, backoff_ms = backoff, "webhook delivery failed");
                sqlx::query("UPDATE outbox SET next_attempt_at = $1, locked_until = NULL, last_error = $2 WHERE id = $3")
                    .bind(crate::db::now_ms() + backoff)
                    .bind(error.chars().take(500).collect::<String>())
                    .bind(&id)
                    .execute(pool)
                    .await?;
            }
        }
    }
    Ok(delivered)
}

async fn send(endpoint: &Endpoint, id: &str, payload: &str) -> Result<(), String> {
    let timestamp = crate::db::now_ms() / 1000;
    let signature = crate::webhooks::clerk::sign(&endpoint.key, id, timestamp, payload.as_bytes());
    let response = endpoint
        .client
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(payload.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("status {}", response.status()))
    }
}
