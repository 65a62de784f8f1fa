//! The admin API: search users, one user's figures and ledger, batch
//! adjustments (one transaction per line, each audited), the audit log,
//! statistics and the consistency check.

use super::{user_view, CreditsService, ServiceError};
use crate::audit;
use crate::auth::Principal;
use crate::dto::{
    AdjustReport, AdminUserDetail, AdminUserSummary, AdminUsers, AuditLog, ErrorDetail, OpenHold,
};
use crate::ledger::store::{self, LedgerError};
use crate::requests::{ChangeRequest, MAX_REASON_CHARS};
use crate::writer::{Changed, CreditChange, LedgerOp};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::Row;

/// Lines one batch may carry.
pub const MAX_BATCH_LINES: usize = 1000;
/// Users one search returns.
pub const MAX_SEARCH_RESULTS: i64 = 50;

/// One line of a batch adjustment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustLine {
    pub user_id: String,
    pub action: String,
    pub amount: Value,
    pub reason: String,
}

pub use crate::dto::AdjustResult;

/// `GET /api/admin/webhooks`: the newest deliveries and the refusals per
/// provider and reason. (Here, not in `dto`, because the delivery types are
/// the webhook service's own.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDeliveries {
    pub deliveries: Vec<super::webhooks::Delivery>,
    pub rejected: Vec<super::webhooks::RejectionCount>,
}

/// Reads a batch as JSON `{"adjustments":[{userId, action, amount, reason}]}` or as
/// CSV `userId,action,amount,reason` (a header line is allowed).
pub fn parse_batch(content_type: &str, body: &[u8]) -> Result<Vec<AdjustLine>, ServiceError> {
    let invalid = |message: String| ServiceError::Invalid(message);
    let lines: Vec<AdjustLine> = if content_type.starts_with("text/csv") {
        let text = std::str::from_utf8(body).map_err(|_| invalid("the CSV must be UTF-8".into()))?;
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("userId,"))
            .map(|line| {
                let mut fields = line.splitn(4, ',');
                let mut next = || fields.next().unwrap_or("").trim().to_string();
                let (user_id, action, amount, reason) = (next(), next(), next(), next());
                let amount = amount.parse::<i64>().map(Value::from).unwrap_or(Value::String(amount));
                AdjustLine { user_id, action, amount, reason }
            })
            .collect()
    } else {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
        let object = value.as_object().ok_or_else(|| invalid("the body must be an object".into()))?;
        if let Some(unknown) = object.keys().find(|key| key.as_str() != "adjustments") {
            return Err(invalid(format!("unknown field `{unknown}`")));
        }
        let items = object
            .get("adjustments")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("`adjustments` must be a list".into()))?;
        items
            .iter()
            .map(|item| {
                let text = |name: &str| item.get(name).and_then(Value::as_str).unwrap_or("").to_string();
                AdjustLine {
                    user_id: text("userId"),
                    action: text("action"),
                    amount: item.get("amount").cloned().unwrap_or(Value::Null),
                    reason: text("reason"),
                }
            })
            .collect()
    };
    if lines.is_empty() || lines.len() > MAX_BATCH_LINES {
        return Err(invalid(format!("a batch has 1 to {MAX_BATCH_LINES} lines")));
    }
    Ok(lines)
}

impl CreditsService {
    fn require_admin(caller: &Principal) -> Result<(), ServiceError> {
        if caller.is_admin {
            Ok(())
        } else {
            Err(ServiceError::Forbidden("admins only".into()))
        }
    }

    /// `GET /api/admin/users?q=`: by user id or email, case-insensitive substring.
    pub async fn search_users(&self, caller: &Principal, query: &str) -> Result<AdminUsers, ServiceError> {
        Self::require_admin(caller)?;
        if query.chars().count() > 255 {
            return Err(ServiceError::Invalid("`q` must be at most 255 characters".into()));
        }
        let escaped = query.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        let rows = sqlx::query(
            "SELECT user_id FROM accounts WHERE lower(user_id) LIKE $1 ESCAPE '\\' \
             OR lower(COALESCE(email, '')) LIKE $1 ESCAPE '\\' \
             ORDER BY created_at DESC LIMIT $2",
        )
        .bind(&pattern)
        .bind(MAX_SEARCH_RESULTS)
        .fetch_all(&self.inner.db.pool)
        .await?;
        let mut users = Vec::new();
        let mut conn = self.inner.db.pool.acquire().await?;
        for row in rows {
            let user_id: String = row.try_get("user_id")?;
            if let Some(account) = store::load(&mut conn, &user_id).await? {
                let held = account.figures.held;
                users.push(AdminUserSummary {
                    user: user_view(&account),
                    status: account.status.as_str().to_string(),
                    held,
                });
            }
        }
        Ok(AdminUsers { users })
    }

