//! `POST /api/webhooks/creem` and `POST /api/webhooks/clerk`: plain axum
//! routes, because the signature covers the raw bytes of the body.

use super::HttpError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use credits::service::{CreditsService, ServiceError};
use credits::webhooks::clerk;

pub fn router<S>(service: CreditsService) -> Router<S> {
    Router::new()
        .route("/api/webhooks/creem", post(creem_webhook))
        .route("/api/webhooks/clerk", post(clerk_webhook))
        .with_state(service)
}

fn header<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| headers.get(*name)).and_then(|value| value.to_str().ok())
}

async fn creem_webhook(State(service): State<CreditsService>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = header(&headers, &["creem-signature"]);
    match service.creem_webhook(signature, &body).await {
        Ok(outcome) => axum::Json(outcome).into_response(),
        Err(error) => error_response(error),
    }
}

async fn clerk_webhook(State(service): State<CreditsService>, headers: HeaderMap, body: Bytes) -> Response {
    let svix = clerk::Headers {
        id: header(&headers, &["svix-id", "webhook-id"]),
        timestamp: header(&headers, &["svix-timestamp", "webhook-timestamp"]),
        signature: header(&headers, &["svix-signature", "webhook-signature"]),
    };
    match service.clerk_webhook(svix, &body, credits::db::now_ms() / 1000).await {
        Ok(outcome) => axum::Json(outcome).into_response(),
        Err(error) => error_response(error),
    }
}

/// Webhook errors in the contract's format: a bad signature is 401, a bad
/// body 400, and anything else a 5xx, which makes the sender retry.
fn error_response(error: ServiceError) -> Response {
    let error = match error {
        refused @ (ServiceError::Unauthenticated(_) | ServiceError::Invalid(_)) => refused,
        retry @ (ServiceError::Unavailable(_) | ServiceError::Retryable(_)) => retry,
        failed => {
            tracing::error!(error = %failed, "webhook failed; the sender will retry");
            ServiceError::Internal(failed.to_string())
        }
    };
    HttpError::from(error).into_response()
}
