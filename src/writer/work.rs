//! What a batch is made of: the queued operations with their replies, the
//! set-wise parts of a batch, and the timing of its phases.

use super::credits::CreditChange;
use super::op::{Applied, LedgerOp};
use crate::error::ServiceError;
use crate::holds::batch::HoldOp;
use crate::ledger::batch::PlainSpend;
use tokio::sync::oneshot;

pub(super) type Answer = Result<Applied, ServiceError>;

/// An operation waiting for its batch, and where its answer goes.
pub(super) struct Queued {
    pub(super) op: LedgerOp,
    pub(super) reply: oneshot::Sender<Answer>,
}

pub(super) fn plain_spends(batch: &[Queued]) -> Vec<PlainSpend<'_>> {
    if !crate::tuning::get().set_wise_spends {
        return Vec::new();
    }
    batch.iter().filter_map(|queued| queued.op.plain_spend()).collect()
}

pub(super) fn plain_holds(batch: &[Queued]) -> Vec<HoldOp<'_>> {
    if !crate::tuning::get().set_wise_holds {
        return Vec::new();
    }
    batch.iter().filter_map(|queued| queued.op.plain_hold()).collect()
}

/// The spends of `batch` that were applied set-wise, in batch order.
pub(super) fn applied_spends<'a>(batch: &'a [Queued], applied: &[bool]) -> Vec<&'a CreditChange> {
    batch
        .iter()
        .zip(applied)
        .filter(|(_, applied)| **applied)
        .filter_map(|(queued, _)| queued.op.spend())
        .collect()
}

/// How long each phase of a transaction of the writer (a batch, or an
/// operation alone) took: `group_commit_phase_seconds` by `phase`: `begin`,
/// `work` (every statement) and `commit` (the flush included). Where a
/// batch's time goes is what decides the spend rate.
pub(super) struct Phases(std::time::Instant);

impl Phases {
    pub(super) fn start() -> Self {
        Self(std::time::Instant::now())
    }

    pub(super) fn done(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        metrics::histogram!("group_commit_phase_seconds", "phase" => phase)
            .record(now.duration_since(self.0).as_secs_f64());
        self.0 = now;
    }
}