    /// `GET /api/admin/users/{id}`: figures, ledger, open holds and audit entries.
    pub async fn user_detail(
        &self,
        caller: &Principal,
        user_id: &str,
    ) -> Result<AdminUserDetail, ServiceError> {
        Self::require_admin(caller)?;
        let mut conn = self.inner.db.pool.acquire().await?;
        let account = store::load(&mut conn, user_id).await?.ok_or(LedgerError::NoAccount)?;
        let entries = store::entries_before(&mut conn, user_id, None, 100).await?;
        let holds = sqlx::query(crate::holds::OPEN_HOLDS_OF_USER_SQL)
            .bind(user_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| {
                Ok(OpenHold {
                    hold_id: row.try_get("id")?,
                    amount: row.try_get("amount")?,
                    expires_at: crate::db::rfc3339(row.try_get("expires_at")?),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let audit = audit::list(&self.inner.db.pool, Some(user_id), 100).await?;
        Ok(AdminUserDetail {
            user: user_view(&account),
            held: account.figures.held,
            status: account.status.as_str().to_string(),
            ledger: entries.into_iter().map(super::entry_view).collect(),
            open_holds: holds,
            audit,
        })
    }

    /// `POST /api/admin/adjust`: each line in its own transaction with its audit entry.
    pub async fn adjust_batch(
        &self,
        caller: &Principal,
        lines: Vec<AdjustLine>,
    ) -> Result<AdjustReport, ServiceError> {
        Self::require_admin(caller)?;
        let actor = format!("admin:{}", caller.user_id);
        let mut results = Vec::with_capacity(lines.len());
        for (index, line) in lines.into_iter().enumerate() {
            let outcome = self.adjust_line(&actor, &line).await;
            let (ok, error, credits) = match outcome {
                Ok(figures) => (true, None, Some(figures)),
                Err(error) => {
                    let (code, message) = error.code_and_message();
                    let detail = ErrorDetail { code: code.into(), message, required: None, remaining: None };
                    (false, Some(detail), None)
                }
            };
            results.push(AdjustResult { line: index + 1, user_id: line.user_id, ok, error, credits });
        }
        let failed = results.iter().filter(|result| !result.ok).count();
        Ok(AdjustReport { succeeded: results.len() - failed, failed, results })
    }

    async fn adjust_line(
        &self,
        actor: &str,
        line: &AdjustLine,
    ) -> Result<crate::dto::CreditFigures, ServiceError> {
        let reason = line.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(ServiceError::Invalid(format!(
                "`reason` is required (1 to {MAX_REASON_CHARS} characters)"
            )));
        }
        let mut body = Map::new();
        body.insert("action".into(), Value::String(line.action.clone()));
        body.insert("amount".into(), line.amount.clone());
        body.insert("reason".into(), Value::String(reason.to_string()));
        body.insert("userId".into(), Value::String(line.user_id.clone()));
        let request = ChangeRequest::parse(&body).map_err(ServiceError::Invalid)?;
        let target = request.user_id.clone().unwrap_or_default();
        let hash =
            crate::idempotency::request_hash("POST /api/admin/adjust", &Value::Object(body).to_string());
        let change = CreditChange {
            scope: actor.to_string(),
            is_admin: true,
            target: super::user_id(&target)?,
            request,
            key: None,
            hash,
            actor: actor.to_string(),
            audit_prefix: "batch",
            cost_per_video: self.inner.settings.cost_per_video,
            received_at_ms: crate::db::now_ms(),
        };
        match self.inner.writer.submit(LedgerOp::credits(change)).await?.into_credits()? {
            Changed::Answered(answer) => Ok(answer.value.credits),
            Changed::Committed(_) => Err(ServiceError::Internal("an audited change had no answer".into())),
        }
    }

    /// `GET /api/admin/audit`.
    pub async fn audit_log(
        &self,
        caller: &Principal,
        user_id: Option<&str>,
        limit: i64,
    ) -> Result<AuditLog, ServiceError> {
        Self::require_admin(caller)?;
        Ok(AuditLog { entries: audit::list(&self.inner.db.pool, user_id, limit).await? })
    }

    /// `GET /api/admin/webhooks`.
    pub async fn webhook_deliveries(
        &self,
        caller: &Principal,
        limit: i64,
    ) -> Result<WebhookDeliveries, ServiceError> {
        Self::require_admin(caller)?;
        Ok(WebhookDeliveries {
            deliveries: self.deliveries(limit).await?,
            rejected: self.rejection_counts().await?,
        })
    }

    /// `GET /api/admin/stats?from=&to=` and `credits stats`.
    pub async fn stats(&self, from: &str, to: &str) -> Result<crate::stats::StatsReport, ServiceError> {
        let (from, to) = crate::stats::parse_range(from, to).map_err(ServiceError::Invalid)?;
        Ok(crate::stats::daily(&self.inner.db.pool, self.inner.stats_time_zone, from, to).await?)
    }
}
