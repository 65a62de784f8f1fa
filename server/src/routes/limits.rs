//! Request bounds: every body is capped before anyone reads it.

use crate::rate_limit::{RateLimiter, RouteClass};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use credits::security::client_ip::rate_limit_key;
use credits::service::CreditsService;
use std::sync::Arc;

/// The largest request body accepted anywhere (webhooks included).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Refuses a declared oversized body with 413 and caps undeclared ones: a
/// chunked body that runs past the limit fails to read and is refused.
pub async fn limit_body(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        let message = format!("request bodies are limited to {MAX_BODY_BYTES} bytes");
        return super::HttpError::PayloadTooLarge(message).into_response();
    }
    let (parts, body) = request.into_parts();
    let body = Body::new(http_body_util::Limited::new(body, MAX_BODY_BYTES));
    next.run(Request::from_parts(parts, body)).await
}

/// Which limit a request counts against, if any.
fn class_of(method: &Method, path: &str) -> Option<RouteClass> {
    if method != Method::POST {
        return None;
    }
    match path {
        "/api/auth/sign-in" => Some(RouteClass::SignIn),
        "/api/auth/sign-up" => Some(RouteClass::SignUp),
        "/api/credits" => Some(RouteClass::Spend),
        "/api/checkout" => Some(RouteClass::Checkout),
        _ if path.starts_with("/api/holds") => Some(RouteClass::Spend),
        _ if path.starts_with("/api/webhooks/") => Some(RouteClass::Webhook),
        _ => None,
    }
}

/// Applies `[rate_limits]`: per client (`client::identify`; an IPv6 client
/// by its /64), and per verified caller where the request carries a valid
/// session or API key. 429 with `Retry-After`.
pub async fn rate_limit(
    State((service, limiter)): State<(CreditsService, Arc<RateLimiter>)>,
    request: Request,
    next: Next,
) -> Response {
    let Some(class) = class_of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let client = super::client::client_of(request.extensions());
    let mut verdict = limiter.check(class, &format!("ip:{}", rate_limit_key(client.ip)));
    if verdict.is_ok() && limiter.enabled(class) {
        if let Ok(caller) = service.authenticate(&Method::GET, request.headers()).await {
            verdict = limiter.check(class, &format!("user:{}", caller.user_id));
        }
    }
    match verdict {
        Ok(()) => next.run(request).await,
        Err(retry_after) => too_many(retry_after),
    }
}

/// 429 `rate_limited` with `Retry-After` in whole seconds.
pub fn too_many(retry_after: std::time::Duration) -> Response {
    metrics::counter!("rate_limited_total").increment(1);
    super::HttpError::RateLimited(retry_after).into_response()
}
