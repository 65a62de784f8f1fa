//! Plain axum routes: what the contract asks for outside server functions.

pub mod health;
pub mod limits;
pub mod server_fns;
pub mod webhooks;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use credits::dto::{ErrorBody, ErrorDetail};

/// An error in the contract's format from a plain route.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail { code: code.into(), message: message.into(), required: None, remaining: None },
    };
    (status, Json(body)).into_response()
}
