//! The HTTP surface, one module per resource. Each resource has exactly one
//! home: a module here when it is served by plain axum routes, or the app's
//! `credits_app::api` module of the same name when it is served by Leptos
//! server functions (dispatched by `server_fns`).
//!
//! | Resource   | Paths                                              | Home                         |
//! |------------|----------------------------------------------------|------------------------------|
//! | credits    | `/api/credits`, `/api/credits/history`             | `credits_app::api::credits`  |
//! | events     | `/api/credits/events`                              | `routes::events`             |
//! | holds      | `/api/holds`, `/api/holds/{id}/capture`, `/release`| `routes::holds`              |
//! | user       | `/api/user/sync`                                   | `credits_app::api::user`     |
//! | checkout   | `/api/checkout`, `/api/test-creem`                 | `credits_app::api::checkout` |
//! | webhooks   | `/api/webhooks/creem`, `/api/webhooks/clerk`       | `routes::webhooks`           |
//! | auth       | `/api/auth/sign-up`, `/sign-in`, `/sign-out`       | `routes::auth`               |
//! | admin      | `/api/admin/*` (all of it)                         | `routes::admin`              |
//! | ui         | `/api/ui/*` (the pages' own calls)                 | `credits_app::api::ui`       |
//!
//! The rest is infrastructure, not a resource: `error` (how a route
//! refuses), `client`, `cross_site`, `limits`, `security_headers` (request
//! layers), `metrics`, `health`, `openapi`, and `server_fns` (the dispatch
//! to the server functions).

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
