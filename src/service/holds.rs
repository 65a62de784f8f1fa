//! `POST /api/holds`, `/api/holds/{id}/capture`, `/api/holds/{id}/release`.

use super::{parse_key, CreditsService, ServiceError};
use crate::auth::Principal;
use crate::dto::HoldView;
use crate::holds::{self, Resolution};
use crate::requests::{MAX_REASON_CHARS, MAX_USER_ID_BYTES};
use crate::writer::{HoldAction, HoldRequest, LedgerOp};
use serde_json::{Map, Value};

/// Hold time-to-live settings (`[holds]` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldSettings {
    pub default_ttl_seconds: i64,
    pub max_ttl_seconds: i64,
}

impl Default for HoldSettings {
    fn default() -> Self {
        Self { default_ttl_seconds: 15 * 60, max_ttl_seconds: 24 * 60 * 60 }
    }
}

fn refuse_unknown(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), ServiceError> {
    match body.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(unknown) => Err(ServiceError::Invalid(format!("unknown field `{unknown}`"))),
        None => Ok(()),
    }
}

fn optional_int(body: &Map<String, Value>, field: &str) -> Result<Option<i64>, ServiceError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| ServiceError::Invalid(format!("`{field}` must be an integer"))),
    }
}

impl CreditsService {
    /// Reserves credits: a user for itself, an API key or admin for any `userId`.
    pub async fn create_hold(
        &self,
        caller: &Principal,
        body: &Map<String, Value>,
        idempotency_key: Option<&str>,
    ) -> Result<super::Replayable<HoldView>, ServiceError> {
        refuse_unknown(body, &["userId", "amount", "ttlSeconds", "reason"])?;
        let amount =
            body.get("amount").ok_or_else(|| ServiceError::Invalid("`amount` is required".into()))?;
        let amount = crate::Credits::from_json(amount, false)
            .map_err(|error| ServiceError::Invalid(format!("`amount`: {error}")))?
            .get();
        let limits = self.inner.holds;
        let ttl = optional_int(body, "ttlSeconds")?.unwrap_or(limits.default_ttl_seconds);
        if !(1..=limits.max_ttl_seconds).contains(&ttl) {
            return Err(ServiceError::Invalid(format!(
                "`ttlSeconds` must be 1 to {}",
                limits.max_ttl_seconds
            )));
        }
        let reason = match body.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.chars().count() <= MAX_REASON_CHARS => Some(text.clone()),
            Some(_) => {
                return Err(ServiceError::Invalid(format!(
                    "`reason` must be a string of at most {MAX_REASON_CHARS} characters"
                )))
            }
        };
        let target = match body.get("userId") {
            None | Some(Value::Null) if caller.api_key.is_some() => {
                return Err(ServiceError::Invalid("an API key must name the user: `userId`".into()));
            }
            None | Some(Value::Null) => caller.user_id.clone(),
            Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_USER_ID_BYTES => id.clone(),
            Some(_) => return Err(ServiceError::Invalid("`userId` must be 1 to 255 bytes".into())),
        };
        if target != caller.user_id && !caller.acts_for_others() {
            return Err(ServiceError::Forbidden("a user may only hold its own credits".into()));
        }
        if target == caller.user_id {
            self.ensure_account(caller).await?;
        }
        let key = parse_key(idempotency_key)?;
        let hash =
            crate::idempotency::request_hash("POST /api/holds", &Value::Object(body.clone()).to_string());
        let request = HoldRequest {
            scope: caller.user_id.clone(),
            api_key: caller.api_key.clone(),
            privileged: caller.acts_for_others(),
            key,
            hash,
            target: super::user_id(&target)?,
            action: HoldAction::Create { amount, ttl_seconds: ttl, reason },
        };
        let answer = self
            .inner
            .writer
            .submit(LedgerOp::Hold(request))
            .await?
            .into_hold()?
            .ok_or_else(|| ServiceError::Internal("a new hold had no answer".into()))?;
        self.inner.hold_owners.insert(answer.value.hold_id.clone(), target);
        Ok(answer)
    }

    /// Captures (all, or `{"amount"}` and releases the rest) or releases a hold.
    pub async fn resolve_hold(
        &self,
        caller: &Principal,
        hold_id: &str,
        capture: bool,
        body: &Map<String, Value>,
        idempotency_key: Option<&str>,
    ) -> Result<super::Replayable<HoldView>, ServiceError> {
        let resolution = if capture {
            refuse_unknown(body, &["amount"])?;
            let amount = optional_int(body, "amount")?;
            if amount.is_some_and(|amount| amount < 1) {
                return Err(ServiceError::Invalid("`amount` must be a positive integer".into()));
            }
            Resolution::Capture(amount)
        } else {
            refuse_unknown(body, &[])?;
            Resolution::Release
        };
        // Anything but a hold id names no hold.
        let parsed_hold_id =
            crate::ids::HoldId::parse(hold_id).map_err(|_| ServiceError::NotFound("no such hold".into()))?;
        // The owner never changes, so this read may happen outside the
        // transaction, and once known it is remembered.
        let owner = match self.inner.hold_owners.get(&hold_id.to_string()) {
            Some(owner) => Some(owner),
            None => {
                let owner = holds::load(&mut *self.inner.db.pool.acquire().await?, hold_id)
                    .await?
                    .map(|hold| hold.user_id);
                if let Some(owner) = &owner {
                    self.inner.hold_owners.insert(hold_id.to_string(), owner.clone());
                }
                owner
            }
        };
        let owner = match owner {
            Some(owner) if owner == caller.user_id || caller.acts_for_others() => owner,
            _ => return Err(ServiceError::NotFound("no such hold".into())),
        };
        let key = parse_key(idempotency_key)?;
        let route = format!("POST /api/holds/{hold_id}/{}", if capture { "capture" } else { "release" });
        let hash = crate::idempotency::request_hash(&route, &Value::Object(body.clone()).to_string());
        let action = HoldAction::Resolve { hold_id: parsed_hold_id.clone(), resolution };
        let request = HoldRequest {
            scope: caller.user_id.clone(),
            api_key: caller.api_key.clone(),
            privileged: caller.acts_for_others(),
            key,
            hash,
            target: super::user_id(&owner)?,
            action,
        };
        let op = if capture { LedgerOp::Capture(request) } else { LedgerOp::Release(request) };
        match self.inner.writer.submit(op).await?.into_hold()? {
            Some(answer) => Ok(answer),
            None => {
                // Past its time but not yet swept: release it now, then refuse.
                self.expire_holds(100).await?;
                Err(ServiceError::HoldResolved("the hold has expired".into()))
            }
        }
    }
}
