//! What `GET /api/credits` (and every change's answer) shows, read in one
//! statement: the account, whether any of its grants is due, its recent
//! entries, its live grants and its notices come back as one `UNION ALL`,
//! each row tagged with its part. One round trip instead of five matters on
//! every page load and every spend: SQLite hands each statement to its worker
//! thread and PostgreSQL to another process.

use crate::db::{rfc3339, Kept};
use crate::dto::CreditsView;
use crate::error::ServiceError;
use crate::exec::{Arg, Exec, ReadRow};
use crate::ledger::grants::{GrantRow, GrantStatus};
use crate::ledger::store::{Account, AccountStatus, Entry};
use crate::ledger::Figures;
use crate::outbox::Notice;
use sqlx::AnyConnection;
use sqlx::AnyPool;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot, Mutex};

/// How many entries `recent` shows.
pub(crate) const RECENT_ENTRIES: i64 = 10;
/// How many notices the view shows.
const NOTICES: i64 = 5;

/// Everything the view is made of, as read in one statement.
pub(crate) struct Snapshot {
    pub account: Account,
    /// A grant of this user should start or end by now (the view is stale
    /// until `grants::catch_up` runs).
    pub grants_due: bool,
    pub recent: Vec<Entry>,
    pub grants: Vec<GrantRow>,
    pub notices: Vec<Notice>,
}

// Columns: part, seq, uid, t1..t4 (text), n1..n10 (integers). Every integer
// is cast to BIGINT so PostgreSQL gives each column one type across the parts.
// `u` is the set of users asked for ({users}: the list in `$1`), and every
// part is a join from it (`CROSS JOIN`: SQLite keeps `u` as the outer loop),
// so each user's rows are found through the index that starts with
// `user_id`, whatever the planner's statistics say; each
// part's rows are numbered per user, and `recent` keeps an account's newest
// entries by starting its index range at its `$3`-th newest id.
const SNAPSHOTS_SQL: &str = "\
WITH u AS ({users}) \
SELECT CAST(0 AS BIGINT) AS part, CAST(0 AS BIGINT) AS seq, a.user_id AS uid, a.user_id AS t1, a.email AS t2, \
  a.name AS t3, a.status AS t4, a.remaining AS n1, a.held AS n2, a.used AS n3, a.initial AS n4, a.bonus AS n5, \
  a.adjustments AS n6, a.total AS n7, a.created_at AS n8, a.updated_at AS n9, \
  CAST(CASE WHEN {due} THEN 1 ELSE 0 END AS BIGINT) AS n10 \
FROM u CROSS JOIN accounts a WHERE a.user_id = u.user_id \
UNION ALL \
SELECT CAST(1 AS BIGINT), CAST(ROW_NUMBER() OVER (PARTITION BY e.user_id ORDER BY e.id DESC) AS BIGINT), \
  e.user_id, e.kind, e.reason, e.reference, NULL, \
  e.id, e.amount, e.balance_after, e.created_at, NULL, NULL, NULL, NULL, NULL, NULL \
FROM u CROSS JOIN ledger_entries e WHERE e.user_id = u.user_id AND e.id >= COALESCE((SELECT l.id FROM ledger_entries l \
  WHERE l.user_id = u.user_id ORDER BY l.id DESC LIMIT 1 OFFSET $3), 0) \
UNION ALL \
SELECT CAST(2 AS BIGINT), CAST(ROW_NUMBER() OVER (PARTITION BY g.user_id ORDER BY g.priority, \
  CASE WHEN g.expires_at IS NULL THEN 1 ELSE 0 END, g.expires_at, g.created_at, g.id) AS BIGINT), g.user_id, \
  g.kind, g.category, g.status, NULL, g.id, g.amount, g.remaining, g.held, g.priority, g.effective_at, \
  g.expires_at, NULL, NULL, NULL \
FROM u CROSS JOIN grants g WHERE g.user_id = u.user_id AND g.status IN ('active', 'scheduled') \
  AND (g.remaining > 0 OR g.held > 0) \
UNION ALL \
SELECT CAST(3 AS BIGINT), n.seq, n.user_id, n.id, n.event_type, n.payload, NULL, \
  n.created_at, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL \
FROM (SELECT o.user_id, o.id, o.event_type, o.payload, o.created_at, \
  CAST(ROW_NUMBER() OVER (PARTITION BY o.user_id ORDER BY o.created_at DESC, o.id) AS BIGINT) AS seq \
  FROM u CROSS JOIN outbox o WHERE o.user_id = u.user_id \
  AND o.event_type IN ('credits.low', 'credits.depleted', 'credits.expiring')) n WHERE n.seq <= $4 \
ORDER BY uid, part, seq";

