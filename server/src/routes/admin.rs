//! `/api/admin/*`, all of it (admins only): users, batch adjustments, the
//! audit log, statistics, the consistency check, grant voids, webhook
//! deliveries and recorded payments. The admin page calls these same routes
//! from the browser (`credits_app::api::admin`).

use super::{caller, ApiQuery, HttpError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method};
use axum::routing::{get, post};
use axum::{Json, Router};
use credits::auth::Principal;
use credits::dto::{AdjustReport, AdminUsers, PaymentList, VoidedGrant};
use credits::ledger::check::CheckReport;
use credits::service::{parse_batch, CreditsService, ServiceError};
use credits::stats::StatsReport;
use serde::Deserialize;

/// Page size bound for admin lists.
pub const MAX_ADMIN_PAGE: i64 = 500;

pub fn router<S>(service: CreditsService) -> Router<S> {
    Router::new()
        .route("/api/admin/users", get(search))
        .route("/api/admin/users/{id}", get(user))
        .route("/api/admin/adjust", post(adjust))
        .route("/api/admin/audit", get(audit))
        .route("/api/admin/stats", get(stats))
        .route("/api/admin/check", get(check))
        .route("/api/admin/grants/{id}/void", post(void_grant))
        .route("/api/admin/webhooks", get(webhooks))
        .route("/api/admin/payments", get(payments))
        .with_state(service)
}

/// The caller, if an admin. `method` is the request's: a cookie session's write needs its CSRF token.
async fn admin(
    service: &CreditsService,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Principal, HttpError> {
    let caller = caller(service, method, headers).await?;
    if caller.is_admin {
        Ok(caller)
    } else {
        Err(ServiceError::Forbidden("admins only".into()).into())
    }
}

/// `limit` of an admin list: 100 unless given, 1 to `MAX_ADMIN_PAGE`.
fn page(limit: Option<i64>) -> Result<i64, ServiceError> {
    let limit = limit.unwrap_or(100);
    if (1..=MAX_ADMIN_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ServiceError::Invalid(format!("`limit` must be 1 to {MAX_ADMIN_PAGE}")))
    }
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search(
    State(service): State<CreditsService>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<AdminUsers>, HttpError> {
    let caller = admin(&service, &Method::GET, &headers).await?;
    Ok(Json(service.search_users(&caller, &query.q).await?))
}

async fn user(
    State(service): State<CreditsService>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<credits::dto::AdminUserDetail>, HttpError> {
    let caller = admin(&service, &Method::GET, &headers).await?;
    Ok(Json(service.user_detail(&caller, &id).await?))
}

/// JSON `{"adjustments":[…]}` or CSV `userId,action,amount,reason`.
async fn adjust(
    State(service): State<CreditsService>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<AdjustReport>, HttpError> {
    let caller = admin(&service, &Method::POST, &headers).await?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let lines = parse_batch(content_type, &body)?;
    Ok(Json(service.adjust_batch(&caller, lines).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditQuery {
    user_id: Option<String>,
    limit: Option<i64>,
}

async fn audit(
    State(service): State<CreditsService>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<credits::dto::AuditLog>, HttpError> {
    let caller = admin(&service, &Method::GET, &headers).await?;
    let limit = page(query.limit)?;
    Ok(Json(service.audit_log(&caller, query.user_id.as_deref(), limit).await?))
}

#[derive(Deserialize)]
struct StatsQuery {
    from: Option<String>,
    to: Option<String>,
}

async fn stats(
    State(service): State<CreditsService>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<StatsReport>, HttpError> {
    admin(&service, &Method::GET, &headers).await?;
    let (Some(from), Some(to)) = (query.from, query.to) else {
        return Err(ServiceError::Invalid("`from` and `to` (YYYY-MM-DD) are required".into()).into());
    };
    Ok(Json(service.stats(&from, &to).await?))
}

async fn check(
    State(service): State<CreditsService>,
    headers: HeaderMap,
) -> Result<Json<CheckReport>, HttpError> {
    admin(&service, &Method::GET, &headers).await?;
    Ok(Json(service.check().await?))
}

/// `{"reason"}`: the grant's unspent rest leaves the account.
async fn void_grant(
    State(service): State<CreditsService>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<VoidedGrant>, HttpError> {
    let caller = caller(&service, &Method::POST, &headers).await?;
    let body = super::json_object(&body)?;
    if let Some(unknown) = body.keys().find(|key| key.as_str() != "reason") {
        return Err(ServiceError::Invalid(format!("unknown field `{unknown}`")).into());
    }
    let reason = body.get("reason").and_then(|value| value.as_str()).unwrap_or("");
    Ok(Json(service.void_grant(&caller, id, reason).await?))
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<i64>,
}

/// The newest deliveries (accepted, duplicate, ignored, and the newest
/// rejected ones) and how many were rejected, per provider and reason.
async fn webhooks(
    State(service): State<CreditsService>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<impl serde::Serialize>, HttpError> {
    let caller = admin(&service, &Method::GET, &headers).await?;
    let limit = page(query.limit)?;
    Ok(Json(service.webhook_deliveries(&caller, limit).await?))
}

#[derive(Deserialize)]
struct PaymentsQuery {
    status: Option<String>,
    limit: Option<i64>,
}

/// Recorded payments, newest first; `?status=unknown_product` for one status.
async fn payments(
    State(service): State<CreditsService>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<PaymentsQuery>,
) -> Result<Json<PaymentList>, HttpError> {
    admin(&service, &Method::GET, &headers).await?;
    let limit = page(query.limit)?;
    Ok(Json(PaymentList { payments: service.payments(query.status.as_deref(), limit).await? }))
}
