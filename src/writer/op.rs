//! What changes a balance: the closed set of operations the writer runs, and
//! what each one answers.

use super::account::{ExpireDue, OpenAccount, Opened, OperatorAdjust, PendingPurchases, VoidGrant, Voided};
use super::credits::{Changed, CreditChange};
use super::delivery::{ClerkDelivery, CreemDelivery, Delivered};
use super::hold::HoldRequest;
use super::replay::Replayable;
use crate::dto::HoldView;
use crate::error::ServiceError;
use crate::holds::batch::HoldOp;
use crate::holds::Hold;
use crate::ledger::batch::PlainSpend;
use crate::ledger::Figures;
use crate::requests::Action;
use sqlx::AnyConnection;

/// One change to one account's balance.
#[derive(Debug, Clone)]
pub enum LedgerOp {
    /// `POST /api/credits` deduct: a user spends its own credits.
    Spend(CreditChange),
    /// `POST /api/credits` add: an admin grants credits (now or scheduled).
    Grant(CreditChange),
    /// `POST /api/credits` set: an admin moves the balance to a figure.
    Adjust(CreditChange),
    /// Reserves credits for work about to run.
    Hold(HoldRequest),
    /// Spends all or part of a hold and returns the rest.
    Capture(HoldRequest),
    /// Returns a hold's credits.
    Release(HoldRequest),
    /// An admin ends a grant: its unspent rest leaves the account.
    Void(VoidGrant),
    /// Due grants start and end; due holds let go of their credits.
    Expire(ExpireDue),
    /// A Creem payment: credits bought (or a delivery Credits does not use).
    Purchase(CreemDelivery),
    /// A Creem refund or dispute: the purchase's credits go back.
    Clawback(CreemDelivery),
    /// Credits payments that arrived before their user.
    PendingPurchases(PendingPurchases),
    /// A Clerk user event: the account is made (with its sign-up grant),
    /// updated or closed.
    Profile(ClerkDelivery),
    /// Makes the account, with its sign-up grant, exactly once.
    Open(OpenAccount),
    /// An operator's adjustment (`credits grant`).
    Operator(OperatorAdjust),
}

/// What an operation produced, one variant per kind of answer.
#[derive(Debug)]
pub enum Applied {
    Credits(Changed),
    /// `None`: the hold is past its expiry but not yet swept.
    Hold(Option<Replayable<HoldView>>),
    Voided(Voided),
    /// How many grants and holds ended or started.
    Expired(usize),
    /// How many credits the waiting payments brought.
    Purchased(i64),
    Opened(Opened),
    Adjusted(Figures),
    Delivered(Delivered),
}

impl LedgerOp {
    /// The operation a verified Creem delivery asks for.
    pub fn creem(delivery: CreemDelivery) -> Self {
        match delivery.event {
            crate::webhooks::creem::Event::Reversal(_) => Self::Clawback(delivery),
            _ => Self::Purchase(delivery),
        }
    }

    /// The change a `POST /api/credits` request asks for.
    pub fn credits(change: CreditChange) -> Self {
        match change.request.action {
            Action::Deduct => Self::Spend(change),
            Action::Add => Self::Grant(change),
            Action::Set => Self::Adjust(change),
        }
    }

    /// The account the operation changes: batches lock accounts in this
    /// order, and every operation of one account goes to one worker.
    pub(super) fn account(&self) -> &str {
        match self {
            Self::Spend(change) | Self::Grant(change) | Self::Adjust(change) => change.target.as_str(),
            Self::Hold(hold) | Self::Capture(hold) | Self::Release(hold) => hold.target.as_str(),
            Self::Void(void) => void.owner.as_str(),
            Self::Expire(due) => due.account(),
            Self::PendingPurchases(pending) => pending.user_id.as_str(),
            Self::Purchase(delivery) | Self::Clawback(delivery) => delivery.account(),
            Self::Profile(delivery) => delivery.account(),
            Self::Open(open) => open.user_id.as_str(),
            Self::Operator(adjust) => adjust.user_id.as_str(),
        }
    }

