//! The resources served by `#[server]` functions, one module each; this is
//! their only home (the server's `routes` module maps every resource).
//! Each function authenticates, calls the shared `CreditsService`, and maps
//! errors.
//!
//! - `credits`: `GET/POST /api/credits`, `GET /api/credits/history`
//! - `user`: `GET/POST /api/user/sync`
//! - `checkout`: `POST /api/checkout`, `GET /api/test-creem`
//! - `ui`: `/api/ui/*`, what the pages need beyond the contract
//!
//! `admin` is no server function: it is the admin page's browser client of
//! `/api/admin/*`, whose home is the server's `routes::admin`. `codec` is
//! the answers' encoding.

pub mod admin;
pub mod checkout;
pub mod codec;
pub mod credits;
pub mod ui;
pub mod user;

#[cfg(feature = "ssr")]
pub(crate) use server_side::*;

#[cfg(feature = "ssr")]
mod server_side {
    use crate::error::ApiError;
    use credits::auth::Principal;
    use credits::service::{CreditsService, ServiceError};
    use leptos::prelude::use_context;
    use leptos_axum::ResponseOptions;

    /// The service and the request headers of the current call.
    pub(crate) fn service() -> Result<CreditsService, ApiError> {
        use_context::<CreditsService>().ok_or_else(|| {
            ApiError::from(ServiceError::Internal("CreditsService missing from context".into()))
        })
    }

    pub(crate) fn request_headers() -> http::HeaderMap {
        use_context::<http::request::Parts>().map(|parts| parts.headers).unwrap_or_default()
    }

    /// Authenticates an admin; anyone else gets 403 (or 401 without a session).
    pub(crate) async fn admin(service: &CreditsService) -> Result<Principal, ApiError> {
        let caller = caller(service).await?;
        if !caller.is_admin {
            return Err(fail(ServiceError::Forbidden("admins only".into())));
        }
        Ok(caller)
    }

    /// Authenticates the caller of the current server function.
    pub(crate) async fn caller(service: &CreditsService) -> Result<Principal, ApiError> {
        let method = use_context::<http::request::Parts>().map(|parts| parts.method).unwrap_or_default();
        service.authenticate(&method, &request_headers()).await.map_err(fail)
    }

    /// Turns a service error into the contract's status and body.
    pub(crate) fn fail(error: ServiceError) -> ApiError {
        respond_with_status(error.status().as_u16());
        ApiError::from(error)
    }

    /// Sets the HTTP status of an API call. Server-rendered pages call the same
    /// functions directly; their status stays 200 and the page shows the error.
    pub(crate) fn respond_with_status(status: u16) {
        let is_api_call =
            use_context::<http::request::Parts>().is_some_and(|parts| parts.uri.path().starts_with("/api/"));
        if let (true, Some(options), Ok(status)) =
            (is_api_call, use_context::<ResponseOptions>(), http::StatusCode::from_u16(status))
        {
            options.set_status(status);
        }
    }

    pub(crate) fn set_header(name: &'static str, value: &'static str) {
        if let Some(options) = use_context::<ResponseOptions>() {
            options.insert_header(http::HeaderName::from_static(name), http::HeaderValue::from_static(value));
        }
    }
}
