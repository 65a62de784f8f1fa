//! `HttpError`: how every plain route refuses. It answers the contract's
//! body, `{"error":{"code","message",…}}`, with the status of the error's
//! kind (never read back from the code string), and `Retry-After` when
//! trying again soon may work. Handlers return `Result<_, HttpError>`.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use credits::dto::{ErrorBody, ErrorDetail};
use credits::service::ServiceError;
use std::time::Duration;

#[derive(Debug)]
pub enum HttpError {
    /// What the service refused; the variant chooses the status.
    Service(ServiceError),
    /// 413 `payload_too_large`: the body is over the limit.
    PayloadTooLarge(String),
    /// 429 `rate_limited`, with `Retry-After` in whole seconds.
    RateLimited(Duration),
    /// 503 `unavailable`: a capacity of this process is full; `Retry-After` in whole seconds.
    Busy { message: &'static str, retry_after: Duration },
}

impl From<ServiceError> for HttpError {
    fn from(error: ServiceError) -> Self {
        Self::Service(error)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let (status, body, retry_after) = match self {
            Self::Service(error) => {
                let retry = error.retry_soon().then_some(Duration::from_secs(1));
                (error.status(), error.body(), retry)
            }
            Self::PayloadTooLarge(message) => {
                (StatusCode::PAYLOAD_TOO_LARGE, body("payload_too_large", message), None)
            }
            Self::RateLimited(retry_after) => {
                let message = "too many requests; retry later".to_string();
                (StatusCode::TOO_MANY_REQUESTS, body("rate_limited", message), Some(retry_after))
            }
            Self::Busy { message, retry_after } => {
                (StatusCode::SERVICE_UNAVAILABLE, body("unavailable", message.into()), Some(retry_after))
            }
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(after) = retry_after {
            let seconds = HeaderValue::from(after.as_secs().max(1));
            response.headers_mut().insert(RETRY_AFTER, seconds);
        }
        response
    }
}

fn body(code: &str, message: String) -> ErrorBody {
    ErrorBody { error: ErrorDetail { code: code.into(), message, required: None, remaining: None } }
}