/// The same columns for one user (`$1`), each part an index range on
/// `user_id` with its own `ORDER BY … LIMIT`: the shape both planners get
/// right without statistics, and the cheapest to plan. A lone read (a page,
/// `GET /api/credits` at a steady rate, a reader batch of one) takes it.
const SNAPSHOT_ONE_SQL: &str = "\
SELECT CAST(0 AS BIGINT) AS part, CAST(0 AS BIGINT) AS seq, user_id AS uid, user_id AS t1, email AS t2, \
  name AS t3, status AS t4, remaining AS n1, held AS n2, used AS n3, initial AS n4, bonus AS n5, \
  adjustments AS n6, total AS n7, created_at AS n8, updated_at AS n9, \
  CAST(CASE WHEN {due} THEN 1 ELSE 0 END AS BIGINT) AS n10 \
FROM accounts WHERE user_id = $1 \
UNION ALL \
SELECT CAST(1 AS BIGINT), CAST(ROW_NUMBER() OVER (ORDER BY id DESC) AS BIGINT), user_id, kind, reason, reference, \
  NULL, id, amount, balance_after, created_at, NULL, NULL, NULL, NULL, NULL, NULL \
FROM (SELECT user_id, id, kind, amount, balance_after, reason, reference, created_at FROM ledger_entries \
  WHERE user_id = $1 ORDER BY id DESC LIMIT $3) recent \
UNION ALL \
SELECT CAST(2 AS BIGINT), CAST(ROW_NUMBER() OVER (ORDER BY priority, CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, \
  expires_at, created_at, id) AS BIGINT), user_id, kind, category, status, NULL, \
  id, amount, remaining, held, priority, effective_at, expires_at, NULL, NULL, NULL \
FROM grants WHERE user_id = $1 AND status IN ('active', 'scheduled') AND (remaining > 0 OR held > 0) \
UNION ALL \
SELECT CAST(3 AS BIGINT), CAST(ROW_NUMBER() OVER (ORDER BY created_at DESC, id) AS BIGINT), user_id, id, \
  event_type, payload, NULL, created_at, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL \
FROM (SELECT user_id, id, event_type, payload, created_at FROM outbox WHERE user_id = $1 \
  AND event_type IN ('credits.low', 'credits.depleted', 'credits.expiring') \
  ORDER BY created_at DESC, id LIMIT $4) notices \
ORDER BY part, seq";

/// One row of either statement: part, seq, uid, t1..t4, n1..n10.
#[derive(serde::Deserialize)]
struct RawRow(
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// The rows of `inner` as one JSON array of arrays, in one text value: one
/// row to hand over instead of a dozen per user (each row a hop between
/// threads on SQLite, a message on PostgreSQL, a set of columns to convert).
fn as_json(postgres: bool, inner: &str) -> String {
    let columns = "part, seq, uid, t1, t2, t3, t4, n1, n2, n3, n4, n5, n6, n7, n8, n9, n10";
    if postgres {
        format!("SELECT CAST(json_agg(json_build_array({columns})) AS TEXT) FROM ({inner}) AS s")
    } else {
        format!("SELECT json_group_array(json_array({columns})) FROM ({inner}) AS s")
    }
}

/// The one-user statement for each engine.
fn one_sql(postgres: bool) -> &'static str {
    static CELL: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
    CELL[usize::from(postgres)]
        .get_or_init(|| {
            as_json(
                postgres,
                &SNAPSHOT_ONE_SQL.replace("{due}", &crate::ledger::grants::due_exists("$1", "$2")),
            )
        })
        .as_str()
}

