//! Group commit: concurrent balance changes share one database transaction
//! and so one commit — one WAL flush on SQLite (synchronous=FULL), one WAL
//! flush on PostgreSQL (synchronous_commit on). Nobody is answered before the
//! commit that holds their change, so an acknowledged spend survives a crash,
//! yet the flush is paid once per batch instead of once per spend.
//!
//! Each job still runs its own checks and its own conditional debit, in turn,
//! inside the batch's transaction: a later job sees the earlier ones' writes,
//! so the "check and debit are one statement" rule holds unchanged. Two kinds
//! of batch go faster: one made only of plain spends (`ledger::batch`) and one
//! made only of plain hold creations and full captures (`holds::batch`) are
//! applied set-wise, each account checked and debited once by the batch's
//! total for it in one conditional statement; what they cannot apply that way
//! then runs job by job as above. On SQLite such a batch, when all of it
//! applies set-wise, runs whole on a connection of the group commit's own,
//! in place (`run_in_place`, `exec::SqliteWriter`).
//!
//! The rules for a job:
//! - a job that refuses (402, 403, 409, …) leaves no write of its own behind
//!   that would be wrong on its own (it deletes an Idempotency-Key it claimed);
//!   bringing due grants up to date is right whatever follows, so it may stay;
//! - a database error fails the whole batch: the transaction rolls back and
//!   every job of it runs again alone, in its own transaction.
//!
//! Batches take account locks in user-id order, so two batches (of this or
//! another instance) never wait on each other in a cycle. There is no timer:
//! a batch is whatever queued while the previous one was committing, so a lone
//! request waits for nobody.

use crate::db::Kept;
use crate::exec::{finish_now, Exec, SqliteWriter};
use crate::holds::batch::HoldOp;
use crate::holds::Hold;
use crate::ledger::batch::PlainSpend;
use crate::ledger::Figures;
use crate::service::ServiceError;
use sqlx::{AnyConnection, AnyPool, Connection};
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};

pub type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// One balance change that can run inside a shared transaction.
pub trait Job: Send + Sync + 'static {
    type Output: Send + 'static;
    /// The user whose account the job changes: batches lock in this order.
    fn lock_order(&self) -> &str;
    fn run<'c>(&'c self, conn: &'c mut AnyConnection) -> BoxFuture<'c, Result<Self::Output, ServiceError>>;
    /// A plain spend (nothing to store besides the ledger's rows), which a
    /// batch of nothing but such spends applies set-wise (`ledger::batch`).
    fn plain_spend(&self) -> Option<PlainSpend<'_>> {
        None
    }
    /// The outputs of the plain spends a batch applied (`jobs`, in batch
    /// order), read inside the batch's transaction, after its writes and
    /// before its commit (SQLite; see `run_together`). PostgreSQL batches
    /// answer with `plain_spend_committed` instead.
    fn plain_spends_applied<C: Exec>(
        jobs: Vec<&Self>,
        conn: &mut C,
    ) -> impl Future<Output = Result<Vec<Self::Output>, ServiceError>> + Send
    where
        Self: Sized,
    {
        let _ = (jobs, conn);
        async { Err(ServiceError::Internal("this job is never a plain spend".into())) }
    }
    /// The output of a plain spend the batch applied, when it is answered
    /// after the commit.
    fn plain_spend_committed(&self) -> Option<Self::Output> {
        None
    }
    /// A plain hold request (a creation or a full capture, nothing to store
    /// besides the ledger's rows), which a batch of nothing but such requests
    /// applies set-wise (`holds::batch`).
    fn plain_hold(&self) -> Option<HoldOp<'_>> {
        None
    }
    /// The output of a plain hold request the batch applied: the hold as it
    /// now is, and the account's figures right after it.
    fn plain_hold_applied(&self, hold: Hold, figures: Figures) -> Option<Self::Output> {
        let _ = (hold, figures);
        None
    }
}

type Reply = oneshot::Sender<Result<Box<dyn Any + Send>, ServiceError>>;

