//! Local accounts, when Clerk is not configured: `POST /api/auth/sign-up`,
//! `/api/auth/sign-in`, `/api/auth/sign-out`. Bodies are JSON or an HTML form.
//! The session is an HttpOnly, SameSite=Lax cookie (`Secure` over https); the
//! CSRF token travels in a readable cookie for the page to echo in
//! `x-csrf-token`. Cross-site posts never reach these handlers
//! (`cross_site::guard`).
//!
//! Password guessing is throttled per client (`[rate_limits] sign_in`, in
//! `limits::rate_limit`) and per account here: wrong passwords for one email
//! spend its `sign_in_account` budget from whatever address they come, and a
//! correct one costs nothing, so other clients are never locked out.

use super::client::client_of;
use super::HttpError;
use crate::rate_limit::{RateLimiter, RouteClass};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use credits::auth::local::{self, LocalAuthError, NewSession, CSRF_COOKIE, SESSION_COOKIE, SESSION_DAYS};
use credits::dto::{SessionStarted, SignedOut};
use credits::service::{CreditsService, ServiceError};
use serde::Deserialize;
use std::sync::Arc;

type AuthState = (CreditsService, Arc<RateLimiter>);

pub fn router<S>(service: CreditsService, limiter: Arc<RateLimiter>) -> Router<S> {
    Router::new()
        .route("/api/auth/sign-up", post(sign_up))
        .route("/api/auth/sign-in", post(sign_in))
        .route("/api/auth/sign-out", post(sign_out))
        .with_state((service, limiter))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

fn credentials(headers: &HeaderMap, body: &[u8]) -> Result<Credentials, ServiceError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    let parsed = if form {
        serde_urlencoded::from_bytes::<Credentials>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Credentials>(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|error| ServiceError::Invalid(format!("send `email` and `password`: {error}")))
}

/// A refused sign-up or sign-in; every password-hashing slot taken is 503
/// `unavailable` with `Retry-After`.
fn local_error(error: LocalAuthError) -> Response {
    HttpError::from(match error {
        LocalAuthError::Invalid(message) => ServiceError::Invalid(message),
        LocalAuthError::Taken => ServiceError::Invalid(error.to_string()),
        LocalAuthError::WrongCredentials => ServiceError::Unauthenticated(error.to_string()),
        LocalAuthError::Busy => ServiceError::Unavailable("sign-in is busy; retry in a moment".into()),
        LocalAuthError::Database(detail) => ServiceError::Internal(detail),
    })
    .into_response()
}

fn disabled(service: &CreditsService) -> Option<Response> {
    (!service.local_accounts()).then(|| {
        let off = ServiceError::NotFound("local accounts are off: this server signs in with Clerk".into());
        HttpError::from(off).into_response()
    })
}

fn with_session(session: NewSession, secure: bool) -> Response {
    let max_age = SESSION_DAYS * 24 * 3600;
    let secure = if secure { "; Secure" } else { "" };
    let session_cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}",
        session.token
    );
    let csrf_cookie =
        format!("{CSRF_COOKIE}={}; SameSite=Lax; Path=/; Max-Age={max_age}{secure}", session.csrf_token);
    let body =
        SessionStarted { user_id: session.user_id, email: session.email, csrf_token: session.csrf_token };
    let mut response = Json(body).into_response();
    for cookie in [session_cookie, csrf_cookie] {
        response
            .headers_mut()
            .append(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie text"));
    }
    response
}

/// A plain HTML form (no script) gets a redirect back to the page instead of JSON.
fn from_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"))
        && headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

fn see_other(mut response: Response, location: &str) -> Response {
    *response.status_mut() = axum::http::StatusCode::SEE_OTHER;
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(location).expect("location"));
    response
}

/// Answers a form post with a redirect (keeping any cookies), others as they are.
fn for_client(headers: &HeaderMap, response: Response) -> Response {
    if !from_form(headers) {
        return response;
    }
    if response.status().is_success() {
        see_other(response, "/")
    } else {
        see_other(Response::new(axum::body::Body::empty()), "/?auth=failed")
    }
}

/// A new session replaces the one this browser had: the old cookie's
/// session ends, so a token someone saw before sign-in is worth nothing.
async fn started(
    service: &CreditsService,
    headers: &HeaderMap,
    extensions: &Extensions,
    session: NewSession,
) -> Response {
    if let Some(old) = credits::auth::cookie(headers, SESSION_COOKIE) {
        if let Err(error) = local::sign_out(&service.db().pool, old).await {
            return HttpError::from(ServiceError::Internal(error.to_string())).into_response();
        }
    }
    with_session(session, client_of(extensions).https)
}

async fn sign_up(
    State((service, _)): State<AuthState>,
    request: axum::http::request::Parts,
    body: Bytes,
) -> Response {
    if let Some(response) = disabled(&service) {
        return response;
    }
    let credentials = match credentials(&request.headers, &body) {
        Ok(credentials) => credentials,
        Err(error) => return HttpError::from(error).into_response(),
    };
    let response = match local::sign_up(&service.db().pool, &credentials.email, &credentials.password).await {
        Ok(session) => started(&service, &request.headers, &request.extensions, session).await,
        Err(error) => local_error(error),
    };
    for_client(&request.headers, response)
}

async fn sign_in(
    State((service, limiter)): State<AuthState>,
    request: axum::http::request::Parts,
    body: Bytes,
) -> Response {
    if let Some(response) = disabled(&service) {
        return response;
    }
    let credentials = match credentials(&request.headers, &body) {
        Ok(credentials) => credentials,
        Err(error) => return HttpError::from(error).into_response(),
    };
    let account = credentials.email.trim().to_lowercase();
    if let Err(retry_after) = limiter.check(RouteClass::SignInAccount, &account) {
        return super::limits::too_many(retry_after);
    }
    let response = match local::sign_in(&service.db().pool, &credentials.email, &credentials.password).await {
        Ok(session) => {
            limiter.refund(RouteClass::SignInAccount, &account);
            started(&service, &request.headers, &request.extensions, session).await
        }
        Err(error) => {
            if matches!(error, LocalAuthError::Busy) {
                limiter.refund(RouteClass::SignInAccount, &account);
            }
            local_error(error)
        }
    };
    for_client(&request.headers, response)
}

async fn sign_out(State((service, _)): State<AuthState>, request: axum::http::request::Parts) -> Response {
    if let Some(token) = credits::auth::cookie(&request.headers, SESSION_COOKIE) {
        if let Err(error) = local::sign_out(&service.db().pool, token).await {
            return HttpError::from(ServiceError::Internal(error.to_string())).into_response();
        }
    }
    let secure = if client_of(&request.extensions).https { "; Secure" } else { "" };
    let mut response = Json(SignedOut { signed_out: true }).into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        let expired = format!("{name}=; Path=/; Max-Age=0; SameSite=Lax{secure}");
        response
            .headers_mut()
            .append(header::SET_COOKIE, HeaderValue::from_str(&expired).expect("cookie text"));
    }
    response
}
