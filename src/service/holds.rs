//! `POST /api/holds`, `/api/holds/{id}/capture`, `/api/holds/{id}/release`.

use super::{claim_key, parse_key, store_response, CreditsService, ServiceError};
use crate::auth::Principal;
use crate::db::rfc3339;
use crate::dto::HoldView;
use crate::holds::batch::HoldOp;
use crate::holds::{self, Hold, HoldError, MadeBy, Resolution, Resolver};
use crate::ledger::Figures;
use crate::requests::{MAX_REASON_CHARS, MAX_USER_ID_BYTES};
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

impl From<HoldError> for ServiceError {
    fn from(error: HoldError) -> Self {
        match error {
            HoldError::NotFound => ServiceError::NotFound("no such hold".into()),
            HoldError::Forbidden => ServiceError::Forbidden(HoldError::Forbidden.to_string()),
            HoldError::Resolved(status) => {
                ServiceError::HoldResolved(format!("the hold is already {status}"))
            }
            HoldError::Invalid(message) => ServiceError::Invalid(message),
            HoldError::Ledger(error) => error.into(),
        }
    }
}

fn view(hold: &Hold, figures: &Figures) -> HoldView {
    let resolved = hold.status != "open";
    HoldView {
        hold_id: hold.id.clone(),
        user_id: hold.user_id.clone(),
        amount: hold.amount,
        captured: hold.captured,
        released: if resolved { hold.amount - hold.captured } else { 0 },
        status: hold.status.clone(),
        reason: hold.reason.clone(),
        created_at: rfc3339(hold.created_at_ms),
        expires_at: rfc3339(hold.expires_at_ms),
        resolved_at: hold.resolved_at_ms.map(rfc3339),
        credits: figures.as_dto(),
        held: figures.held,
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
        let job = HoldJob {
            scope: caller.user_id.clone(),
            api_key: caller.api_key.clone(),
            privileged: caller.acts_for_others(),
            key,
            hash,
            target: target.clone(),
            action: HoldAction::Create { amount, ttl, reason },
        };
        let answer = self.inner.commits.run(job).await?.expect("a create always answers");
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
        let action = HoldAction::Resolve { hold_id: hold_id.to_string(), resolution };
        let job = HoldJob {
            scope: caller.user_id.clone(),
            api_key: caller.api_key.clone(),
            privileged: caller.acts_for_others(),
            key,
            hash,
            target: owner,
            action,
        };
        match self.inner.commits.run(job).await? {
            Some(answer) => Ok(answer),
            None => {
                // Past its time but not yet swept: release it now, then refuse.
                holds::expire_due(&self.inner.db.pool, 100).await?;
                Err(ServiceError::HoldResolved("the hold has expired".into()))
            }
        }
    }
}

enum HoldAction {
    Create { amount: i64, ttl: i64, reason: Option<String> },
    Resolve { hold_id: String, resolution: Resolution },
}

/// A hold's creation or resolution, run by the group committer. `None`: the
/// hold is past its expiry but not yet swept.
struct HoldJob {
    scope: String,
    /// The worker key acting, confirmed active inside the transaction.
    api_key: Option<String>,
    /// An API key or an admin: may resolve any hold, not only its own.
    privileged: bool,
    key: Option<crate::idempotency::IdempotencyKey>,
    hash: String,
    target: String,
    action: HoldAction,
}

impl HoldJob {
    fn made_by(&self) -> MadeBy {
        MadeBy::of(self.api_key.as_deref(), &self.scope, &self.target)
    }

    fn resolver(&self) -> Resolver<'_> {
        if self.privileged {
            Resolver::Privileged
        } else {
            Resolver::User(&self.scope)
        }
    }

    async fn run_in(
        &self,
        conn: &mut sqlx::AnyConnection,
    ) -> Result<Option<super::Replayable<HoldView>>, ServiceError> {
        if let Some(id) = &self.api_key {
            if !crate::auth::api_keys::active(conn, id).await? {
                return Err(super::revoked_key().into());
            }
        }
        if let Some(value) = claim_key(conn, &self.scope, self.key.as_ref(), &self.hash).await? {
            return Ok(Some(super::Replayable { value, replayed: true }));
        }
        let answer = self.claimed(conn).await;
        if let (Err(_) | Ok(None), Some(key)) = (&answer, &self.key) {
            // A refused request leaves its key free (this transaction may be shared).
            crate::idempotency::forget(conn, &self.scope, key).await?;
        }
        answer
    }

    async fn claimed(
        &self,
        conn: &mut sqlx::AnyConnection,
    ) -> Result<Option<super::Replayable<HoldView>>, ServiceError> {
        let (hold, figures) = match &self.action {
            HoldAction::Create { amount, ttl, reason } => {
                let expires_at = crate::db::now_ms() + ttl * 1000;
                let (target, reason) = (&self.target, reason.as_deref());
                let created =
                    holds::create(conn, target, *amount, expires_at, reason, &self.scope, self.made_by())
                        .await?;
                tracing::debug!(hold_id = %created.0.id, user_id = %self.target, amount, ttl, "hold created");
                created
            }
            HoldAction::Resolve { hold_id, resolution } => {
                let now = crate::db::now_ms();
                match holds::resolve(conn, hold_id, *resolution, self.resolver(), &self.scope, now).await {
                    Ok(resolved) => resolved,
                    Err(HoldError::Resolved(status)) if status == "expired" => return Ok(None),
                    Err(error) => return Err(error.into()),
                }
            }
        };
        let value = view(&hold, &figures);
        store_response(conn, &self.scope, self.key.as_ref(), &value).await?;
        Ok(Some(super::Replayable { value, replayed: false }))
    }
}

impl crate::group_commit::Job for HoldJob {
    type Output = Option<super::Replayable<HoldView>>;

    fn lock_order(&self) -> &str {
        &self.target
    }

    fn run<'c>(
        &'c self,
        conn: &'c mut sqlx::AnyConnection,
    ) -> crate::group_commit::BoxFuture<'c, Result<Self::Output, ServiceError>> {
        Box::pin(self.run_in(conn))
    }

    fn plain_hold(&self) -> Option<HoldOp<'_>> {
        if self.key.is_some() {
            return None;
        }
        match &self.action {
            HoldAction::Create { amount, ttl, reason } => Some(HoldOp::Create {
                user_id: &self.target,
                amount: *amount,
                expires_at_ms: crate::db::now_ms() + ttl * 1000,
                reason: reason.as_deref(),
                actor: &self.scope,
                api_key: self.api_key.as_deref(),
                made_by: self.made_by(),
            }),
            HoldAction::Resolve { hold_id, resolution: Resolution::Capture(None) } => Some(HoldOp::Capture {
                hold_id,
                user_id: &self.target,
                actor: &self.scope,
                api_key: self.api_key.as_deref(),
                resolver: self.resolver(),
            }),
            HoldAction::Resolve { .. } => None,
        }
    }

    fn plain_hold_applied(&self, hold: Hold, figures: Figures) -> Option<Self::Output> {
        Some(Some(super::Replayable { value: view(&hold, &figures), replayed: false }))
    }
}
