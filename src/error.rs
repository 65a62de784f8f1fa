//! The errors of the credits core, in the contract's vocabulary: every
//! layer above the ledger answers with these, and the HTTP layer maps each
//! to one status and code.

use crate::auth::AuthError;
use crate::holds::HoldError;
use crate::ledger::error::LedgerError;

/// Errors in the contract's vocabulary; the HTTP layer maps each to a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("insufficient credits: {required} required, {remaining} remaining")]
    Insufficient { required: i64, remaining: i64 },
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyConflict,
    /// The hold was already captured, released or expired.
    #[error("{0}")]
    HoldResolved(String),
    /// A service we depend on (Creem) failed; nothing was changed.
    #[error("{0}")]
    Upstream(String),
    /// We cannot take the request now (Clerk's keys unreachable, sign-in
    /// busy); 503 with `Retry-After`, nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// The database rolled the transaction back to break a deadlock or a
    /// serialization conflict, or the writer's connection was lost before
    /// anything was written: running the same change again is safe. The
    /// writer does, a few times; a client that still gets it sees 503.
    #[error("the database asked us to try again")]
    Retryable(String),
    /// Details go to the log, never to the client.
    #[error("internal error")]
    Internal(String),
}

impl From<sqlx::Error> for ServiceError {
    fn from(error: sqlx::Error) -> Self {
        // PostgreSQL chose this transaction as a deadlock's or a serialization
        // conflict's victim: nothing of it was written, and running it again
        // is safe (the writer does, a few times).
        let code = error.as_database_error().and_then(|error| error.code());
        if matches!(code.as_deref(), Some("40P01" | "40001")) {
            return Self::Retryable(error.to_string());
        }
        Self::Internal(error.to_string())
    }
}

impl From<LedgerError> for ServiceError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::NoAccount => Self::NotFound("no account for this user".into()),
            LedgerError::Closed => Self::Forbidden("the account is closed".into()),
            LedgerError::Insufficient { required, remaining } => Self::Insufficient { required, remaining },
            LedgerError::GrantsDue => Self::Internal("a due grant was not caught up".into()),
            LedgerError::Database(error) => error.into(),
        }
    }
}

impl From<AuthError> for ServiceError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::KeysUnavailable => Self::Unavailable(error.to_string()),
            _ => Self::Unauthenticated(error.to_string()),
        }
    }
}

impl From<HoldError> for ServiceError {
    fn from(error: HoldError) -> Self {
        match error {
            HoldError::NotFound => ServiceError::NotFound("no such hold".into()),
            HoldError::Forbidden => ServiceError::Forbidden(HoldError::Forbidden.to_string()),
            HoldError::Resolved(status) => {
                ServiceError::HoldResolved(format!("the hold is already {status}"))
            }
            HoldError::Invalid(message) => ServiceError::Invalid(message),
            HoldError::Ledger(error) => error.into(),
        }
    }
}

impl ServiceError {
    /// The contract's code and a message safe to show.
    pub fn code_and_message(&self) -> (&'static str, String) {
        match self {
            Self::Unauthenticated(m) => ("unauthenticated", m.clone()),
            Self::Forbidden(m) => ("forbidden", m.clone()),
            Self::Invalid(m) => ("invalid_request", m.clone()),
            Self::NotFound(m) => ("not_found", m.clone()),
            Self::Insufficient { .. } => ("insufficient_credits", self.to_string()),
            Self::IdempotencyConflict => ("idempotency_conflict", self.to_string()),
            Self::HoldResolved(m) => ("hold_resolved", m.clone()),
            Self::Upstream(m) => ("upstream_error", m.clone()),
            Self::Unavailable(m) => ("unavailable", m.clone()),
            Self::Retryable(_) => ("unavailable", "the database is busy; try again".into()),
            Self::Internal(_) => ("internal", "something went wrong on our side; nothing was changed".into()),
        }
    }
}

impl ServiceError {
    /// The HTTP status of each kind of error (the contract's §5 table).
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Self::Unauthenticated(_) => S::UNAUTHORIZED,
            Self::Forbidden(_) => S::FORBIDDEN,
            Self::Invalid(_) => S::BAD_REQUEST,
            Self::NotFound(_) => S::NOT_FOUND,
            Self::Insufficient { .. } => S::PAYMENT_REQUIRED,
            Self::IdempotencyConflict | Self::HoldResolved(_) => S::CONFLICT,
            Self::Upstream(_) => S::BAD_GATEWAY,
            Self::Unavailable(_) | Self::Retryable(_) => S::SERVICE_UNAVAILABLE,
            Self::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the client should try again in a moment (`Retry-After: 1`).
    pub fn retry_soon(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Retryable(_))
    }

    /// The contract's error body, `{"error":{"code","message",…}}`; an
    /// internal error's detail and a retried conflict go to the log, not the body.
    pub fn body(&self) -> crate::dto::ErrorBody {
        match self {
            Self::Internal(detail) => tracing::error!(%detail, "internal error"),
            Self::Retryable(detail) => tracing::warn!(%detail, "the database kept rolling the change back"),
            _ => {}
        }
        let (code, message) = self.code_and_message();
        let (required, remaining) = match self {
            Self::Insufficient { required, remaining } => (Some(*required), Some(*remaining)),
            _ => (None, None),
        };
        crate::dto::ErrorBody {
            error: crate::dto::ErrorDetail { code: code.into(), message, required, remaining },
        }
    }
}
