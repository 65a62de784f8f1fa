//! How a worker runs a batch of operations.
//!
//! Operations that share a transaction (requests and holds) run in one: each
//! runs its own checks and its own conditional debit in turn, so a later one
//! sees the earlier ones' writes and "check and debit are one statement"
//! holds unchanged. Two kinds of batch go faster: one made only of plain
//! spends (`ledger::batch`) and one made only of plain hold creations and
//! full captures (`holds::batch`) are applied set-wise, each account checked
//! and debited once by the batch's total for it; what they cannot apply that
//! way then runs one by one. On SQLite such a batch runs on the writer's own
//! rusqlite connection, in place (`run_in_place`).
//!
//! The rules for an operation:
//! - one that refuses (402, 403, 409, …) leaves no write of its own behind
//!   that would be wrong on its own (it frees an Idempotency-Key it claimed);
//!   bringing due grants up to date is right whatever follows, so it may stay;
//! - a database error fails the whole batch: the transaction rolls back and
//!   every operation of it runs again alone, in its own transaction.
//!
//! Batches take account locks in user-id order, so two batches (of this or
//! another instance) never wait on each other in a cycle.

use super::conn::Conn;
use super::credits::{answers_in, Changed};
use super::op::{Applied, LedgerOp};
use super::work::{applied_spends, plain_holds, plain_spends, Answer, Phases, Queued};
use crate::error::ServiceError;

/// How many times an operation alone runs when the database keeps rolling
/// it back as a deadlock's victim.
const ATTEMPTS: usize = 4;

pub(super) async fn run_batch(conn: &mut Conn, batch: Vec<Queued>) {
    let (shared, alone): (Vec<Queued>, Vec<Queued>) =
        batch.into_iter().partition(|queued| queued.op.shares_transaction());
    run_shared(conn, shared).await;
    for queued in alone {
        let answer = run_alone(conn, &queued.op).await;
        let _ = queued.reply.send(answer);
    }
}

async fn run_shared(conn: &mut Conn, mut batch: Vec<Queued>) {
    batch.sort_by(|a, b| a.op.account().cmp(b.op.account()));
    if batch.len() > 1 {
        metrics::histogram!("group_commit_batch_size").record(batch.len() as f64);
    }
    // What is left after a batch committed in place did not apply set-wise
    // just now, so it runs one by one.
    let mut set_wise = true;
    if let Some(answers) = super::in_place::run(conn, &batch) {
        set_wise = false;
        let mut rest = Vec::new();
        for (queued, answer) in batch.into_iter().zip(answers) {
            match answer {
                Some(answer) => {
                    let _ = queued.reply.send(answer);
                }
                None => rest.push(queued),
            }
        }
        batch = rest;
    }
    if batch.len() <= 1 {
        if let Some(queued) = batch.pop() {
            let answer = run_alone(conn, &queued.op).await;
            let _ = queued.reply.send(answer);
        }
        return;
    }
    match run_together(conn, &batch, set_wise).await {
        Ok(answers) => {
            for (queued, answer) in batch.into_iter().zip(answers) {
                let _ = queued.reply.send(answer);
            }
        }
        Err(error) => {
            tracing::warn!(%error, operations = batch.len(), "batch failed; running its operations one by one");
            for queued in batch {
                let answer = run_alone(conn, &queued.op).await;
                let _ = queued.reply.send(answer);
            }
        }
    }
}

/// All operations in one transaction; `Err` when the batch must be retried
/// one by one. With `set_wise` false, each runs on its own in it.
async fn run_together(
    conn: &mut Conn,
    batch: &[Queued],
    set_wise: bool,
) -> Result<Vec<Answer>, ServiceError> {
    let sqlite = conn.sqlite;
    let mut phase = Phases::start();
    let mut tx = conn.begin(true).await?;
    phase.done("begin");
    match work_together(&mut tx, batch, set_wise, sqlite).await {
        Ok(answers) => {
            phase.done("work");
            tx.commit().await?;
            phase.done("commit");
            Ok(answers)
        }
        Err(error) => {
            roll_back(tx).await;
            Err(error)
        }
    }
}

