//! Cross-site request forgery (contract §8). A browser attaches our cookies
//! to requests that any other site builds, so a change authenticated by a
//! cookie (Clerk's `__session`, a local session) and the sign-in, sign-up and
//! sign-out forms are accepted only from this site: an `Origin` (or, when
//! absent, `Referer`) other than our own origin or one of
//! `CLERK_AUTHORIZED_PARTIES` is refused with 403 before any handler runs,
//! so nothing changes and no cookie is set. `Authorization: Bearer` requests
//! are not cookie requests: another site cannot make a browser send them.
//!
//! A request with neither header is no browser's cross-site request
//! (browsers send `Origin` on every cross-origin POST); local sessions still
//! demand their CSRF token then (`CreditsService::authenticate`).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use credits::auth::local::SESSION_COOKIE;
use credits::security::origin::{is_allowed, Origin, Provenance};
use std::sync::Arc;

/// The origins a cookie request may come from.
#[derive(Debug, Clone, Default)]
pub struct SiteOrigins {
    /// `CREDITS_PUBLIC_URL`; without it, the request's own `Host`.
    pub public: Option<Origin>,
    /// `CLERK_AUTHORIZED_PARTIES`, as origins.
    pub parties: Vec<Origin>,
}

impl SiteOrigins {
    fn allowed_for(&self, headers: &HeaderMap) -> Vec<Origin> {
        let mut allowed = self.parties.clone();
        match &self.public {
            Some(public) => allowed.push(public.clone()),
            // Without a configured public URL the scheme the browser used is
            // unknown here (a proxy may end TLS): the host must match.
            None => {
                let host =
                    headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or_default();
                allowed.extend(["http", "https"].iter().filter_map(|scheme| Origin::from_host(scheme, host)));
            }
        }
        allowed
    }
}

/// Paths whose posts set or end a session whatever cookies they carry.
const SESSION_FORMS: [&str; 3] = ["/api/auth/sign-in", "/api/auth/sign-up", "/api/auth/sign-out"];

/// Whether the request is authenticated by a cookie rather than a header.
fn cookie_authenticated(headers: &HeaderMap) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("Bearer "));
    !bearer
        && (credits::auth::cookie(headers, "__session").is_some()
            || credits::auth::cookie(headers, SESSION_COOKIE).is_some())
}

/// Whether this request must prove it comes from our own pages.
pub fn needs_same_site(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    changes && (SESSION_FORMS.contains(&path) || cookie_authenticated(headers))
}

pub async fn guard(State(site): State<Arc<SiteOrigins>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if needs_same_site(request.method(), request.uri().path(), headers) {
        let text = |name: header::HeaderName| headers.get(name).and_then(|value| value.to_str().ok());
        let stated = match (headers.get(header::ORIGIN), text(header::ORIGIN)) {
            // An Origin that is not text is stated, and never ours.
            (Some(_), None) => Provenance::Stated(""),
            _ => Provenance::of(text(header::ORIGIN), text(header::REFERER)),
        };
        if let Provenance::Stated(origin) = stated {
            if !is_allowed(origin, &site.allowed_for(headers)) {
                metrics::counter!("cross_site_refused_total").increment(1);
                let refused = credits::service::ServiceError::Forbidden(
                    "cross-site request refused: this change must come from this site's own pages".into(),
                );
                return super::HttpError::from(refused).into_response();
            }
        }
    }
    next.run(request).await
}
