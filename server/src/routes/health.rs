//! `GET /healthz`: 200 when the database answers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use credits::service::CreditsService;

pub fn router<S>(service: CreditsService) -> Router<S> {
    Router::new().route("/healthz", get(healthz)).with_state(service)
}

async fn healthz(State(service): State<CreditsService>) -> Response {
    match service.db().ping().await {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(error) => {
            tracing::error!(%error, "health check failed");
            super::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database does not answer",
            )
        }
    }
}