trait ErasedJob: Send + Sync {
    fn lock_order(&self) -> &str;
    fn run_erased<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> BoxFuture<'c, Result<Box<dyn Any + Send>, ServiceError>>;
    fn plain_spend(&self) -> Option<PlainSpend<'_>>;
    fn plain_spend_committed(&self) -> Option<Box<dyn Any + Send>>;
    fn plain_hold(&self) -> Option<HoldOp<'_>>;
    fn plain_hold_applied(&self, hold: Hold, figures: Figures) -> Option<Box<dyn Any + Send>>;
    fn as_any(&self) -> &dyn Any;
    /// `Job::plain_spends_applied` for a batch of jobs of this job's type.
    fn plain_spends_applied_erased<'c>(
        &'c self,
        jobs: Vec<&'c dyn ErasedJob>,
        conn: &'c mut AnyConnection,
    ) -> BoxFuture<'c, Result<Vec<Box<dyn Any + Send>>, ServiceError>>;
    /// The same on the in-place connection (`run_in_place`).
    fn plain_spends_applied_in_place(
        &self,
        jobs: Vec<&dyn ErasedJob>,
        conn: &mut SqliteWriter,
    ) -> Result<Vec<Box<dyn Any + Send>>, ServiceError>;
}

impl<J: Job> ErasedJob for J {
    fn lock_order(&self) -> &str {
        Job::lock_order(self)
    }
    fn run_erased<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> BoxFuture<'c, Result<Box<dyn Any + Send>, ServiceError>> {
        Box::pin(async move { self.run(conn).await.map(|value| Box::new(value) as Box<dyn Any + Send>) })
    }
    fn plain_spend(&self) -> Option<PlainSpend<'_>> {
        Job::plain_spend(self)
    }
    fn plain_spend_committed(&self) -> Option<Box<dyn Any + Send>> {
        Job::plain_spend_committed(self).map(|value| Box::new(value) as Box<dyn Any + Send>)
    }
    fn plain_hold(&self) -> Option<HoldOp<'_>> {
        Job::plain_hold(self)
    }
    fn plain_hold_applied(&self, hold: Hold, figures: Figures) -> Option<Box<dyn Any + Send>> {
        Job::plain_hold_applied(self, hold, figures).map(|value| Box::new(value) as Box<dyn Any + Send>)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn plain_spends_applied_erased<'c>(
        &'c self,
        jobs: Vec<&'c dyn ErasedJob>,
        conn: &'c mut AnyConnection,
    ) -> BoxFuture<'c, Result<Vec<Box<dyn Any + Send>>, ServiceError>> {
        Box::pin(async move {
            let outputs = J::plain_spends_applied(same_kind::<J>(&jobs)?, conn).await?;
            Ok(outputs.into_iter().map(|value| Box::new(value) as Box<dyn Any + Send>).collect())
        })
    }
    fn plain_spends_applied_in_place(
        &self,
        jobs: Vec<&dyn ErasedJob>,
        conn: &mut SqliteWriter,
    ) -> Result<Vec<Box<dyn Any + Send>>, ServiceError> {
        let outputs = finish_now(J::plain_spends_applied(same_kind::<J>(&jobs)?, conn))?;
        Ok(outputs.into_iter().map(|value| Box::new(value) as Box<dyn Any + Send>).collect())
    }
}

/// The jobs of a batch of plain spends, as the one type they all are.
fn same_kind<'a, J: Job>(jobs: &[&'a dyn ErasedJob]) -> Result<Vec<&'a J>, ServiceError> {
    let same: Option<Vec<&J>> = jobs.iter().map(|job| job.as_any().downcast_ref::<J>()).collect();
    same.ok_or_else(|| ServiceError::Internal("plain spends of different kinds".into()))
}

struct Queued {
    job: Arc<dyn ErasedJob>,
    reply: Reply,
}