/// The statement for each engine: only the way `$1` becomes a table differs.
fn snapshots_sql(postgres: bool) -> &'static str {
    // SQLite reads the users from a JSON array, PostgreSQL from a text array
    // (a set-returning function over JSON is guessed at 100 rows).
    static SQLITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        as_json(false, &fill("SELECT DISTINCT value AS user_id FROM json_each($1)"))
    });
    // PostgreSQL also reads grants and notices per user through LATERAL
    // subqueries (`OFFSET 0` keeps them from being flattened back into
    // joins): without fresh statistics, e.g. right after a bulk load, its
    // planner would otherwise hash-join whole tables found by `status`.
    static POSTGRES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut sql = fill("SELECT DISTINCT unnest(CAST($1 AS text[])) AS user_id");
        for table in ["grants g", "outbox o"] {
            let (name, alias) = table.split_once(' ').expect("table and alias");
            sql = sql.replace(
                &format!("u CROSS JOIN {table} WHERE {alias}.user_id = u.user_id"),
                &format!(
                    "u CROSS JOIN LATERAL (SELECT * FROM {name} WHERE {name}.user_id = u.user_id OFFSET 0) {alias} \
                     WHERE TRUE"
                ),
            );
        }
        as_json(true, &sql)
    });
    fn fill(users: &str) -> String {
        SNAPSHOTS_SQL
            .replace("{users}", users)
            .replace("{due}", &crate::ledger::grants::due_exists("a.user_id", "$2"))
    }
    if postgres {
        POSTGRES.as_str()
    } else {
        SQLITE.as_str()
    }
}

