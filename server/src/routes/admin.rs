//! The admin API (admins only): users, batch adjustments, audit, stats, check.
//! `GET /api/admin/webhooks` and `/api/admin/payments` are server functions.

use super::{api_error, caller};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use credits::service::{parse_batch, CreditsService, ServiceError};
use serde::Deserialize;

pub fn router<S>(service: CreditsService) -> Router<S> {
    Router::new()
        .route("/api/admin/users", get(search))
        .route("/api/admin/users/{id}", get(user))
        .route("/api/admin/adjust", post(adjust))
        .route("/api/admin/audit", get(audit))
        .route("/api/admin/stats", get(stats))
        .route("/api/admin/check", get(check))
        .route("/api/admin/grants/{id}/void", post(void_grant))
        .with_state(service)
}

/// The caller, if an admin. `method` is the request's: a cookie session's write needs its CSRF token.
async fn admin(
    service: &CreditsService,
    method: &Method,
    headers: &HeaderMap,
) -> Result<credits::auth::Principal, Response> {
    let caller = caller(service, method, headers).await?;
    if caller.is_admin {
        Ok(caller)
    } else {
        Err(api_error(ServiceError::Forbidden("admins only".into())))
    }
}

fn done<T: serde::Serialize>(result: Result<T, Response>) -> Response {
    result.map_or_else(|response| response, |value| Json(value).into_response())
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search(
    State(service): State<CreditsService>,
    headers: HeaderMap,
    Query(query): Query<SearchQuery>,
) -> Response {
    done(
        async {
            let caller = admin(&service, &Method::GET, &headers).await?;
            service.search_users(&caller, &query.q).await.map_err(api_error)
        }
        .await,
    )
}

async fn user(State(service): State<CreditsService>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    done(
        async {
            let caller = admin(&service, &Method::GET, &headers).await?;
            service.user_detail(&caller, &id).await.map_err(api_error)
        }
        .await,
    )
}

async fn adjust(State(service): State<CreditsService>, headers: HeaderMap, body: Bytes) -> Response {
    done(
        async {
            let caller = admin(&service, &Method::POST, &headers).await?;
            let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let lines = parse_batch(content_type, &body).map_err(api_error)?;
            service.adjust_batch(&caller, lines).await.map_err(api_error)
        }
        .await,
    )
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
    Query(query): Query<AuditQuery>,
) -> Response {
    done(
        async {
            let caller = admin(&service, &Method::GET, &headers).await?;
            let limit = query.limit.unwrap_or(100);
            if !(1..=500).contains(&limit) {
                return Err(api_error(ServiceError::Invalid("`limit` must be 1 to 500".into())));
            }
            service.audit_log(&caller, query.user_id.as_deref(), limit).await.map_err(api_error)
        }
        .await,
    )
}

#[derive(Deserialize)]
struct StatsQuery {
    from: Option<String>,
    to: Option<String>,
}

async fn stats(
    State(service): State<CreditsService>,
    headers: HeaderMap,
    Query(query): Query<StatsQuery>,
) -> Response {
    done(
        async {
            admin(&service, &Method::GET, &headers).await?;
            let (Some(from), Some(to)) = (query.from, query.to) else {
                return Err(api_error(ServiceError::Invalid(
                    "`from` and `to` (YYYY-MM-DD) are required".into(),
                )));
            };
            service.stats(&from, &to).await.map_err(api_error)
        }
        .await,
    )
}

async fn check(State(service): State<CreditsService>, headers: HeaderMap) -> Response {
    done(
        async {
            admin(&service, &Method::GET, &headers).await?;
            service.check().await.map_err(api_error)
        }
        .await,
    )
}

async fn void_grant(
    State(service): State<CreditsService>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    done(
        async {
            let caller = caller(&service, &Method::POST, &headers).await?;
            let body = super::json_object(&body).map_err(api_error)?;
            if let Some(unknown) = body.keys().find(|key| key.as_str() != "reason") {
                return Err(api_error(ServiceError::Invalid(format!("unknown field `{unknown}`"))));
            }
            let reason = body.get("reason").and_then(|value| value.as_str()).unwrap_or("");
            service.void_grant(&caller, id, reason).await.map_err(api_error)
        }
        .await,
    )
}
