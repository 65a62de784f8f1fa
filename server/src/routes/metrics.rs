//! `GET /metrics` (Prometheus text) and the middleware that counts every
//! request by route and status with a latency histogram.
//!
//! Labels come from fixed sets only (the standard methods, the router's route
//! patterns, the registered server functions), so no request can add a
//! series of its own: the number of series stays bounded whatever is sent.
//! With `CREDITS_METRICS_TOKEN` set, only a scraper that presents it may read
//! the figures.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use credits::secret::Secret;
use credits::service::{CreditsService, ServiceError};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

/// Latency buckets in seconds, from 0.5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide recorder (installed once, however many routers a test builds).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("http_request_duration_seconds".into()), &LATENCY_BUCKETS)
            .expect("valid buckets")
            .install_recorder()
            .expect("one metrics recorder per process")
    })
}

pub fn router<S>(service: CreditsService, token: Option<Secret>) -> Router<S> {
    handle();
    Router::new().route("/metrics", get(render)).with_state((service, token))
}

async fn render(
    State((service, token)): State<(CreditsService, Option<Secret>)>,
    headers: HeaderMap,
) -> Response {
    if token.is_some_and(|token| !presents(&token, &headers)) {
        let refused =
            ServiceError::Unauthenticated("/metrics needs the metrics token as a bearer token".into());
        return super::HttpError::from(refused).into_response();
    }
    let pool = &service.db().pool;
    metrics::gauge!("db_pool_connections").set(f64::from(pool.size()));
    metrics::gauge!("db_pool_idle_connections").set(pool.num_idle() as f64);
    crate::memory::record_gauges();
    ([("content-type", "text/plain; version=0.0.4")], handle().render()).into_response()
}

/// Whether `Authorization: Bearer …` carries the token (compared in constant time).
fn presents(token: &Secret, headers: &HeaderMap) -> bool {
    let presented = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let bearer = presented
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
    bearer.is_some_and(|(_, presented)| token.matches(presented.trim().as_bytes()))
}

/// The method label: one of the standard methods, else "other".
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Labels a request by its route pattern; server functions by their path, so
/// `/api/credits` and `/api/credits/history` are told apart, but only paths of
/// registered functions (a fixed set). Everything else shares "other".
fn route_label(matched: Option<&str>, path: &str, method: &Method) -> String {
    match matched {
        Some("/api/{*fn_name}") => {
            let known = leptos::server_fn::axum::get_server_fn_service(path, method.clone()).is_some();
            if known {
                path.to_string()
            } else {
                "other".into()
            }
        }
        Some(pattern) if pattern.starts_with("/pkg") => "/pkg".into(),
        Some(pattern) => pattern.to_string(),
        None if path.starts_with("/pkg/") => "/pkg".into(),
        None => "other".into(),
    }
}

pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let matched = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    let route = route_label(matched, request.uri().path(), request.method());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let seconds = started.elapsed().as_secs_f64();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(seconds);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_are_other() {
        for (method, label) in [("GET", "GET"), ("HEAD", "HEAD"), ("POST", "POST"), ("DELETE", "DELETE")] {
            assert_eq!(method_label(&Method::from_bytes(method.as_bytes()).unwrap()), label);
        }
        for made_up in ["FOO", "get", "XGET", "CONNECT", "TRACE", "PROPFIND"] {
            assert_eq!(method_label(&Method::from_bytes(made_up.as_bytes()).unwrap()), "other", "{made_up}");
        }
    }

    #[test]
    fn routes_are_patterns_or_registered_functions_never_raw_paths() {
        let get = Method::GET;
        assert_eq!(route_label(Some("/healthz"), "/healthz", &get), "/healthz");
        assert_eq!(
            route_label(Some("/api/holds/{id}/capture"), "/api/holds/h_1/capture", &get),
            "/api/holds/{id}/capture"
        );
        assert_eq!(route_label(Some("/api/{*fn_name}"), "/api/credits", &get), "/api/credits");
        assert_eq!(route_label(Some("/api/{*fn_name}"), "/api/no-such-fn-x1", &get), "other");
        assert_eq!(route_label(Some("/api/{*fn_name}"), "/api/credits", &Method::PATCH), "other");
        assert_eq!(route_label(Some("/pkg/{*__private__axum_nest_tail_param}"), "/pkg/a.js", &get), "/pkg");
        assert_eq!(route_label(None, "/pkg/credits.wasm", &get), "/pkg");
        assert_eq!(route_label(None, "/evil/<script>", &get), "other");
    }
}
