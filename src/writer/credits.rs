//! `POST /api/credits` (deduct, add, set) and the admin's batch adjustments,
//! as the writer runs them: inside a transaction that may be shared.

use super::replay::{claim_key, forget, store_response, Replayable};
use crate::dto::CreditsView;
use crate::error::ServiceError;
use crate::idempotency::IdempotencyKey;
use crate::ids::UserId;
use crate::ledger::batch::PlainSpend;
use crate::ledger::expiry;
use crate::ledger::grants::{self, GrantEffect, GrantSpec};
use crate::ledger::store::{self, EntryMeta, Guard, LedgerError};
use crate::ledger::Delta;
use crate::requests::{Action, ChangeRequest, GrantTerms};
use crate::view;
use sqlx::AnyConnection;

/// One change request and who asks for it.
#[derive(Debug, Clone)]
pub struct CreditChange {
    /// Whose Idempotency-Keys the request's key is one of.
    pub scope: String,
    /// An admin's change: audited, with the figures before and after.
    pub is_admin: bool,
    pub target: UserId,
    pub request: ChangeRequest,
    pub key: Option<IdempotencyKey>,
    pub hash: String,
    /// Who the entry names (`admin:<id>` or the user).
    pub actor: String,
    /// The audit action's prefix: `credits` (the API) or `batch` (the admin's file).
    pub audit_prefix: &'static str,
    pub cost_per_video: i64,
    /// When the request arrived: its grant dates are checked against this,
    /// not against when its batch runs.
    pub received_at_ms: i64,
}

/// What a change produced: its answer, or (with nothing to store under an
/// Idempotency-Key or in the audit log) only the commit, the answer to be
/// read after it, outside the shared transaction.
#[derive(Debug)]
pub enum Changed {
    Answered(Replayable<CreditsView>),
    Committed(UserId),
}

impl CreditChange {
    pub(super) fn plain_spend(&self) -> Option<PlainSpend<'_>> {
        let plain = self.request.action == Action::Deduct && self.key.is_none() && !self.is_admin;
        plain.then(|| PlainSpend {
            user_id: self.target.as_str(),
            amount: self.request.amount.get(),
            reason: self.request.reason.as_deref(),
            actor: &self.actor,
        })
    }

    pub(super) async fn run(&self, conn: &mut AnyConnection) -> Result<Changed, ServiceError> {
        if let Some(value) = claim_key(conn, &self.scope, self.key.as_ref(), &self.hash).await? {
            return Ok(Changed::Answered(Replayable { value, replayed: true }));
        }
        let answer = self.claimed(conn).await;
        if answer.is_err() {
            forget(conn, &self.scope, self.key.as_ref()).await?;
        }
        answer
    }

    async fn claimed(&self, conn: &mut AnyConnection) -> Result<Changed, ServiceError> {
        let target = self.target.as_str();
        let before = if self.is_admin {
            Some(store::lock(conn, target).await?.ok_or(LedgerError::NoAccount)?.figures)
        } else {
            None
        };
        apply_change(conn, target, &self.request, &self.actor, self.received_at_ms).await?;
        if before.is_none() && self.key.is_none() {
            return Ok(Changed::Committed(self.target.clone()));
        }
        let snapshot =
            view::snapshot(conn, target, crate::db::now_ms()).await?.ok_or(LedgerError::NoAccount)?;
        if let Some(before) = &before {
            let action = format!("{}.{}", self.audit_prefix, self.request.action.as_str());
            let reason = self.request.reason.as_deref().unwrap_or("(no reason given)");
            let entry = crate::audit::Action {
                actor: &self.actor,
                action: &action,
                target_user: Some(target),
                reason,
                before: Some(before),
                after: Some(&snapshot.account.figures),
            };
            crate::audit::record(conn, &entry).await?;
        }
        let view = view::view(&snapshot, self.cost_per_video);
        store_response(conn, &self.scope, self.key.as_ref(), &view).await?;
        Ok(Changed::Answered(Replayable { value: view, replayed: false }))
    }
}

