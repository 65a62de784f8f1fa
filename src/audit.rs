//! The audit log: every admin action with who, what, why, when, and the
//! account's figures before and after, written in the action's transaction.

use crate::ledger::Figures;
use serde::Serialize;
use sqlx::{AnyConnection, AnyPool, Row};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target_user: Option<String>,
    pub reason: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub created_at: String,
}

/// What one audited action did.
pub struct Action<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target_user: Option<&'a str>,
    pub reason: &'a str,
    pub before: Option<&'a Figures>,
    pub after: Option<&'a Figures>,
}

pub async fn record(conn: &mut AnyConnection, action: &Action<'_>) -> Result<(), sqlx::Error> {
    let json = |figures: Option<&Figures>| figures.map(|f| serde_json::to_string(f).unwrap_or_default());
    sqlx::query(
        "INSERT INTO audit_log (actor, action, target_user, reason, before_json, after_json, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(action.actor)
    .bind(action.action)
    .bind(action.target_user)
    .bind(action.reason)
    .bind(json(action.before))
    .bind(json(action.after))
    .bind(crate::db::now_ms())
    .execute(&mut *conn)
    .await?;
    tracing::info!(actor = action.actor, action = action.action, target = ?action.target_user,
        reason = action.reason, "audited admin action");
    Ok(())
}

/// The newest entries, optionally for one user.
pub async fn list(
    pool: &AnyPool,
    target_user: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, actor, action, target_user, reason, before_json, after_json, created_at FROM audit_log \
         WHERE ($1 IS NULL OR target_user = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(target_user)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let parse = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    rows.iter()
        .map(|row| {
            Ok(AuditEntry {
                id: row.try_get("id")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                target_user: row.try_get("target_user")?,
                reason: row.try_get("reason")?,
                before: parse(row.try_get("before_json")?),
                after: parse(row.try_get("after_json")?),
                created_at: crate::db::rfc3339(row.try_get("created_at")?),
            })
        })
        .collect()
}
