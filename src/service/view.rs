//! What `GET /api/credits` (and every change's answer) shows, read in one
//! statement: the account, whether any of its grants is due, its recent
//! entries, its live grants and its notices come back as one `UNION ALL`,
//! each row tagged with its part. One round trip instead of five matters on
//! every page load and every spend: SQLite hands each statement to its worker
//! thread and PostgreSQL to another process.

use crate::db::rfc3339;
use crate::dto::CreditsView;
use crate::grants::GrantRow;
use crate::ledger::store::{Account, Entry};
use crate::ledger::Figures;
use crate::outbox::Notice;
use sqlx::{AnyConnection, Row};

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

// Columns: part, seq, t1..t4 (text), n1..n10 (integers). Every integer is cast
// to BIGINT so PostgreSQL gives each column one type across the parts.
const SNAPSHOT_SQL: &str = "\
SELECT CAST(0 AS BIGINT) AS part, CAST(0 AS BIGINT) AS seq, user_id AS t1, email AS t2, name AS t3, status AS t4, \
  remaining AS n1, held AS n2, used AS n3, initial AS n4, bonus AS n5, adjustments AS n6, total AS n7, \
  created_at AS n8, updated_at AS n9, \
  CAST(CASE WHEN {due} THEN 1 ELSE 0 END AS BIGINT) AS n10 \
FROM accounts WHERE user_id = $1 \
UNION ALL \
SELECT CAST(1 AS BIGINT), CAST(ROW_NUMBER() OVER (ORDER BY id DESC) AS BIGINT), kind, reason, reference, NULL, \
  id, amount, balance_after, created_at, NULL, NULL, NULL, NULL, NULL, NULL \
FROM (SELECT id, kind, amount, balance_after, reason, reference, created_at FROM ledger_entries \
  WHERE user_id = $1 ORDER BY id DESC LIMIT $3) recent \
UNION ALL \
SELECT CAST(2 AS BIGINT), CAST(ROW_NUMBER() OVER (ORDER BY priority, CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, \
  expires_at, created_at, id) AS BIGINT), kind, category, status, NULL, \
  id, amount, remaining, held, priority, effective_at, expires_at, NULL, NULL, NULL \
FROM grants WHERE user_id = $1 AND status IN ('active', 'scheduled') AND (remaining > 0 OR held > 0) \
UNION ALL \
SELECT CAST(3 AS BIGINT), CAST(ROW_NUMBER() OVER (ORDER BY created_at DESC, id) AS BIGINT), id, event_type, payload, NULL, \
  created_at, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL \
FROM (SELECT id, event_type, payload, created_at FROM outbox WHERE user_id = $1 \
  AND event_type IN ('credits.low', 'credits.depleted', 'credits.expiring') \
  ORDER BY created_at DESC, id LIMIT $4) notices \
ORDER BY part, seq";

/// Reads the user's view; `None` when the account does not exist.
pub(crate) async fn snapshot(
    conn: &mut AnyConnection,
    user_id: &str,
    now: i64,
) -> Result<Option<Snapshot>, sqlx::Error> {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| SNAPSHOT_SQL.replace("{due}", &crate::grants::due_exists("$1", "$2")));
    let rows = sqlx::query(SQL.as_str())
        .bind(user_id)
        .bind(now)
        .bind(RECENT_ENTRIES)
        .bind(NOTICES)
        .fetch_all(&mut *conn)
        .await?;
    let mut account = None;
    let mut snapshot_parts = (false, Vec::new(), Vec::new(), Vec::new());
    for row in &rows {
        // Columns by position: part 0, seq 1, t1..t4 at 2..=5, n1..n10 at 6..=15.
        let n = |i: usize| row.try_get::<i64, _>(5 + i);
        let t = |i: usize| row.try_get::<Option<String>, _>(1 + i);
        let text = |i: usize| -> Result<String, sqlx::Error> { Ok(t(i)?.unwrap_or_default()) };
        match row.try_get::<i64, _>("part")? {
            0 => {
                account = Some(Account {
                    user_id: text(1)?,
                    email: t(2)?,
                    name: t(3)?,
                    status: text(4)?,
                    figures: Figures {
                        remaining: n(1)?,
                        held: n(2)?,
                        used: n(3)?,
                        initial: n(4)?,
                        bonus: n(5)?,
                        adjustments: n(6)?,
                        total: n(7)?,
                    },
                    created_at_ms: n(8)?,
                    updated_at_ms: n(9)?,
                });
                snapshot_parts.0 = n(10)? != 0;
            }
            1 => snapshot_parts.1.push(Entry {
                id: n(1)?,
                kind: text(1)?,
                amount: n(2)?,
                balance_after: n(3)?,
                reason: t(2)?,
                reference: t(3)?,
                created_at_ms: n(4)?,
            }),
            2 => snapshot_parts.2.push(GrantRow {
                id: n(1)?,
                user_id: user_id.to_string(),
                kind: text(1)?,
                category: text(2)?,
                amount: n(2)?,
                remaining: n(3)?,
                held: n(4)?,
                priority: n(5)?,
                status: text(3)?,
                effective_at_ms: n(6)?,
                expires_at_ms: row.try_get::<Option<i64>, _>(5 + 7)?,
            }),
            _ => {
                let payload: serde_json::Value = serde_json::from_str(&text(3)?).unwrap_or_default();
                snapshot_parts.3.push(Notice {
                    id: text(1)?,
                    event_type: text(2)?,
                    data: payload["data"].clone(),
                    created_at: rfc3339(n(1)?),
                });
            }
        }
    }
    let (grants_due, recent, grants, notices) = snapshot_parts;
    Ok(account.map(|account| Snapshot { account, grants_due, recent, grants, notices }))
}

/// The contract's view of a snapshot.
pub(crate) fn view(snapshot: Snapshot, cost_per_video: i64) -> CreditsView {
    let Snapshot { account, recent, grants, notices, .. } = snapshot;
    let next_expiry = grants
        .iter()
        .filter(|grant| grant.status == "active" && grant.remaining > 0)
        .filter_map(|grant| grant.expires_at_ms.map(|at| (at, grant.remaining)))
        .min_by_key(|(at, _)| *at)
        .map(|(at, _)| crate::dto::NextExpiry {
            at: rfc3339(at),
            amount: grants
                .iter()
                .filter(|grant| grant.status == "active" && grant.expires_at_ms == Some(at))
                .map(|grant| grant.remaining)
                .sum(),
        });
    CreditsView {
        credits: account.figures.as_dto(),
        held: account.figures.held,
        cost_per_video,
        can_generate_video: account.status == "active" && account.figures.remaining >= cost_per_video,
        recent: recent.into_iter().map(super::entry_view).collect(),
        updated_at: rfc3339(account.updated_at_ms),
        grants: grants
            .iter()
            .filter(|grant| grant.remaining > 0 || grant.status == "scheduled")
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
            .into_iter()
            .map(|notice| crate::dto::NoticeView {
                id: notice.id,
                event_type: notice.event_type,
                data: notice.data,
                created_at: notice.created_at,
            })
            .collect(),
        user_id: account.user_id,
    }
}
