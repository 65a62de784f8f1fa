//! `GET /metrics` (Prometheus text) and the middleware that counts every
//! request by route and status with a latency histogram.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use credits::service::CreditsService;
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

pub fn router<S>(service: CreditsService) -> Router<S> {
    handle();
    Router::new().route("/metrics", get(render)).with_state(service)
}

async fn render(State(service): State<CreditsService>) -> Response {
    let pool = &service.db().pool;
    metrics::gauge!("db_pool_connections").set(f64::from(pool.size()));
    metrics::gauge!("db_pool_idle_connections").set(pool.num_idle() as f64);
    crate::memory::record_gauges();
    ([("content-type", "text/plain; version=0.0.4")], handle().render()).into_response()
}

/// Labels a request by its route pattern; server functions by their path, so
/// `/api/credits` and `/api/credits/history` are told apart. Unknown paths
/// share one label, which keeps the number of series bounded.
fn route_label(request: &Request) -> String {
    let path = request.uri().path();
    match request.extensions().get::<MatchedPath>().map(MatchedPath::as_str) {
        Some("/api/{*fn_name}") => {
            let known =
                leptos::server_fn::axum::get_server_fn_service(path, request.method().clone()).is_some();
            if known {
                path.to_string()
            } else {
                "/api/unknown".into()
            }
        }
        Some(pattern) => pattern.to_string(),
        None if path.starts_with("/pkg/") => "/pkg".into(),
        None => "other".into(),
    }
}

pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = route_label(&request);
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let seconds = started.elapsed().as_secs_f64();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(seconds);
    response
}