/// The batching writer of one process (cheap to clone).
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    sqlite: bool,
    /// How many batches may be open at once (1 for SQLite: one writer).
    workers: usize,
    max_batch: usize,
    /// One queue per worker; a job goes to the worker of its account.
    queues: OnceLock<Vec<mpsc::Sender<Queued>>>,
}

impl GroupCommit {
    pub fn new(pool: AnyPool, sqlite: bool, workers: usize, max_batch: usize) -> Self {
        let inner = Inner {
            pool,
            sqlite,
            workers: workers.max(1),
            max_batch: max_batch.max(1),
            queues: OnceLock::new(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Runs `job` in the next batch and answers after that batch committed.
    pub async fn run<J: Job>(&self, job: J) -> Result<J::Output, ServiceError> {
        let (reply, answer) = oneshot::channel();
        let queue = self.queue(job.lock_order());
        let queued = Queued { job: Arc::new(job), reply };
        queue.send(queued).await.map_err(|_| ServiceError::Internal("group commit stopped".into()))?;
        let value =
            answer.await.map_err(|_| ServiceError::Internal("group commit dropped a job".into()))??;
        Ok(*value.downcast::<J::Output>().expect("a job's answer has its own type"))
    }

    /// The queue of the worker that batches `account`'s changes, with the
    /// workers started on first use (inside the runtime). All changes of one
    /// account go to one worker: two batches of this instance then never wait
    /// for each other's account locks. (With workers sharing one queue, two
    /// batches of 16 spends over 1,000 accounts met on a common account most
    /// of the time, and one waited for the other's commit; on one hot account
    /// they always did.) Which worker a job goes to decides nothing else: any
    /// batch still checks and locks for itself.
    fn queue(&self, account: &str) -> &mpsc::Sender<Queued> {
        let queues = self.queues();
        &queues[worker_of(account, queues.len())]
    }

    /// Starts the workers now rather than with the first job (call inside
    /// the runtime): a server opens its SQLite writer connections as it
    /// starts, so its open files and memory do not step up under load.
    pub fn start(&self) {
        self.queues();
    }

    fn queues(&self) -> &Vec<mpsc::Sender<Queued>> {
        self.inner.queues.get_or_init(|| {
            (0..self.inner.workers)
                .map(|_| {
                    let (sender, mut receiver) = mpsc::channel::<Queued>(16_384);
                    let (pool, max, sqlite) =
                        (self.inner.pool.clone(), self.inner.max_batch, self.inner.sqlite);
                    let work = async move {
                        let mut writer = Writer::new(pool, sqlite);
                        writer.in_place();
                        while let Some(batch) = next_batch(&mut receiver, max).await {
                            run_batch(&mut writer, batch).await;
                        }
                    };
                    // PostgreSQL: each worker on a thread of its own, with
                    // its own connection (`db::Kept::Own`). A batch is a
                    // dozen round trips, each waking the worker; on the
                    // shared runtime each wake-up waited behind the request
                    // handlers. Measured (`credits-bench spend --http`,
                    // alternated, BENCHMARKS.md notes): hold+capture +10 to
                    // +21 %, deducts spread +3 to +7 %. (The view reader's
                    // workers, tried the same way, lost 5–8 % on spread.)
                    // SQLite runs its batches in place instead.
                    if sqlite {
                        tokio::spawn(work);
                    } else {
                        crate::db::spawn_on_own_thread("group-commit", work);
                    }
                    sender
                })
                .collect()
        })
    }
}

/// The worker (of `workers`) that batches `account`'s changes: FNV-1a of its id.
fn worker_of(account: &str, workers: usize) -> usize {
    let hash = account.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % workers as u64) as usize
}

/// Waits for one item, then takes whatever else is already queued (up to
/// `max`). Also the view reader's batching (`service::view::ViewReader`).
pub(crate) async fn next_batch<T>(receiver: &mut mpsc::Receiver<T>, max: usize) -> Option<Vec<T>> {
    let first = receiver.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match receiver.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Where one worker's transactions run: a connection got on first use and
/// kept for good (`db::Kept`) — on SQLite the writer pool's one connection,
/// on PostgreSQL one the worker opens itself on its own thread. Handed back
/// to the pool after each batch, it was pinged there (a round trip to
/// SQLite's thread, or to PostgreSQL) and taken out again by the next batch:
/// on SQLite `BEGIN` took 0.34–0.59 ms of a ~3 ms hold batch that way,
/// 0.25–0.33 ms kept (timed inside the server, same build, alternated;
/// BENCHMARKS.md). A kept connection found lost at `BEGIN`
/// (`db::connection_lost`: SQLite's thread for it is gone, PostgreSQL
/// restarted or a proxy closed it while idle) is closed, and the next
/// transaction gets a new one; nothing was written, so the job runs again
/// there.
struct Writer {
    pool: AnyPool,
    sqlite: bool,
    held: Option<Kept>,
    /// The kept connection failed at `BEGIN`: replace it before the next one.
    lost: bool,
    /// SQLite: the connection set-wise batches run on in place (`run_in_place`).
    in_place: InPlace,
}

/// The group commit's own SQLite connection (`exec::SqliteWriter`), opened
/// as its worker starts (or, after a failure, by the next batch).
enum InPlace {
    NotOpened,
    Open(SqliteWriter),
    /// None for this database (PostgreSQL, an in-memory SQLite database).
    Unavailable,
}

impl Writer {
    fn new(pool: AnyPool, sqlite: bool) -> Self {
        let in_place = if sqlite { InPlace::NotOpened } else { InPlace::Unavailable };
        Self { pool, sqlite, held: None, lost: false, in_place }
    }

    /// The in-place connection, opened now if it is not yet.
    fn in_place(&mut self) -> Option<&mut SqliteWriter> {
        if matches!(self.in_place, InPlace::NotOpened) {
            self.in_place = match crate::db::open_sqlite_writer(&self.pool) {
                Ok(Some(conn)) => InPlace::Open(conn),
                Ok(None) => InPlace::Unavailable,
                Err(error) => {
                    // Tried again by the next batch; this one runs on sqlx's.
                    tracing::warn!(%error, "could not open the SQLite writer connection");
                    return None;
                }
            };
        }
        match &mut self.in_place {
            InPlace::Open(conn) => Some(conn),
            _ => None,
        }
    }

    /// Begins a transaction on the kept connection. SQLite: it takes the
    /// write lock as it begins (`BEGIN IMMEDIATE`), or it could fail
    /// upgrading a stale read snapshot. PostgreSQL locks rows as they are
    /// written; a batch's transaction (`batch`) also plans for key lookups
    /// (`PG_BATCH_BEGIN`), in the same round trip as its `BEGIN`.
    async fn begin(&mut self, batch: bool) -> Result<sqlx::Transaction<'_, sqlx::Any>, sqlx::Error> {
        if std::mem::take(&mut self.lost) {
            if let Some(conn) = self.held.take() {
                conn.discard();
            }
        }
        if self.held.is_none() {
            self.held = Some(Kept::open(&self.pool, !self.sqlite).await?);
        }
        let conn = self.held.as_mut().expect("a kept connection").conn();
        let statement = match (self.sqlite, batch) {
            (true, _) => "BEGIN IMMEDIATE",
            (false, true) => PG_BATCH_BEGIN,
            (false, false) => "BEGIN",
        };
        let begun = conn.begin_with(statement).await;
        if let Err(error) = &begun {
            self.lost = connection_lost(error);
        }
        begun
    }
}

/// PostgreSQL: a batch's `BEGIN`, which also tells the planner, for this
/// transaction only (`SET LOCAL`), to join the batch's rows to the tables by
/// key lookups, not by hashing or merging whole tables. The planner takes a
/// batch's JSON parameter for 100 rows whatever it holds, so for tables of a
/// few hundred pages (accounts, grants) it chose a sequential scan and a
/// hash join for every statement of a batch of ~16; under load each such
/// scan also walks every dead version of the rows the run updated since the
/// last vacuum (3.5 ms for one statement against 0.4 ms by the primary key,
/// after a benchmark run; BENCHMARKS.md, "Stop 26"). Every join of a batch
/// statement is on a key, so a lookup per row is right for any batch and any
/// table size. One simple-query message: no round trip of its own.
const PG_BATCH_BEGIN: &str = "BEGIN; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";

fn connection_lost(error: &sqlx::Error) -> bool {
    crate::db::connection_lost(error)
}

async fn run_batch(writer: &mut Writer, mut batch: Vec<Queued>) {
    batch.sort_by(|a, b| a.job.lock_order().cmp(b.job.lock_order()));
    if batch.len() > 1 {
        metrics::histogram!("group_commit_batch_size").record(batch.len() as f64);
    }
    // Whether what is left may still apply set-wise: not after a batch
    // committed in place, whose rest did not apply set-wise just now.
    let mut set_wise = true;
    if let Some(answers) = run_in_place(writer, &batch) {
        set_wise = false;
        // Those committed in place are answered; the rest run below.
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
    if batch.is_empty() {
        return;
    }
    if batch.len() == 1 {
        let queued = batch.pop().expect("one job");
        let answer = run_alone(writer, queued.job.as_ref()).await;
        let _ = queued.reply.send(answer);
        return;
    }
    match run_together(writer, &batch, set_wise).await {
        Ok(answers) => {
            for (queued, answer) in batch.into_iter().zip(answers) {
                let _ = queued.reply.send(answer);
            }
        }
        Err(error) => {
            tracing::warn!(%error, jobs = batch.len(), "batch failed; running its jobs one by one");
            for queued in batch {
                let answer = run_alone(writer, queued.job.as_ref()).await;
                let _ = queued.reply.send(answer);
            }
        }
    }
}

type Answer = Result<Box<dyn Any + Send>, ServiceError>;

/// All jobs in one transaction; `Err` when the batch must be retried job by
/// job. With `set_wise` false, each job runs on its own in it (the batch is
/// the rest of one whose other jobs applied set-wise and committed in place).
async fn run_together(
    writer: &mut Writer,
    batch: &[Queued],
    set_wise: bool,
) -> Result<Vec<Answer>, ServiceError> {
    let sqlite = writer.sqlite;
    let mut phase = Phases::start();
    let mut tx = writer.begin(true).await?;
    phase.done("begin");
    // A batch of nothing but plain spends debits each account once, set-wise;
    // the spends it could not cover in one go then run one by one below.
    let plain: Vec<PlainSpend<'_>> = batch.iter().filter_map(|queued| queued.job.plain_spend()).collect();
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
    if sqlite {
        let jobs = applied_jobs(batch, &applied);
        if let Some(first) = jobs.first().copied() {
            read_here = first.plain_spends_applied_erased(jobs, &mut tx).await?.into_iter();
        }
    }
    // A batch of nothing but plain hold requests likewise (`holds::batch`).
    let hold_ops: Vec<HoldOp<'_>> = batch.iter().filter_map(|queued| queued.job.plain_hold()).collect();
    let mut held = if set_wise && hold_ops.len() == batch.len() {
        crate::holds::batch::apply(&mut *tx, &hold_ops, !sqlite).await?
    } else {
        Vec::new()
    };
    let mut answers = Vec::with_capacity(batch.len());
    for (index, (queued, applied)) in batch.iter().zip(applied).enumerate() {
        if let Some((hold, figures)) = held.get_mut(index).and_then(Option::take) {
            let output = queued.job.plain_hold_applied(hold, figures).expect("a plain hold has an output");
            answers.push(Ok(output));
            continue;
        }
        if applied {
            let output = match read_here.next() {
                Some(output) => output,
                None => queued.job.plain_spend_committed().expect("a plain spend has an output"),
            };
            answers.push(Ok(output));
            continue;
        }
        let answer = queued.job.run_erased(&mut tx).await;
        if let Err(ServiceError::Internal(message)) = &answer {
            return Err(ServiceError::Internal(message.clone()));
        }
        answers.push(answer);
    }
    phase.done("work");
    tx.commit().await?;
    phase.done("commit");
    Ok(answers)
}

/// The jobs of `batch` whose spends were applied set-wise, in batch order.
fn applied_jobs<'a>(batch: &'a [Queued], applied: &[bool]) -> Vec<&'a dyn ErasedJob> {
    batch
        .iter()
        .zip(applied)
        .filter(|(_, applied)| **applied)
        .map(|(queued, _)| queued.job.as_ref())
        .collect()
}

/// SQLite: a batch (or a request alone) of nothing but plain spends, or of
/// nothing but plain hold requests, runs on the group commit's own
/// connection (`exec::SqliteWriter`), in place: its ~10 statements and its
/// commit in one call on this thread, instead of a hand-off to sqlx's
/// connection thread and back for each (0.5 ms each under load; see
/// `exec`). The statements are those of `ledger::batch` and `holds::batch`,
/// the same code as on sqlx's connection.
///
/// The requests that apply set-wise are committed here and answered
/// (`Some`); those that do not (short of credits, a grant due, several
/// grants to draw from, an alert to queue: the steps written for sqlx's
/// connection only) are left out (`None`) and run after that commit on
/// sqlx's connection, as they would have run after the set-wise part of the
/// same transaction there. `None` for the whole batch, with nothing written,
/// when it is of another kind, when none of it applies, or on an error: it
/// then runs on sqlx's connection as before.
///
/// The thread blocks meanwhile (the flush included), so the runtime is told
/// to move its other work elsewhere (`block_in_place`).
fn run_in_place(writer: &mut Writer, batch: &[Queued]) -> Option<Vec<Option<Answer>>> {
    let spends: Vec<PlainSpend<'_>> = batch.iter().filter_map(|queued| queued.job.plain_spend()).collect();
    let holds: Vec<HoldOp<'_>> = batch.iter().filter_map(|queued| queued.job.plain_hold()).collect();
    if !writer.sqlite || (spends.len() != batch.len() && holds.len() != batch.len()) {
        return None;
    }
    let conn = writer.in_place()?;
    let mut run = || -> Result<Vec<Option<Answer>>, sqlx::Error> {
        let mut phase = Phases::start();
        conn.run("BEGIN IMMEDIATE")?;
        phase.done("begin");
        let answers: Vec<Option<Answer>> = if spends.len() == batch.len() {
            let applied = finish_now(crate::ledger::batch::apply_spends(&mut *conn, &spends, false))?;
            if !applied.contains(&true) {
                return Err(crate::exec::needs_sqlx());
            }
            // The answers, read on this connection inside the transaction
            // (its page cache is warm; as `run_together` does on SQLite).
            let jobs = applied_jobs(batch, &applied);
            let (first, count) = (jobs[0], jobs.len());
            let mut outputs = match first.plain_spends_applied_in_place(jobs, conn) {
                // One answer per applied spend, or none is kept: a spend
                // without its answer would run again on sqlx's connection.
                Ok(outputs) if outputs.len() == count => outputs.into_iter(),
                Ok(outputs) => {
                    let message = format!("{} answers for {count} spends", outputs.len());
                    return Err(sqlx::Error::Protocol(message));
                }
                Err(error) => return Err(sqlx::Error::Protocol(format!("answers of a batch: {error:?}"))),
            };
            applied.iter().map(|applied| if *applied { outputs.next().map(Ok) } else { None }).collect()
        } else {
            let applied = finish_now(crate::holds::batch::apply(&mut *conn, &holds, false))?;
            if applied.iter().all(Option::is_none) {
                return Err(crate::exec::needs_sqlx());
            }
            batch
                .iter()
                .zip(applied)
                .map(|(queued, applied)| {
                    let (hold, figures) = applied?;
                    Some(Ok(queued
                        .job
                        .plain_hold_applied(hold, figures)
                        .expect("a plain hold has an output")))
                })
                .collect()
        };
        phase.done("work");
        conn.run("COMMIT")?;
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
            tracing::warn!(%error, jobs = batch.len(), "in-place batch failed; running it on sqlx's connection");
            "failed"
        }
    };
    metrics::counter!("group_commit_in_place_total", "outcome" => outcome).increment(1);
    if done.is_err() {
        // Nothing of it stays; a connection that cannot even roll back is
        // closed, and the next batch opens another.
        if conn.in_transaction() && conn.run("ROLLBACK").is_err() {
            writer.in_place = InPlace::NotOpened;
        }
    }
    done.ok()
}

