//! `ApiError`: the contract's error body, as every server function returns it.
//!
//! On the server the status code travels through Leptos' `ResponseOptions`;
//! the body is always `{"error":{"code","message",…}}`.

use credits::dto::{ErrorBody, ErrorDetail};
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiError(pub ErrorBody);

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self(ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                required: None,
                remaining: None,
            },
        })
    }

    pub fn code(&self) -> &str {
        &self.0.error.code
    }

    pub fn message(&self) -> &str {
        &self.0.error.message
    }

    /// The HTTP status of each contract code.
    pub fn status(&self) -> u16 {
        match self.code() {
            "invalid_request" => 400,
            "unauthenticated" => 401,
            "insufficient_credits" => 402,
            "forbidden" => 403,
            "not_found" => 404,
            "idempotency_conflict" | "hold_resolved" => 409,
            "payload_too_large" => 413,
            "rate_limited" => 429,
            "upstream_error" => 502,
            "network_error" | "unavailable" => 503,
            _ => 500,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for ApiError {}

impl FromServerFnError for ApiError {
    type Encoder = crate::api::codec::JsonTextEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let error = match value {
            ServerFnErrorErr::Args(message) | ServerFnErrorErr::MissingArg(message) => {
                Self::new("invalid_request", format!("the request body or query is malformed: {message}"))
            }
            ServerFnErrorErr::Deserialization(message) if cfg!(feature = "ssr") => {
                Self::new("invalid_request", format!("the request body is not valid JSON: {message}"))
            }
            ServerFnErrorErr::Request(message) => Self::new("network_error", message),
            other => Self::new("internal", other.to_string()),
        };
        #[cfg(feature = "ssr")]
        crate::api::respond_with_status(error.status());
        error
    }
}

/// The contract's body of a service error (its status is the server's to set:
/// `crate::api::fail` for server functions, `IntoResponse` for plain routes).
#[cfg(feature = "ssr")]
impl From<credits::service::ServiceError> for ApiError {
    fn from(error: credits::service::ServiceError) -> Self {
        if error.retry_soon() {
            crate::api::set_header("retry-after", "1");
        }
        Self(error.body())
    }
}
