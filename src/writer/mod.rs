//! The one writer: every change to a balance is a `LedgerOp`, submitted
//! here, and answered once the transaction that holds it has committed.
//!
//! Concurrent operations share transactions (group commit): one commit, so
//! one WAL flush on SQLite (synchronous=FULL) or PostgreSQL
//! (synchronous_commit on), pays for a whole batch, yet nobody is answered
//! before the commit that holds their change, so an acknowledged spend
//! survives a crash. There is no timer: a batch is whatever queued while
//! the previous one was committing, so a lone request waits for nobody.
//!
//! - `op`: what can change a balance, and what each answers;
//! - `credits`, `hold`, `account`, `delivery`: how each operation runs in a
//!   transaction;
//! - `work`: a queued operation, a batch's set-wise parts, phase timings;
//! - `batch`: one batch's transaction, set-wise where it can be;
//! - `in_place`: SQLite's set-wise batches on the writer's own connection;
//! - `conn`: the worker's kept connections.

mod account;
mod batch;
mod conn;
mod credits;
mod delivery;
mod hold;
mod in_place;
mod op;
mod replay;
mod work;

pub use account::{ExpireDue, OpenAccount, Opened, OperatorAdjust, PendingPurchases, VoidGrant, Voided};
pub use credits::{Changed, CreditChange};
pub use delivery::{ClerkDelivery, CreemDelivery, Delivered};
pub use hold::{HoldAction, HoldRequest};
pub use op::{Applied, LedgerOp};
pub use replay::Replayable;

use crate::error::ServiceError;
use sqlx::AnyPool;
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};
use work::Queued;

/// The writer of one process (cheap to clone).
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    sqlite: bool,
    /// How many batches may be open at once (1 for SQLite: one writer).
    workers: usize,
    max_batch: usize,
    /// One queue per worker; an operation goes to the worker of its account.
    queues: OnceLock<Vec<mpsc::Sender<Queued>>>,
}

/// Workers per process on PostgreSQL, each batching the changes of its own
/// share of the accounts, so that one batch's flush overlaps the other's
/// statements. SQLite has one writer, so one worker.
pub const POSTGRES_WORKERS: usize = 2;

/// The most operations one batch takes.
const MAX_BATCH: usize = 256;

impl Writer {
    pub fn new(pool: AnyPool, sqlite: bool) -> Self {
        let workers = if sqlite { 1 } else { POSTGRES_WORKERS };
        let inner = Inner { pool, sqlite, workers, max_batch: MAX_BATCH, queues: OnceLock::new() };
        Self { inner: Arc::new(inner) }
    }

    /// Runs `op` in the next batch and answers after that batch committed.
    pub async fn submit(&self, op: LedgerOp) -> Result<Applied, ServiceError> {
        let (reply, answer) = oneshot::channel();
        let queue = self.queue(op.account());
        queue
            .send(Queued { op, reply })
            .await
            .map_err(|_| ServiceError::Internal("the writer stopped".into()))?;
        answer.await.map_err(|_| ServiceError::Internal("the writer dropped an operation".into()))?
    }

    /// Starts the workers now rather than with the first operation (call
    /// inside the runtime): a server opens its SQLite writer connections as
    /// it starts, so its open files and memory do not step up under load.
    pub fn start(&self) {
        self.queues();
    }

    /// The queue of the worker that batches `account`'s changes. All changes
    /// of one account go to one worker: two batches of this process then
    /// never wait for each other's account locks. Which worker decides
    /// nothing else: any batch still checks and locks for itself.
    fn queue(&self, account: &str) -> &mpsc::Sender<Queued> {
        let queues = self.queues();
        &queues[worker_of(account, queues.len())]
    }

    fn queues(&self) -> &Vec<mpsc::Sender<Queued>> {
        self.inner.queues.get_or_init(|| (0..self.inner.workers).map(|_| self.spawn_worker()).collect())
    }

    /// PostgreSQL: each worker on a thread of its own, with its own
    /// connection: a batch is a dozen round trips, each waking the worker,
    /// and on the shared runtime each wake-up would wait behind the request
    /// handlers. SQLite runs its batches in place instead.
    fn spawn_worker(&self) -> mpsc::Sender<Queued> {
        let (sender, mut receiver) = mpsc::channel::<Queued>(16_384);
        let (pool, max, sqlite) = (self.inner.pool.clone(), self.inner.max_batch, self.inner.sqlite);
        let work = async move {
            let mut conn = conn::Conn::new(pool, sqlite);
            conn.in_place();
            while let Some(batch) = crate::batching::next_batch(&mut receiver, max).await {
                batch::run_batch(&mut conn, batch).await;
            }
        };
        if sqlite || !crate::tuning::get().own_threads {
            tokio::spawn(work);
        } else {
            crate::db::spawn_on_own_thread("group-commit", work);
        }
        sender
    }
}

/// The worker (of `workers`) that batches `account`'s changes: FNV-1a of its id.
fn worker_of(account: &str, workers: usize) -> usize {
    let hash = account.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % workers as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::worker_of;

    #[test]
    fn an_account_always_goes_to_the_same_worker_and_the_accounts_are_shared_out() {
        for workers in 1..=4 {
            let mut per_worker = vec![0; workers];
            for user in 0..1_000 {
                let account = format!("user_{user}");
                let worker = worker_of(&account, workers);
                assert_eq!(worker, worker_of(&account, workers));
                per_worker[worker] += 1;
            }
            // Each worker gets a fair share (within 20 % of an even split).
            for count in per_worker {
                assert!(count * workers * 5 >= 1_000 * 4 && count * workers * 5 <= 1_000 * 6, "{count}");
            }
        }
    }
}
