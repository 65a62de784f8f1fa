//! The security headers every response carries (contract §8): no MIME
//! sniffing, no framing, a referrer policy, HSTS behind an https public URL,
//! a Content-Security-Policy, and `Cache-Control: no-store` on whatever holds
//! a user's data.
//!
//! Pages get a policy with a fresh nonce per request. The nonce travels to the
//! renderer in the request's extensions (`provide_request_nonce`), so the
//! hydration script and the resource scripts Leptos writes into the page carry
//! exactly the value the header allows; no inline script runs without it.

use crate::config::Config;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use leptos::nonce::Nonce;
use leptos::prelude::{provide_context, use_context};
use std::sync::Arc;

/// One year, the least the browsers' preload lists accept; subdomains too,
/// so that a plain-http sibling cannot set cookies for this site.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Everything that is not a page (JSON, event streams, files) loads nothing
/// and cannot be framed.
const NON_PAGE_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Clerk's browser SDK loads its avatars from here (its documented CSP).
const CLERK_IMAGES: &str = "https://img.clerk.com";

/// Cloudflare Turnstile, Clerk's bot protection on sign-up (its documented CSP).
const CLERK_CHALLENGES: &str = "https://challenges.cloudflare.com";

/// What the headers depend on, fixed at start.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    hsts: bool,
    clerk_frontend_api: Option<String>,
}

impl SecurityHeaders {
    pub fn new(config: &Config) -> Arc<Self> {
        Arc::new(Self {
            hsts: config.public_origin.as_ref().is_some_and(|origin| origin.is_https()),
            clerk_frontend_api: config.clerk.frontend_api_origin.clone(),
        })
    }

    /// The policy of one page: scripts from this site, with this request's
    /// nonce for the inline ones, and WASM compilation for hydration; with
    /// Clerk, its Frontend API and the few other hosts its SDK needs.
    fn page_policy(&self, nonce: &str) -> String {
        let varying: Vec<String> = match &self.clerk_frontend_api {
            None => vec![
                format!("script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'"),
                "connect-src 'self'".into(),
                "img-src 'self'".into(),
                "style-src 'self'".into(),
            ],
            Some(fapi) => vec![
                format!("script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval' {fapi} {CLERK_CHALLENGES}"),
                format!("connect-src 'self' {fapi}"),
                format!("img-src 'self' {CLERK_IMAGES}"),
                // Clerk styles its widgets with runtime CSS-in-JS, which needs
                // inline styles; scripts stay bound to the nonce and origins.
                "style-src 'self' 'unsafe-inline'".into(),
                format!("frame-src 'self' {CLERK_CHALLENGES}"),
                "worker-src 'self' blob:".into(),
            ],
        };
        let fixed = ["object-src 'none'", "base-uri 'self'", "form-action 'self'", "frame-ancestors 'none'"];
        let mut directives = vec!["default-src 'self'".to_string()];
        directives.extend(varying);
        directives.extend(fixed.map(String::from));
        directives.join("; ")
    }
}

/// Sets the headers on every response. The nonce is made before the request
/// runs so that the page renderer can read it.
pub async fn apply(State(policy): State<Arc<SecurityHeaders>>, mut request: Request, next: Next) -> Response {
    let nonce = Nonce::new();
    request.extensions_mut().insert(nonce.clone());
    let user_data = holds_user_data(request.uri().path());
    let mut response = next.run(request).await;
    let page = is_page(response.headers());
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin"));
    if policy.hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    let content_policy = if page {
        // The nonce is URL-safe base64 and the Clerk origin is checked at
        // start, so the policy is always a valid header value.
        HeaderValue::from_str(&policy.page_policy(&nonce)).expect("a CSP of checked parts")
    } else {
        HeaderValue::from_static(NON_PAGE_POLICY)
    };
    headers.insert(header::CONTENT_SECURITY_POLICY, content_policy);
    if page || user_data {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Gives the page renderer this request's nonce in place of the one Leptos
/// makes up, so the scripts it writes match the header. Runs in the context
/// of every page and server function (`router()`'s context).
pub fn provide_request_nonce() {
    let nonce =
        use_context::<http::request::Parts>().and_then(|parts| parts.extensions.get::<Nonce>().cloned());
    if let Some(nonce) = nonce {
        provide_context(nonce);
    }
}

/// Every page is rendered for its viewer, and every page is HTML.
fn is_page(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"))
}

/// The API answers with a user's credits, account, holds or admin views, and
/// `/metrics` with business figures; none of it may sit in a shared cache.
/// Static files (`/pkg/*`) keep their caching.
fn holds_user_data(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(clerk: Option<&str>) -> SecurityHeaders {
        SecurityHeaders { hsts: false, clerk_frontend_api: clerk.map(String::from) }
    }

    #[test]
    fn a_page_allows_only_its_own_scripts_and_the_nonce() {
        let policy = headers(None).page_policy("abc123");
        let scripts = policy.split(';').find(|d| d.trim().starts_with("script-src")).unwrap();
        assert_eq!(scripts.trim(), "script-src 'self' 'nonce-abc123' 'wasm-unsafe-eval'");
        for directive in
            ["frame-ancestors 'none'", "object-src 'none'", "base-uri 'self'", "form-action 'self'"]
        {
            assert!(policy.contains(directive), "{directive} in {policy}");
        }
        assert!(!policy.contains("unsafe-inline") && !policy.contains("https:"), "{policy}");
    }

    #[test]
    fn with_clerk_its_frontend_api_may_serve_scripts() {
        let policy = headers(Some("https://clerk.example.com")).page_policy("n");
        let scripts = policy.split(';').find(|d| d.trim().starts_with("script-src")).unwrap();
        assert!(
            scripts.contains("https://clerk.example.com") && !scripts.contains("unsafe-inline"),
            "{policy}"
        );
        assert!(policy.contains("connect-src 'self' https://clerk.example.com"), "{policy}");
    }

    #[test]
    fn api_paths_and_metrics_are_never_cached_and_files_are() {
        for path in ["/api/credits", "/api/credits/history", "/api/user/sync", "/api/admin/users", "/metrics"]
        {
            assert!(holds_user_data(path), "{path}");
        }
        for path in ["/pkg/credits.wasm", "/pkg/credits.css", "/favicon.svg"] {
            assert!(!holds_user_data(path), "{path}");
        }
    }
}