    /// Whether it may share a transaction with others. The rest (admin and
    /// background work) runs alone: rare, and free to read what it likes.
    pub(super) fn shares_transaction(&self) -> bool {
        matches!(
            self,
            Self::Spend(_)
                | Self::Grant(_)
                | Self::Adjust(_)
                | Self::Hold(_)
                | Self::Capture(_)
                | Self::Release(_)
        )
    }

    /// A spend with nothing to store besides the ledger's rows.
    pub(super) fn plain_spend(&self) -> Option<PlainSpend<'_>> {
        match self {
            Self::Spend(change) => change.plain_spend(),
            _ => None,
        }
    }

    pub(super) fn spend(&self) -> Option<&CreditChange> {
        match self {
            Self::Spend(change) => Some(change),
            _ => None,
        }
    }

    /// A hold creation or full capture with nothing to store besides the ledger's rows.
    pub(super) fn plain_hold(&self) -> Option<HoldOp<'_>> {
        match self {
            Self::Hold(hold) | Self::Capture(hold) => hold.plain_hold(),
            _ => None,
        }
    }

    /// The answer to a plain hold request applied set-wise.
    pub(super) fn hold_applied(hold: &Hold, figures: &Figures) -> Applied {
        Applied::Hold(Some(Replayable { value: super::hold::view(hold, figures), replayed: false }))
    }

    /// Runs the operation on its own, in `conn`'s transaction.
    pub(super) async fn run(&self, conn: &mut AnyConnection) -> Result<Applied, ServiceError> {
        match self {
            Self::Spend(change) | Self::Grant(change) | Self::Adjust(change) => {
                change.run(conn).await.map(Applied::Credits)
            }
            Self::Hold(hold) | Self::Capture(hold) | Self::Release(hold) => {
                hold.run(conn).await.map(Applied::Hold)
            }
            Self::Void(void) => void.run(conn).await.map(Applied::Voided),
            Self::Expire(due) => due.run(conn).await.map(Applied::Expired),
            Self::PendingPurchases(pending) => pending.run(conn).await.map(Applied::Purchased),
            Self::Purchase(delivery) | Self::Clawback(delivery) => {
                delivery.run(conn).await.map(Applied::Delivered)
            }
            Self::Profile(delivery) => delivery.run(conn).await.map(Applied::Delivered),
            Self::Open(open) => open.run(conn).await.map(Applied::Opened),
            Self::Operator(adjust) => adjust.run(conn).await.map(Applied::Adjusted),
        }
    }
}

fn mismatch(expected: &str, applied: &Applied) -> ServiceError {
    ServiceError::Internal(format!("the writer answered {expected} with {applied:?}"))
}

impl Applied {
    pub fn into_credits(self) -> Result<Changed, ServiceError> {
        match self {
            Self::Credits(changed) => Ok(changed),
            other => Err(mismatch("a credits change", &other)),
        }
    }

    pub fn into_hold(self) -> Result<Option<Replayable<HoldView>>, ServiceError> {
        match self {
            Self::Hold(hold) => Ok(hold),
            other => Err(mismatch("a hold request", &other)),
        }
    }

    pub fn into_voided(self) -> Result<Voided, ServiceError> {
        match self {
            Self::Voided(voided) => Ok(voided),
            other => Err(mismatch("a void", &other)),
        }
    }

    pub fn into_count(self) -> Result<i64, ServiceError> {
        match self {
            Self::Expired(count) => Ok(count as i64),
            Self::Purchased(credits) => Ok(credits),
            other => Err(mismatch("a sweep or purchase", &other)),
        }
    }

    pub fn into_opened(self) -> Result<Opened, ServiceError> {
        match self {
            Self::Opened(opened) => Ok(opened),
            other => Err(mismatch("an account opening", &other)),
        }
    }

    pub fn into_delivered(self) -> Result<Delivered, ServiceError> {
        match self {
            Self::Delivered(delivered) => Ok(delivered),
            other => Err(mismatch("a webhook delivery", &other)),
        }
    }

    pub fn into_figures(self) -> Result<Figures, ServiceError> {
        match self {
            Self::Adjusted(figures) => Ok(figures),
            other => Err(mismatch("an adjustment", &other)),
        }
    }
}