/// A kept connection is not handed back to a pool, so a dropped
/// transaction's `ROLLBACK` would wait for the connection's next statement,
/// and the transaction's row locks with it: a refused change would keep its
/// account locked until the worker's next batch. So it rolls back now.
async fn roll_back(tx: sqlx::Transaction<'_, sqlx::Any>) {
    if let Err(error) = tx.rollback().await {
        tracing::warn!(%error, "rollback failed");
    }
}

async fn work_together(
    tx: &mut sqlx::AnyConnection,
    batch: &[Queued],
    set_wise: bool,
    sqlite: bool,
) -> Result<Vec<Answer>, ServiceError> {
    let plain = plain_spends(batch);
    let applied = if set_wise && plain.len() == batch.len() {
        crate::ledger::batch::apply_spends(&mut *tx, &plain, !sqlite).await?
    } else {
        vec![false; batch.len()]
    };
    // SQLite: the applied spends' answers are read here, on the writer's own
    // connection, whose page cache stays valid from batch to batch (a
    // reader's is dropped after every commit of another connection).
    // PostgreSQL reads them after the commit, so that no row lock is held
    // for the read.
    let mut read_here = Vec::new().into_iter();
    let spends = applied_spends(batch, &applied);
    if sqlite && !spends.is_empty() {
        read_here = answers_in(&spends, &mut *tx).await?.into_iter();
    }
    let holds = plain_holds(batch);
    let mut held = if set_wise && holds.len() == batch.len() {
        crate::holds::batch::apply(&mut *tx, &holds, !sqlite).await?
    } else {
        Vec::new()
    };
    let mut answers = Vec::with_capacity(batch.len());
    for (index, (queued, applied)) in batch.iter().zip(applied).enumerate() {
        if let Some((hold, figures)) = held.get_mut(index).and_then(Option::take) {
            answers.push(Ok(LedgerOp::hold_applied(&hold, &figures)));
        } else if let (true, Some(change)) = (applied, queued.op.spend()) {
            // PostgreSQL: the answer is read after the commit (`Committed`).
            let committed = || Applied::Credits(Changed::Committed(change.target.clone()));
            answers.push(Ok(read_here.next().unwrap_or_else(committed)));
        } else {
            let answer = queued.op.run(&mut *tx).await;
            if let Err(error @ (ServiceError::Internal(_) | ServiceError::Retryable(_))) = &answer {
                return Err(error.clone());
            }
            answers.push(answer);
        }
    }
    Ok(answers)
}

pub(super) async fn run_alone(conn: &mut Conn, op: &LedgerOp) -> Answer {
    let mut attempt = 1;
    loop {
        let answer = run_alone_once(conn, op).await;
        match &answer {
            Err(ServiceError::Retryable(detail)) if attempt < ATTEMPTS => {
                tracing::warn!(%detail, attempt, "rolled back by the database; running the operation again");
                attempt += 1;
            }
            _ => return answer,
        }
    }
}

async fn run_alone_once(conn: &mut Conn, op: &LedgerOp) -> Answer {
    let mut phase = Phases::start();
    let mut tx = match conn.begin(false).await {
        Ok(tx) => tx,
        // The kept connection was lost (`Conn::begin`): nothing was
        // written, and the next attempt runs on a new one.
        Err(error) if crate::db::connection_lost(&error) => {
            return Err(ServiceError::Retryable(error.to_string()))
        }
        Err(error) => return Err(error.into()),
    };
    phase.done("begin");
    let answer = op.run(&mut tx).await;
    phase.done("work");
    match answer {
        Ok(applied) => {
            tx.commit().await?;
            phase.done("commit");
            Ok(applied)
        }
        Err(error) => {
            roll_back(tx).await;
            Err(error)
        }
    }
}
