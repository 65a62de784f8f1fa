//! SQLite: a batch (or a request alone) of nothing but plain spends, or of
//! nothing but plain hold requests, runs on the writer's own connection
//! (`exec::SqliteWriter`), in place: its ~10 statements and its commit in
//! one call on this thread, instead of a hand-off to sqlx's connection
//! thread and back for each. The statements are those of `ledger::batch`
//! and `holds::batch`, the same code as on sqlx's connection.
//!
//! The requests that apply set-wise are committed here and answered
//! (`Some`); those that do not (short of credits, a grant due, several
//! grants to draw from, an alert to queue) are left out (`None`) and run
//! after that commit on sqlx's connection, as they would have run after the
//! set-wise part of the same transaction there. `None` for the whole batch,
//! with nothing written, when it is of another kind, when none of it
//! applies, or on an error: it then runs on sqlx's connection.
//!
//! The thread blocks meanwhile (the flush included), so the runtime is told
//! to move its other work elsewhere (`block_in_place`).

use super::conn::Conn;
use super::credits::answers_in;
use super::op::LedgerOp;
use super::work::{applied_spends, plain_holds, plain_spends, Answer, Phases, Queued};
use crate::exec::{finish_now, SqliteWriter};

type Answers = Vec<Option<Answer>>;

pub(super) fn run(conn: &mut Conn, batch: &[Queued]) -> Option<Answers> {
    let (spends, holds) = (plain_spends(batch), plain_holds(batch));
    let all_spends = spends.len() == batch.len();
    if !conn.sqlite
        || !crate::tuning::get().in_place
        || batch.is_empty()
        || (!all_spends && holds.len() != batch.len())
    {
        return None;
    }
    let writer = conn.in_place()?;
    let mut run = || -> Result<Answers, sqlx::Error> {
        let mut phase = Phases::start();
        writer.run("BEGIN IMMEDIATE")?;
        phase.done("begin");
        let answers =
            if all_spends { spends_in_place(writer, batch)? } else { holds_in_place(writer, batch)? };
        phase.done("work");
        writer.run("COMMIT")?;
        phase.done("commit");
        Ok(answers)
    };
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let done = if multi_thread { tokio::task::block_in_place(run) } else { run() };
    let outcome = match &done {
        Ok(answers) if answers.iter().all(Option::is_some) => "committed",
        Ok(_) => "committed_part",
        Err(error) if crate::exec::is_needs_sqlx(error) => "not_set_wise",
        Err(error) => {
            tracing::warn!(%error, operations = batch.len(), "in-place batch failed; running it on sqlx's connection");
            "failed"
        }
    };
    metrics::counter!("group_commit_in_place_total", "outcome" => outcome).increment(1);
    if done.is_err() {
        // Nothing of it stays; a connection that cannot even roll back is
        // closed, and the next batch opens another.
        let writer = conn.in_place()?;
        if writer.in_transaction() && writer.run("ROLLBACK").is_err() {
            conn.drop_in_place();
        }
    }
    done.ok()
}

fn spends_in_place(writer: &mut SqliteWriter, batch: &[Queued]) -> Result<Answers, sqlx::Error> {
    let spends = plain_spends(batch);
    let applied = finish_now(crate::ledger::batch::apply_spends(&mut *writer, &spends, false))?;
    if !applied.contains(&true) {
        return Err(crate::exec::needs_sqlx());
    }
    // The answers, read on this connection inside the transaction (its page
    // cache is warm). One answer per applied spend, or none is kept: a spend
    // without its answer would run again on sqlx's connection.
    let changes = applied_spends(batch, &applied);
    let count = changes.len();
    let mut outputs = match finish_now(answers_in(&changes, writer)) {
        Ok(outputs) if outputs.len() == count => outputs.into_iter(),
        Ok(outputs) => {
            return Err(sqlx::Error::Protocol(format!("{} answers for {count} spends", outputs.len())))
        }
        Err(error) => return Err(sqlx::Error::Protocol(format!("answers of a batch: {error:?}"))),
    };
    Ok(applied.iter().map(|applied| if *applied { outputs.next().map(Ok) } else { None }).collect())
}

fn holds_in_place(writer: &mut SqliteWriter, batch: &[Queued]) -> Result<Answers, sqlx::Error> {
    let holds = plain_holds(batch);
    let applied = finish_now(crate::holds::batch::apply(&mut *writer, &holds, false))?;
    if applied.iter().all(Option::is_none) {
        return Err(crate::exec::needs_sqlx());
    }
    Ok(applied
        .into_iter()
        .map(|applied| applied.map(|(hold, figures)| Ok(LedgerOp::hold_applied(&hold, &figures))))
        .collect())
}
