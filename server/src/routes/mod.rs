//! Plain axum routes: what the contract asks for outside server functions.

pub mod admin;
pub mod auth;
pub mod client;
pub mod cross_site;
pub mod events;
pub mod health;
pub mod holds;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod security_headers;
pub mod server_fns;
pub mod webhooks;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use credits::auth::Principal;
use credits::dto::{ErrorBody, ErrorDetail};
use credits::service::{CreditsService, ServiceError};
use serde_json::{Map, Value};

/// A service error in the contract's status and body (the same mapping the
/// server functions use).
pub fn api_error(error: ServiceError) -> Response {
    let error = credits_app::error::ApiError::from(error);
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(error)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    }
    response
}

/// The verified caller, or the 401 to send.
pub async fn caller(
    service: &CreditsService,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Principal, Response> {
    service.authenticate(method, headers).await.map_err(api_error)
}

/// The `Idempotency-Key` header, if any.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ServiceError> {
    match headers.get("idempotency-key").map(|value| value.to_str()) {
        None => Ok(None),
        Some(Ok(key)) => Ok(Some(key.to_string())),
        Some(Err(_)) => Err(ServiceError::Invalid("Idempotency-Key must be ASCII".into())),
    }
}

/// A JSON object body; an empty body is `{}`.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, ServiceError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ServiceError::Invalid("the body must be a JSON object".into())),
        Err(error) => Err(ServiceError::Invalid(format!("the body is not valid JSON: {error}"))),
    }
}

/// A 200 JSON answer, marked when it replays a stored response.
pub fn replayable<T: serde::Serialize>(outcome: credits::service::Replayable<T>) -> Response {
    let mut response = Json(outcome.value).into_response();
    if outcome.replayed {
        response.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    response
}

/// An error in the contract's format from a plain route.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail { code: code.into(), message: message.into(), required: None, remaining: None },
    };
    (status, Json(body)).into_response()
}
