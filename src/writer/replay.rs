//! Idempotency-Keys inside the writer's transaction: a request's key is
//! claimed, and its answer stored, in the transaction of its effect.

use crate::error::ServiceError;
use crate::idempotency::{self, Claim, IdempotencyKey};
use sqlx::AnyConnection;

/// A response that may be the stored answer to an earlier request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayable<T> {
    pub value: T,
    pub replayed: bool,
}

/// Claims an Idempotency-Key in `tx`; `Some` is the stored first response.
pub(super) async fn claim_key<T: serde::de::DeserializeOwned>(
    tx: &mut AnyConnection,
    scope: &str,
    key: Option<&IdempotencyKey>,
    hash: &str,
) -> Result<Option<T>, ServiceError> {
    let Some(key) = key else { return Ok(None) };
    match idempotency::claim(tx, scope, key, hash).await? {
        Claim::New => Ok(None),
        Claim::Conflict => Err(ServiceError::IdempotencyConflict),
        Claim::Replay { body, .. } => {
            serde_json::from_str(&body).map(Some).map_err(|e| ServiceError::Internal(e.to_string()))
        }
    }
}

/// Stores the response for a claimed key, in the effect's transaction.
pub(super) async fn store_response<T: serde::Serialize>(
    tx: &mut AnyConnection,
    scope: &str,
    key: Option<&IdempotencyKey>,
    value: &T,
) -> Result<(), ServiceError> {
    let Some(key) = key else { return Ok(()) };
    let body = serde_json::to_string(value).map_err(|e| ServiceError::Internal(e.to_string()))?;
    idempotency::complete(tx, scope, key, 200, &body).await?;
    Ok(())
}

/// Frees a claimed key of a refused request (the transaction may be shared,
/// so the claim would otherwise commit with the others).
pub(super) async fn forget(
    tx: &mut AnyConnection,
    scope: &str,
    key: Option<&IdempotencyKey>,
) -> Result<(), ServiceError> {
    if let Some(key) = key {
        idempotency::forget(tx, scope, key).await?;
    }
    Ok(())
}
