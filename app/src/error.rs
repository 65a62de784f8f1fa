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
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for ApiError {}

impl FromServerFnError for ApiError {
    type Encoder = crate::api::codec::JsonTextEncoding;

    /// A failure of the server-function machinery itself (arguments that do
    /// not parse, an unreachable server); the status follows from its kind.
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let (status, error) = match value {
            ServerFnErrorErr::Args(message) | ServerFnErrorErr::MissingArg(message) => (
                400,
                Self::new("invalid_request", format!("the request body or query is malformed: {message}")),
            ),
            ServerFnErrorErr::Deserialization(message) if cfg!(feature = "ssr") => {
                (400, Self::new("invalid_request", format!("the request body is not valid JSON: {message}")))
            }
            ServerFnErrorErr::Request(message) => (503, Self::new("network_error", message)),
            other => (500, Self::new("internal", other.to_string())),
        };
        #[cfg(feature = "ssr")]
        crate::api::respond_with_status(status);
        #[cfg(not(feature = "ssr"))]
        let _ = status;
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
