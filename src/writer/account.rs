//! The writer's operations besides requests and holds: an account's
//! opening, grants that start, end or are voided, holds that expire,
//! payments that waited for their user, and an operator's adjustment.

use crate::error::ServiceError;
use crate::holds::{self, HoldError, Resolution, Resolver};
use crate::ids::{GrantId, HoldId, UserId};
use crate::ledger::grants::GrantEffect;
use crate::ledger::store::{self, Account, EntryMeta, Guard, LedgerError};
use crate::ledger::{expiry, Delta, EntryKind, Figures};
use sqlx::AnyConnection;

/// `POST /api/admin/grants/{id}/void`: the grant's unspent rest leaves its owner's account.
#[derive(Debug, Clone)]
pub struct VoidGrant {
    pub grant_id: GrantId,
    /// The grant's owner, read before (an owner never changes).
    pub owner: UserId,
    pub reason: String,
    pub actor: String,
}

/// A voided grant: what left the account, and the figures after.
#[derive(Debug, Clone)]
pub struct Voided {
    pub owner: UserId,
    pub removed: i64,
    pub after: Figures,
}

impl VoidGrant {
    pub(super) async fn run(&self, conn: &mut AnyConnection) -> Result<Voided, ServiceError> {
        let owner = self.owner.as_str();
        let before = store::lock(conn, owner).await?.ok_or(LedgerError::NoAccount)?.figures;
        let removed = expiry::end(conn, self.grant_id.get(), EntryKind::Void, &self.reason, &self.actor)
            .await?
            .ok_or_else(|| ServiceError::Invalid("the grant has already expired or been voided".into()))?;
        let after = store::load(conn, owner).await?.ok_or(LedgerError::NoAccount)?.figures;
        let action = crate::audit::Action {
            actor: &self.actor,
            action: "grant.void",
            target_user: Some(owner),
            reason: &self.reason,
            before: Some(&before),
            after: Some(&after),
        };
        crate::audit::record(conn, &action).await?;
        Ok(Voided { owner: self.owner.clone(), removed, after })
    }
}

/// What has come due.
#[derive(Debug, Clone)]
pub enum ExpireDue {
    /// The user's grants due to start or end.
    Grants { user_id: UserId },
    /// A hold whose time is up: its credits go back.
    Hold { hold_id: HoldId, owner: UserId },
}

impl ExpireDue {
    pub(super) fn account(&self) -> &str {
        match self {
            Self::Grants { user_id } => user_id.as_str(),
            Self::Hold { owner, .. } => owner.as_str(),
        }
    }

    /// How many grants or holds it ended or started (0: another process was first).
    pub(super) async fn run(&self, conn: &mut AnyConnection) -> Result<usize, ServiceError> {
        let now = crate::db::now_ms();
        match self {
            Self::Grants { user_id } => {
                store::lock(conn, user_id.as_str()).await?;
                Ok(expiry::catch_up(conn, user_id.as_str(), now).await?)
            }
            Self::Hold { hold_id, .. } => {
                match holds::resolve(
                    conn,
                    hold_id.as_str(),
                    Resolution::Expire,
                    Resolver::Privileged,
                    "system",
                    now,
                )
                .await
                {
                    Ok(_) => Ok(1),
                    Err(HoldError::Resolved(_) | HoldError::Invalid(_)) => Ok(0),
                    Err(error) => Err(error.into()),
                }
            }
        }
    }
}

/// Payments that arrived before their user (by id, or by the account's
/// verified email), credited once the account exists.
#[derive(Debug, Clone)]
pub struct PendingPurchases {
    pub user_id: UserId,
    pub rollover_cap: Option<i64>,
}

impl PendingPurchases {
    pub(super) async fn run(&self, conn: &mut AnyConnection) -> Result<i64, ServiceError> {
        Ok(crate::payments::credit_pending(conn, self.user_id.as_str(), self.rollover_cap).await?)
    }
}

/// A new account with its sign-up grant; nothing when it exists already.
#[derive(Debug, Clone)]
pub struct OpenAccount {
    pub user_id: UserId,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub initial_credits: i64,
    pub initial_grant: GrantEffect,
}

/// The account as it now is, and whether this operation made it.
#[derive(Debug, Clone)]
pub struct Opened {
    pub account: Account,
    pub created: bool,
}

impl OpenAccount {
    pub(super) async fn run(&self, conn: &mut AnyConnection) -> Result<Opened, ServiceError> {
        let email =
            self.email.as_deref().map(|address| store::EmailClaim { address, verified: self.email_verified });
        let created = store::create_if_missing(
            conn,
            self.user_id.as_str(),
            email,
            self.name.as_deref(),
            self.initial_credits,
            self.initial_grant.clone(),
        )
        .await?;
        let account = store::load(conn, self.user_id.as_str()).await?.ok_or(LedgerError::NoAccount)?;
        Ok(Opened { account, created })
    }
}

/// `credits grant`: an operator adds (or, negative, removes) credits.
#[derive(Debug, Clone)]
pub struct OperatorAdjust {
    pub user_id: UserId,
    pub amount: i64,
    pub reason: String,
}

impl OperatorAdjust {
    pub(super) async fn run(&self, conn: &mut AnyConnection) -> Result<Figures, ServiceError> {
        let meta = EntryMeta { reason: Some(&self.reason), actor: "cli", ..Default::default() };
        let applied =
            store::apply(conn, self.user_id.as_str(), &Delta::adjust(self.amount), Guard::None, &meta)
                .await?;
        Ok(applied.figures)
    }
}