/// How long each phase of a transaction of the group commit (a batch, or a
/// job alone) took: `group_commit_phase_seconds` by `phase`, `begin`, `work`
/// (every statement of its jobs) and `commit` (the flush included). One
/// that fails or refuses records only the phases it finished. Where a batch's
/// time goes is what decides the spend rate (BENCHMARKS.md).
struct Phases(std::time::Instant);

impl Phases {
    fn start() -> Self {
        Self(std::time::Instant::now())
    }

    fn done(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        metrics::histogram!("group_commit_phase_seconds", "phase" => phase)
            .record(now.duration_since(self.0).as_secs_f64());
        self.0 = now;
    }
}

/// The start of an internal error's message when the database rolled the
/// transaction back to break a deadlock or a serialization conflict
/// (PostgreSQL 40P01, 40001): nothing was written, and the job may run again.
pub(crate) const RETRYABLE: &str = "retryable: ";

/// How many times a job alone runs when the database keeps rolling it back
/// as a deadlock's victim.
const ATTEMPTS: usize = 4;

async fn run_alone(writer: &mut Writer, job: &dyn ErasedJob) -> Answer {
    let mut attempt = 1;
    loop {
        let answer = run_alone_once(writer, job).await;
        match &answer {
            Err(ServiceError::Internal(message)) if message.starts_with(RETRYABLE) && attempt < ATTEMPTS => {
                tracing::warn!(%message, attempt, "rolled back by the database; running the job again");
                attempt += 1;
            }
            _ => return answer,
        }
    }
}

