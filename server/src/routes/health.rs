//! `GET /healthz`: 200 when the database answers.

use axum::extract::State;
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
            let down = credits::service::ServiceError::Unavailable("the database does not answer".into());
            super::HttpError::from(down).into_response()
        }
    }
}