/// The answers of plain spends applied set-wise, read inside the batch's
/// transaction after its writes (`changes` in batch order).
pub(super) async fn answers_in<C: crate::exec::Exec>(
    changes: &[&CreditChange],
    conn: &mut C,
) -> Result<Vec<super::Applied>, ServiceError> {
    let mut users: Vec<&str> = changes.iter().map(|change| change.target.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    let snapshots = view::snapshots(conn, &users, crate::db::now_ms()).await?;
    changes
        .iter()
        .map(|change| {
            let snapshot = snapshots.get(change.target.as_str()).ok_or(LedgerError::NoAccount)?;
            let value = view::view(snapshot, change.cost_per_video);
            Ok(super::Applied::Credits(Changed::Answered(Replayable { value, replayed: false })))
        })
        .collect()
}

/// The ledger write for one change request. Add and set lock the account and
/// bring its grants up to date first, so they only ever see live grants; a
/// deduct's conditional debit is itself the lock, and it catches up due
/// grants itself (`expiry::apply_covered`).
async fn apply_change(
    conn: &mut AnyConnection,
    target: &str,
    request: &ChangeRequest,
    actor: &str,
    received_at_ms: i64,
) -> Result<(), ServiceError> {
    let now = crate::db::now_ms();
    if request.action != Action::Deduct {
        store::lock(conn, target).await?.ok_or(LedgerError::NoAccount)?;
        expiry::catch_up(conn, target, now).await?;
    }
    let amount = request.amount.get();
    let meta = EntryMeta { reason: request.reason.as_deref(), actor, ..Default::default() };
    match request.action {
        Action::Deduct => {
            expiry::apply_covered(conn, target, &Delta::spend(amount), amount, &meta).await?;
        }
        Action::Add => {
            let spec = grant_spec(&request.grant, received_at_ms)?;
            if spec.effective_at.is_some_and(|at| at > now) {
                grants::schedule(conn, target, "adjust", amount, &spec).await?;
            } else {
                let meta = EntryMeta { grants: GrantEffect::Create(spec), ..meta };
                store::apply(conn, target, &Delta::adjust(amount), Guard::None, &meta).await?;
            }
        }
        Action::Set => {
            let account = store::load(conn, target).await?.ok_or(LedgerError::NoAccount)?;
            if let Some(delta) = Delta::set_to(&account.figures, amount) {
                store::apply(conn, target, &delta, Guard::None, &meta).await?;
            }
        }
    }
    Ok(())
}

/// Turns an `add`'s grant terms into a `GrantSpec`, refusing impossible dates.
fn grant_spec(terms: &GrantTerms, now: i64) -> Result<GrantSpec, ServiceError> {
    const TEN_YEARS_MS: i64 = 10 * 366 * 86_400_000;
    let effective_at = rfc3339_ms(&terms.effective_at, "effectiveAt")?;
    let expires_at = rfc3339_ms(&terms.expires_at, "expiresAt")?;
    let start = effective_at.unwrap_or(now).max(now);
    if effective_at.is_some_and(|at| at > now + TEN_YEARS_MS)
        || expires_at.is_some_and(|at| at > now + TEN_YEARS_MS)
    {
        return Err(ServiceError::Invalid("grant dates must be within ten years".into()));
    }
    if expires_at.is_some_and(|at| at <= start) {
        return Err(ServiceError::Invalid("`expiresAt` must be after now and after `effectiveAt`".into()));
    }
    let category = match terms.category.as_deref() {
        Some("free") => "free",
        Some("paid") => "paid",
        _ => "promotional",
    };
    Ok(GrantSpec {
        category,
        priority: terms.priority.unwrap_or(grants::DEFAULT_PRIORITY),
        effective_at,
        expires_at,
        reference: None,
    })
}

fn rfc3339_ms(value: &Option<String>, field: &str) -> Result<Option<i64>, ServiceError> {
    value
        .as_deref()
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|at| at.timestamp_millis())
                .map_err(|_| ServiceError::Invalid(format!("`{field}` must be an RFC 3339 time")))
        })
        .transpose()
}