async fn run_alone_once(writer: &mut Writer, job: &dyn ErasedJob) -> Answer {
    let mut phase = Phases::start();
    let mut tx = match writer.begin(false).await {
        Ok(tx) => tx,
        // The kept connection was lost (`Writer::begin`): nothing was
        // written, and the next attempt runs on a new one.
        Err(error) if connection_lost(&error) => {
            return Err(ServiceError::Internal(format!("{RETRYABLE}{error}")))
        }
        Err(error) => return Err(error.into()),
    };
    phase.done("begin");
    let answer = job.run_erased(&mut tx).await;
    phase.done("work");
    if answer.is_ok() {
        tx.commit().await?;
        phase.done("commit");
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::{worker_of, Writer};

    #[tokio::test]
    async fn a_lost_sqlite_writer_connection_is_closed_and_replaced() {
        let path = std::env::temp_dir().join(format!("credits-writer-{}.db", std::process::id()));
        let db = crate::db::Db::connect(&format!("sqlite://{}", path.display()), 2).await.unwrap();
        let mut writer = Writer::new(db.writer.clone(), true);
        // A TEMP table exists only on the connection that made it.
        let mut tx = writer.begin(false).await.unwrap();
        sqlx::query("CREATE TEMP TABLE marker (x INTEGER)").execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = writer.begin(false).await.unwrap();
        assert!(
            sqlx::query("SELECT x FROM temp.marker").fetch_all(&mut *tx).await.is_ok(),
            "the connection is kept"
        );
        tx.commit().await.unwrap();
        writer.lost = true;
        let mut tx = writer.begin(false).await.unwrap();
        assert!(
            sqlx::query("SELECT x FROM temp.marker").fetch_all(&mut *tx).await.is_err(),
            "a new connection"
        );
        tx.commit().await.unwrap();
        drop(writer);
        db.pool.close().await;
        db.writer.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

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
