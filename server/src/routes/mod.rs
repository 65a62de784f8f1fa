//! Plain axum routes: what the contract asks for outside server functions.

pub mod admin;
pub mod auth;
pub mod client;
pub mod cross_site;
pub mod error;
pub mod events;
pub mod health;
pub mod holds;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod security_headers;
pub mod server_fns;
pub mod webhooks;

pub use error::HttpError;

use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use credits::auth::Principal;
use credits::service::{CreditsService, ServiceError};
use serde_json::{Map, Value};

/// The verified caller, or the 401 to send.
pub async fn caller(
    service: &CreditsService,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Principal, HttpError> {
    Ok(service.authenticate(method, headers).await?)
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

/// A query string read into `T`; one that does not fit is the contract's
/// 400 `invalid_request`, not axum's plain-text rejection.
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, HttpError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query).map(ApiQuery).map_err(|error| {
            ServiceError::Invalid(format!("the request body or query is malformed: {error}")).into()
        })
    }
}
