//! `POST /api/holds`, `/api/holds/{id}/capture`, `/api/holds/{id}/release`.

use super::{idempotency_key, json_object, replayable, HttpError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use credits::auth::Principal;
use credits::service::{CreditsService, ServiceError};

pub fn router<S>(service: CreditsService) -> Router<S> {
    Router::new()
        .route("/api/holds", post(create))
        .route("/api/holds/{id}/capture", post(capture))
        .route("/api/holds/{id}/release", post(release))
        .with_state(service)
}

async fn create(
    State(service): State<CreditsService>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let (caller, remembered) = service.authenticate_hold_write(&Method::POST, &headers).await?;
    let answer = async {
        let body = json_object(&body)?;
        let key = idempotency_key(&headers)?;
        service.create_hold(&caller, &body, key.as_deref()).await
    };
    settle(&service, &caller, remembered, answer.await).await.map(replayable)
}

/// A refusal to a worker key taken from memory is first checked against the
/// key's revocation (`CreditsService::authenticate_hold_write`).
async fn settle<T>(
    service: &CreditsService,
    caller: &Principal,
    remembered: bool,
    answer: Result<T, ServiceError>,
) -> Result<T, HttpError> {
    match answer {
        Err(error) if remembered => Err(service.confirm_api_key(caller, error).await.into()),
        answer => Ok(answer?),
    }
}

async fn resolve(
    service: CreditsService,
    id: String,
    capture: bool,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let (caller, remembered) = service.authenticate_hold_write(&Method::POST, &headers).await?;
    let answer = async {
        let body = json_object(&body)?;
        let key = idempotency_key(&headers)?;
        service.resolve_hold(&caller, &id, capture, &body, key.as_deref()).await
    };
    settle(&service, &caller, remembered, answer.await).await.map(replayable)
}

async fn capture(
    State(service): State<CreditsService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    resolve(service, id, true, headers, body).await
}

async fn release(
    State(service): State<CreditsService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    resolve(service, id, false, headers, body).await
}
