//! `POST /api/holds`, `/api/holds/{id}/capture`, `/api/holds/{id}/release`.

use super::{api_error, caller, idempotency_key, json_object, replayable};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use credits::service::CreditsService;

pub fn router<S>(service: CreditsService) -> Router<S> {
    Router::new()
        .route("/api/holds", post(create))
        .route("/api/holds/{id}/capture", post(capture))
        .route("/api/holds/{id}/release", post(release))
        .with_state(service)
}

async fn create(State(service): State<CreditsService>, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let caller = caller(&service, &Method::POST, &headers).await?;
        let body = json_object(&body).map_err(api_error)?;
        let key = idempotency_key(&headers).map_err(api_error)?;
        service.create_hold(&caller, &body, key.as_deref()).await.map_err(api_error)
    };
    run.await.map_or_else(|response| response, replayable)
}

async fn resolve(
    service: CreditsService,
    id: String,
    capture: bool,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let caller = caller(&service, &Method::POST, &headers).await?;
        let body = json_object(&body).map_err(api_error)?;
        let key = idempotency_key(&headers).map_err(api_error)?;
        service.resolve_hold(&caller, &id, capture, &body, key.as_deref()).await.map_err(api_error)
    };
    run.await.map_or_else(|response| response, replayable)
}

async fn capture(
    State(service): State<CreditsService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    resolve(service, id, true, headers, body).await
}

async fn release(
    State(service): State<CreditsService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    resolve(service, id, false, headers, body).await
}
