//! Hold creations and resolutions as the writer runs them.

use super::replay::{claim_key, forget, store_response, Replayable};
use crate::db::rfc3339;
use crate::dto::HoldView;
use crate::error::ServiceError;
use crate::holds::batch::HoldOp;
use crate::holds::{self, Hold, HoldError, HoldStatus, MadeBy, Resolution, Resolver};
use crate::idempotency::IdempotencyKey;
use crate::ids::{HoldId, UserId};
use crate::ledger::Figures;
use sqlx::AnyConnection;

/// What a hold request does.
#[derive(Debug, Clone)]
pub enum HoldAction {
    Create { amount: i64, ttl_seconds: i64, reason: Option<String> },
    Resolve { hold_id: HoldId, resolution: Resolution },
}

/// A hold's creation or resolution and who asks for it.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    pub scope: String,
    /// The worker key acting, confirmed active inside the transaction: a
    /// revoked key changes nothing from the next request on.
    pub api_key: Option<String>,
    /// An API key or an admin: may resolve any hold, not only its own.
    pub privileged: bool,
    pub key: Option<IdempotencyKey>,
    pub hash: String,
    /// The hold's owner.
    pub target: UserId,
    pub action: HoldAction,
}

/// The contract's view of a hold and its account's figures.
pub(crate) fn view(hold: &Hold, figures: &Figures) -> HoldView {
    let resolved = hold.status != HoldStatus::Open;
    HoldView {
        hold_id: hold.id.clone(),
        user_id: hold.user_id.clone(),
        amount: hold.amount,
        captured: hold.captured,
        released: if resolved { hold.amount - hold.captured } else { 0 },
        status: hold.status.as_str().to_string(),
        reason: hold.reason.clone(),
        created_at: rfc3339(hold.created_at_ms),
        expires_at: rfc3339(hold.expires_at_ms),
        resolved_at: hold.resolved_at_ms.map(rfc3339),
        credits: figures.as_dto(),
        held: figures.held,
    }
}

impl HoldRequest {
    fn made_by(&self) -> MadeBy {
        MadeBy::of(self.api_key.as_deref(), &self.scope, self.target.as_str())
    }

    fn resolver(&self) -> Resolver<'_> {
        if self.privileged {
            Resolver::Privileged
        } else {
            Resolver::User(&self.scope)
        }
    }

    /// A creation or full capture without an Idempotency-Key.
    pub(super) fn plain_hold(&self) -> Option<HoldOp<'_>> {
        if self.key.is_some() {
            return None;
        }
        match &self.action {
            HoldAction::Create { amount, ttl_seconds, reason } => Some(HoldOp::Create {
                user_id: self.target.as_str(),
                amount: *amount,
                expires_at_ms: crate::db::now_ms() + ttl_seconds * 1000,
                reason: reason.as_deref(),
                actor: &self.scope,
                api_key: self.api_key.as_deref(),
                made_by: self.made_by(),
            }),
            HoldAction::Resolve { hold_id, resolution: Resolution::Capture(None) } => Some(HoldOp::Capture {
                hold_id: hold_id.as_str(),
                user_id: self.target.as_str(),
                actor: &self.scope,
                api_key: self.api_key.as_deref(),
                resolver: self.resolver(),
            }),
            HoldAction::Resolve { .. } => None,
        }
    }

    pub(super) async fn run(
        &self,
        conn: &mut AnyConnection,
    ) -> Result<Option<Replayable<HoldView>>, ServiceError> {
        if let Some(id) = &self.api_key {
            if !crate::auth::api_keys::active(conn, id).await? {
                return Err(crate::auth::api_keys::revoked().into());
            }
        }
        if let Some(value) = claim_key(conn, &self.scope, self.key.as_ref(), &self.hash).await? {
            return Ok(Some(Replayable { value, replayed: true }));
        }
        let answer = self.claimed(conn).await;
        if matches!(answer, Err(_) | Ok(None)) {
            forget(conn, &self.scope, self.key.as_ref()).await?;
        }
        answer
    }

    async fn claimed(&self, conn: &mut AnyConnection) -> Result<Option<Replayable<HoldView>>, ServiceError> {
        let (hold, figures) = match &self.action {
            HoldAction::Create { amount, ttl_seconds, reason } => {
                let expires_at = crate::db::now_ms() + ttl_seconds * 1000;
                let (target, reason) = (self.target.as_str(), reason.as_deref());
                let made_by = self.made_by();
                let created =
                    holds::create(conn, target, *amount, expires_at, reason, &self.scope, made_by).await?;
                tracing::debug!(hold_id = %created.0.id, user_id = %self.target, amount, "hold created");
                created
            }
            HoldAction::Resolve { hold_id, resolution } => {
                let now = crate::db::now_ms();
                match holds::resolve(conn, hold_id.as_str(), *resolution, self.resolver(), &self.scope, now)
                    .await
                {
                    Ok(resolved) => resolved,
                    Err(HoldError::Resolved(HoldStatus::Expired)) => return Ok(None),
                    Err(error) => return Err(error.into()),
                }
            }
        };
        let value = view(&hold, &figures);
        store_response(conn, &self.scope, self.key.as_ref(), &value).await?;
        Ok(Some(Replayable { value, replayed: false }))
    }
}
