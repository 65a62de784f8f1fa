//! `GET /api/openapi.json`: the OpenAPI document, generated with utoipa from
//! the DTO types of `credits::dto` and the route declarations below (the
//! declaration functions are read by the derive, never called).
#![allow(dead_code)]

use axum::routing::get;
use axum::Router;
use credits::dto::{
    CheckoutResponse, CreditFigures, CreditsView, EntryView, ErrorBody, ErrorDetail, GrantView, HistoryPage,
    HoldView, NextExpiry, NoticeView, SyncResponse, UserView,
};
use utoipa::OpenApi;

/// Every route of the contract. The functions below exist only to carry the
/// `#[utoipa::path]` declarations that the derive reads.
#[derive(OpenApi)]
#[openapi(
    info(title = "Credits", description = "A payments-grade credits ledger for SaaS apps"),
    paths(
        get_credits,
        post_credits,
        history,
        get_user_sync,
        post_user_sync,
        checkout,
        create_hold,
        capture_hold,
        release_hold,
        creem_webhook,
        clerk_webhook,
        test_creem,
        admin_users,
        admin_user,
        admin_adjust,
        admin_webhooks,
        admin_payments,
        admin_audit,
        admin_stats,
        admin_check,
        healthz,
        metrics_text,
        openapi_json
    ),
    components(schemas(
        GrantView,
        NextExpiry,
        NoticeView,
        CreditsView,
        CreditFigures,
        EntryView,
        HistoryPage,
        UserView,
        SyncResponse,
        HoldView,
        CheckoutResponse,
        ErrorBody,
        ErrorDetail
    ))
)]
pub struct ApiDoc;

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/api/openapi.json", get(|| async { axum::Json(ApiDoc::openapi()) }))
}

#[utoipa::path(get, path = "/api/credits", params(("userId" = Option<String>, Query, description = "admins and API keys: another user")),
    responses((status = 200, body = CreditsView), (status = 401, body = ErrorBody)))]
fn get_credits() {}

#[utoipa::path(post, path = "/api/credits", request_body = serde_json::Value,
    params(("Idempotency-Key" = Option<String>, Header, description = "at most 255 characters")),
    responses((status = 200, body = CreditsView), (status = 400, body = ErrorBody), (status = 402, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
fn post_credits() {}

#[utoipa::path(get, path = "/api/credits/history", params(("limit" = Option<i64>, Query), ("before" = Option<i64>, Query)),
    responses((status = 200, body = HistoryPage)))]
fn history() {}

#[utoipa::path(get, path = "/api/credits/events",
    responses((status = 200, description = "text/event-stream: an event `credits` with the GET shape on every change")))]
fn events() {}

#[utoipa::path(get, path = "/api/user/sync", responses((status = 200, body = UserView)))]
fn get_user_sync() {}

#[utoipa::path(post, path = "/api/user/sync", responses((status = 200, body = SyncResponse)))]
fn post_user_sync() {}

#[utoipa::path(post, path = "/api/checkout", request_body = serde_json::Value,
    responses((status = 200, body = CheckoutResponse), (status = 502, body = ErrorBody)))]
fn checkout() {}

#[utoipa::path(post, path = "/api/holds", request_body = serde_json::Value,
    responses((status = 200, body = HoldView), (status = 402, body = ErrorBody)))]
fn create_hold() {}

#[utoipa::path(post, path = "/api/holds/{id}/capture", params(("id" = String, Path)), request_body = serde_json::Value,
    responses((status = 200, body = HoldView), (status = 409, body = ErrorBody)))]
fn capture_hold() {}

#[utoipa::path(post, path = "/api/holds/{id}/release", params(("id" = String, Path)),
    responses((status = 200, body = HoldView), (status = 409, body = ErrorBody)))]
fn release_hold() {}

#[utoipa::path(post, path = "/api/webhooks/creem", request_body = serde_json::Value,
    responses((status = 200, description = "processed or duplicate"), (status = 401, body = ErrorBody)))]
fn creem_webhook() {}

#[utoipa::path(post, path = "/api/webhooks/clerk", request_body = serde_json::Value,
    responses((status = 200, description = "processed or duplicate"), (status = 401, body = ErrorBody)))]
fn clerk_webhook() {}

#[utoipa::path(get, path = "/api/test-creem", responses((status = 200, body = serde_json::Value)))]
fn test_creem() {}

#[utoipa::path(get, path = "/api/admin/users", params(("q" = Option<String>, Query)), responses((status = 200, body = serde_json::Value)))]
fn admin_users() {}

#[utoipa::path(get, path = "/api/admin/users/{id}", params(("id" = String, Path)), responses((status = 200, body = serde_json::Value)))]
fn admin_user() {}

#[utoipa::path(post, path = "/api/admin/adjust", request_body(content = serde_json::Value, description = "JSON {adjustments:[…]} or text/csv"),
    responses((status = 200, body = serde_json::Value)))]
fn admin_adjust() {}

#[utoipa::path(get, path = "/api/admin/webhooks", responses((status = 200, body = serde_json::Value)))]
fn admin_webhooks() {}

#[utoipa::path(get, path = "/api/admin/payments", params(("status" = Option<String>, Query)), responses((status = 200, body = serde_json::Value)))]
fn admin_payments() {}

#[utoipa::path(get, path = "/api/admin/audit", responses((status = 200, body = serde_json::Value)))]
fn admin_audit() {}

#[utoipa::path(get, path = "/api/admin/stats", params(("from" = String, Query), ("to" = String, Query)),
    responses((status = 200, body = serde_json::Value)))]
fn admin_stats() {}

#[utoipa::path(get, path = "/api/admin/check", responses((status = 200, body = serde_json::Value)))]
fn admin_check() {}

#[utoipa::path(post, path = "/api/admin/grants/{id}/void", params(("id" = i64, Path)), request_body = serde_json::Value,
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody)))]
fn void_grant() {}

#[utoipa::path(get, path = "/healthz", responses((status = 200, body = serde_json::Value)))]
fn healthz() {}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text")))]
fn metrics_text() {}

#[utoipa::path(get, path = "/api/openapi.json", responses((status = 200, description = "this document")))]
fn openapi_json() {}
