//! Request bounds: every body is capped before anyone reads it.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

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
        return super::error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        );
    }
    let (parts, body) = request.into_parts();
    let body = Body::new(http_body_util::Limited::new(body, MAX_BODY_BYTES));
    next.run(Request::from_parts(parts, body)).await
}