/// A PostgreSQL text-array literal: every element quoted, `\\` and `"` escaped.
fn text_array(items: &[&str]) -> String {
    let quoted: Vec<String> =
        items.iter().map(|item| format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("{{{}}}", quoted.join(","))
}

/// Reads the user's view; `None` when the account does not exist.
pub(crate) async fn snapshot(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<Option<Snapshot>, sqlx::Error> {
    Ok(snapshots(conn, &[user_id], now).await?.remove(user_id))
}

/// Reads the views of several users in one statement; users without an
/// account are missing from the map.
pub(crate) async fn snapshots<C: Exec>(
    conn: &mut C,
    users: &[&str],
    now: i64,
) -> Result<HashMap<String, Snapshot>, sqlx::Error> {
    let mut rows = fetch_raw(conn, users, now).await?;
    // The aggregate's order is the engine's; each row carries its place.
    rows.sort_by(|a, b| (&a.2, a.0, a.1).cmp(&(&b.2, b.0, b.1)));
    let mut found: HashMap<String, Snapshot> = HashMap::with_capacity(users.len());
    // Each user's entries, grants and notices, until they join their account.
    let mut parts: HashMap<String, Parts> = HashMap::new();
    for row in rows {
        match row.0 {
            0 => {
                let uid = row.2.clone();
                found.insert(uid, snapshot_of(row)?);
            }
            1 => {
                let entry = entry_of(&row)?;
                parts.entry(row.2).or_default().0.push(entry);
            }
            2 => {
                let grant = grant_of(&row)?;
                parts.entry(row.2).or_default().1.push(grant);
            }
            _ => {
                let notice = notice_of(&row)?;
                parts.entry(row.2).or_default().2.push(notice);
            }
        }
    }
    for (uid, (recent, grants, notices)) in parts {
        if let Some(snapshot) = found.get_mut(&uid) {
            (snapshot.recent, snapshot.grants, snapshot.notices) = (recent, grants, notices);
        }
    }
    Ok(found)
}

/// A user's entries, grants and notices, read apart from their account row.
type Parts = (Vec<Entry>, Vec<GrantRow>, Vec<Notice>);

/// The one statement's rows, decoded from the JSON array it aggregates to.
async fn fetch_raw<C: Exec>(conn: &mut C, users: &[&str], now: i64) -> Result<Vec<RawRow>, sqlx::Error> {
    let postgres = conn.postgres();
    let rows = if let [user] = users {
        let args = vec![Arg::from(*user), now.into(), RECENT_ENTRIES.into(), NOTICES.into()];
        conn.fetch_all(one_sql(postgres), args).await?
    } else {
        let list = if postgres {
            text_array(users)
        } else {
            serde_json::to_string(users).map_err(|error| sqlx::Error::Encode(Box::new(error)))?
        };
        let args = vec![Arg::from(list), now.into(), (RECENT_ENTRIES - 1).into(), NOTICES.into()];
        conn.fetch_all(snapshots_sql(postgres), args).await?
    };
    let text: Option<String> = match rows.first() {
        Some(row) => row.read(0)?,
        None => return Err(sqlx::Error::RowNotFound),
    };
    match text {
        Some(text) => serde_json::from_str(&text).map_err(|error| sqlx::Error::Decode(Box::new(error))),
        None => Ok(Vec::new()),
    }
}

fn number(value: Option<i64>) -> Result<i64, sqlx::Error> {
    value.ok_or_else(|| sqlx::Error::Decode("a view row lacks a number".into()))
}

fn snapshot_of(row: RawRow) -> Result<Snapshot, sqlx::Error> {
    let RawRow(_, _, _, t1, t2, t3, t4, n1, n2, n3, n4, n5, n6, n7, n8, n9, n10) = row;
    let account = Account {
        user_id: t1.unwrap_or_default(),
        email: t2,
        name: t3,
        status: AccountStatus::parse(t4.as_deref().unwrap_or_default())?,
        figures: Figures {
            remaining: number(n1)?,
            held: number(n2)?,
            used: number(n3)?,
            initial: number(n4)?,
            bonus: number(n5)?,
            adjustments: number(n6)?,
            total: number(n7)?,
        },
        created_at_ms: number(n8)?,
        updated_at_ms: number(n9)?,
    };
    let grants_due = number(n10)? != 0;
    Ok(Snapshot { account, grants_due, recent: Vec::new(), grants: Vec::new(), notices: Vec::new() })
}

fn entry_of(row: &RawRow) -> Result<Entry, sqlx::Error> {
    Ok(Entry {
        id: number(row.7)?,
        kind: crate::ledger::store::entry_kind(row.3.as_deref().unwrap_or_default())?,
        amount: number(row.8)?,
        balance_after: number(row.9)?,
        reason: row.4.clone(),
        reference: row.5.clone(),
        created_at_ms: number(row.10)?,
    })
}

fn grant_of(row: &RawRow) -> Result<GrantRow, sqlx::Error> {
    Ok(GrantRow {
        id: number(row.7)?,
        user_id: row.2.clone(),
        kind: row.3.clone().unwrap_or_default(),
        category: row.4.clone().unwrap_or_default(),
        amount: number(row.8)?,
        remaining: number(row.9)?,
        held: number(row.10)?,
        priority: number(row.11)?,
        status: GrantStatus::parse(row.5.as_deref().unwrap_or_default())?,
        effective_at_ms: number(row.12)?,
        expires_at_ms: row.13,
    })
}

fn notice_of(row: &RawRow) -> Result<Notice, sqlx::Error> {
    let payload: serde_json::Value =
        serde_json::from_str(row.5.as_deref().unwrap_or_default()).unwrap_or_default();
    Ok(Notice {
        id: row.3.clone().unwrap_or_default(),
        event_type: row.4.clone().unwrap_or_default(),
        data: payload["data"].clone(),
        created_at: rfc3339(number(row.7)?),
    })
}

/// The contract's view of a snapshot.
pub(crate) fn view(snapshot: &Snapshot, cost_per_video: i64) -> CreditsView {
    let Snapshot { account, recent, grants, notices, .. } = snapshot;
    let next_expiry = grants
        .iter()
        .filter(|grant| grant.status == GrantStatus::Active && grant.remaining > 0)
        .filter_map(|grant| grant.expires_at_ms.map(|at| (at, grant.remaining)))
        .min_by_key(|(at, _)| *at)
        .map(|(at, _)| crate::dto::NextExpiry {
            at: rfc3339(at),
            amount: grants
                .iter()
                .filter(|grant| grant.status == GrantStatus::Active && grant.expires_at_ms == Some(at))
                .map(|grant| grant.remaining)
                .sum(),
        });
    CreditsView {
        credits: account.figures.as_dto(),
        held: account.figures.held,
        cost_per_video,
        can_generate_video: account.status == AccountStatus::Active
            && account.figures.remaining >= cost_per_video,
        recent: recent.iter().cloned().map(entry_view).collect(),
        updated_at: rfc3339(account.updated_at_ms),
        grants: grants
            .iter()
            .filter(|grant| grant.remaining > 0 || grant.status == GrantStatus::Scheduled)
            .map(|grant| crate::dto::GrantView {
                id: grant.id,
                kind: grant.kind.clone(),
                category: grant.category.clone(),
                amount: grant.amount,
                remaining: grant.remaining,
                priority: grant.priority,
                effective_at: rfc3339(grant.effective_at_ms),
                expires_at: grant.expires_at_ms.map(rfc3339),
            })
            .collect(),
        next_expiry,
        notices: notices
            .iter()
            .map(|notice| crate::dto::NoticeView {
                id: notice.id.clone(),
                event_type: notice.event_type.clone(),
                data: notice.data.clone(),
                created_at: notice.created_at.clone(),
            })
            .collect(),
        user_id: account.user_id.clone(),
    }
}

type Waiter = (String, oneshot::Sender<Result<Option<Arc<Snapshot>>, String>>);

/// The answers of committed changes, read for many users in one statement.
/// Like group commit, without a timer: a read takes whatever asked while the
/// previous read ran, so a lone request waits for nobody, and under load one
/// statement answers a whole batch (64 spends on one hot account: one read).
/// Each read starts after its askers queued, so after their commits: every
/// answer shows its own change.
#[derive(Clone)]
pub(crate) struct ViewReader {
    inner: Arc<ReaderInner>,
}

struct ReaderInner {
    pool: AnyPool,
    workers: usize,
    queue: OnceLock<mpsc::Sender<Waiter>>,
}

/// At most this many askers share one read.
const MAX_READ_BATCH: usize = 256;

impl ViewReader {
    pub(crate) fn new(pool: AnyPool, workers: usize) -> Self {
        let inner = ReaderInner { pool, workers: workers.max(1), queue: OnceLock::new() };
        Self { inner: Arc::new(inner) }
    }

    /// The user's snapshot as it is now; `None` when the account does not exist.
    pub(crate) async fn read(&self, user_id: &str) -> Result<Option<Arc<Snapshot>>, ServiceError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ServiceError::Internal("the view reader stopped".into());
        self.queue().send((user_id.to_string(), reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?.map_err(ServiceError::Internal)
    }

    fn queue(&self) -> &mpsc::Sender<Waiter> {
        self.inner.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel::<Waiter>(16_384);
            let receiver = Arc::new(Mutex::new(receiver));
            for _ in 0..self.inner.workers {
                let (inner, receiver) = (self.inner.clone(), receiver.clone());
                tokio::spawn(async move {
                    let mut kept = None;
                    loop {
                        let batch = {
                            let mut receiver = receiver.lock().await;
                            crate::batching::next_batch(&mut receiver, MAX_READ_BATCH).await
                        };
                        let Some(batch) = batch else { break };
                        answer_batch(&inner, &mut kept, batch).await;
                    }
                });
            }
            sender
        })
    }
}

/// Reads on the worker's own connection, taken from the pool on first use
/// and kept: a connection handed back to the pool after each read is pinged
/// there (sqlx does so on every return), one more round trip per read. One
/// that is lost (`db::connection_lost`: PostgreSQL restarted, a proxy closed
/// it while idle) is closed and the read made again, once, on a new one: a
/// read changes nothing.
async fn read_kept(
    pool: &AnyPool,
    kept: &mut Option<Kept>,
    users: &[&str],
) -> Result<HashMap<String, Snapshot>, sqlx::Error> {
    let mut retried = false;
    loop {
        if kept.is_none() {
            *kept = Some(Kept::open(pool, false).await?);
        }
        let conn = kept.as_mut().expect("a kept connection").conn();
        match snapshots(conn, users, crate::db::now_ms()).await {
            Err(error) if !retried && crate::db::connection_lost(&error) => {
                tracing::warn!(%error, "the view reader's connection failed; reading on a new one");
                if let Some(conn) = kept.take() {
                    conn.discard();
                }
                retried = true;
            }
            result => return result,
        }
    }
}

async fn answer_batch(inner: &ReaderInner, kept: &mut Option<Kept>, batch: Vec<Waiter>) {
    let mut users: Vec<&str> = batch.iter().map(|(user, _)| user.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    metrics::histogram!("view_read_batch_size").record(users.len() as f64);
    match read_kept(&inner.pool, kept, &users).await {
        Ok(found) => {
            let found: HashMap<String, Arc<Snapshot>> =
                found.into_iter().map(|(user, snapshot)| (user, Arc::new(snapshot))).collect();
            for (user, reply) in batch {
                let _ = reply.send(Ok(found.get(&user).cloned()));
            }
        }
        Err(error) => {
            let message = error.to_string();
            for (_, reply) in batch {
                let _ = reply.send(Err(message.clone()));
            }
        }
    }
}

/// One ledger entry as history shows it.
pub(crate) fn entry_view(entry: Entry) -> crate::dto::EntryView {
    crate::dto::EntryView {
        id: entry.id,
        kind: entry.kind.as_str().to_string(),
        amount: entry.amount,
        balance_after: entry.balance_after,
        reason: entry.reason,
        reference: entry.reference,
        created_at: rfc3339(entry.created_at_ms),
    }
}
