//! Alerts: `credits.granted`, `credits.spent`, `credits.low`, `credits.depleted`
//! and `credits.expiring`, written to the outbox in the same transaction as the
//! change that caused them. Low and depleted fire once per crossing: when the
//! balance goes from at-or-above the threshold to below it.

use crate::exec::Exec;
use crate::ledger::{Delta, EntryKind};
use serde_json::json;
use sqlx::AnyConnection;
use std::sync::OnceLock;

/// Thresholds (`[alerts]` in the config file); process-wide, set at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertSettings {
    /// `credits.low` when `remaining` falls below this (default: one video).
    pub low_balance: i64,
    /// `credits.expiring` this many days before a grant's expiry.
    pub expiring_within_days: i64,
}

static SETTINGS: OnceLock<AlertSettings> = OnceLock::new();

/// Sets the thresholds once per process (later calls keep the first).
pub fn configure(settings: AlertSettings) {
    let _ = SETTINGS.set(settings);
}

pub fn settings() -> AlertSettings {
    *SETTINGS.get_or_init(|| AlertSettings { low_balance: 10, expiring_within_days: 3 })
}

/// `credits.granted` and `credits.spent` go only to the operator's endpoint, so
/// they are queued only once one is configured (`CREDITS_WEBHOOK_URL`); the
/// notices (`low`, `depleted`, `expiring`) are queued always, for the browser.
static ACTIVITY_EVENTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn enable_activity_events() {
    ACTIVITY_EVENTS.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn activity_events() -> bool {
    ACTIVITY_EVENTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Queues one event for the operator's endpoint and the user's notices.
pub async fn emit(
    conn: &mut AnyConnection,
    user_id: &str,
    event_type: &str,
    data: serde_json::Value,
    now: i64,
) -> Result<(), sqlx::Error> {
    queue(conn, user_id, event_type, data, now).await
}

/// `emit` on either connection of a batch (`exec`).
async fn queue<C: Exec>(
    conn: &mut C,
    user_id: &str,
    event_type: &str,
    data: serde_json::Value,
    now: i64,
) -> Result<(), sqlx::Error> {
    let id = format!("msg_{}", hex::encode(rand::random::<[u8; 12]>()));
    let mut data = data;
    data["userId"] = json!(user_id);
    let payload = json!({"type": event_type, "timestamp": crate::db::rfc3339(now), "data": data}).to_string();
    conn.execute(
        "INSERT INTO outbox (id, user_id, event_type, payload, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $5)",
        vec![id.into(), user_id.into(), event_type.into(), payload.into(), now.into()],
    )
    .await?;
    Ok(())
}

/// The events one ledger entry causes.
pub(crate) async fn on_entry<C: Exec>(
    conn: &mut C,
    user_id: &str,
    delta: &Delta,
    remaining: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let kind = delta.kind.expect("an entry has a kind");
    let before = remaining - delta.remaining;
    match kind {
        EntryKind::Initial | EntryKind::Purchase | EntryKind::Adjust
            if delta.remaining > 0 && activity_events() =>
        {
            queue(
                conn,
                user_id,
                "credits.granted",
                json!({"amount": delta.remaining, "kind": kind.as_str(), "remaining": remaining}),
                now,
            )
            .await?;
        }
        EntryKind::Spend | EntryKind::Capture if activity_events() => {
            queue(
                conn,
                user_id,
                "credits.spent",
                json!({"amount": delta.used, "kind": kind.as_str(), "remaining": remaining}),
                now,
            )
            .await?;
        }
        _ => {}
    }
    let low = settings().low_balance;
    if before > 0 && remaining <= 0 {
        queue(conn, user_id, "credits.depleted", json!({"remaining": remaining}), now).await?;
    } else if before >= low && remaining < low {
        queue(conn, user_id, "credits.low", json!({"remaining": remaining, "threshold": low}), now).await?;
    }
    Ok(())
}

/// `credits.expiring`, once per grant, when a live grant with unspent credits
/// comes within `expiring_within_days` of its expiry.
pub async fn expiring_notices(pool: &sqlx::AnyPool, limit: i64) -> Result<usize, sqlx::Error> {
    use sqlx::Row;
    let now = crate::db::now_ms();
    let horizon = now + settings().expiring_within_days * 86_400_000;
    let due = sqlx::query(
        "SELECT id FROM grants WHERE status = 'active' AND expiring_notified = 0 AND remaining > 0 \
         AND expires_at IS NOT NULL AND expires_at <= $1 LIMIT $2",
    )
    .bind(horizon)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut sent = 0;
    for row in due {
        let mut tx = pool.begin().await?;
        let claimed = sqlx::query(
            "UPDATE grants SET expiring_notified = 1 WHERE id = $1 AND expiring_notified = 0 \
             RETURNING user_id, remaining, expires_at",
        )
        .bind(row.try_get::<i64, _>("id")?)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(grant) = claimed {
            let user_id: String = grant.try_get("user_id")?;
            let data = json!({"grantId": row.try_get::<i64, _>("id")?, "amount": grant.try_get::<i64, _>("remaining")?,
                              "expiresAt": crate::db::rfc3339(grant.try_get("expires_at")?)});
            emit(&mut tx, &user_id, "credits.expiring", data, now).await?;
            sent += 1;
        }
        tx.commit().await?;
    }
    Ok(sent)
}
