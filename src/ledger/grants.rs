//! Grants: identifiable blocks of credits with a start, an optional expiry, a
//! priority and a category. Every credit-adding entry makes (or activates) one;
//! every removing entry draws from live grants in a fixed order and records the
//! draw, so captures, releases, refunds and voids touch the right grant.
//!
//! Draw order: `priority` (lower first), then soonest `expires_at` (never-expiring
//! last), then oldest. All grant changes of a user happen while the user's
//! account row is locked by the same transaction.

use super::rules::{Delta, EntryKind};
use super::sql::{cached, per_user, statement_cell, table, totals_json, totals_per_account, StatementCell};
use crate::exec::{Arg, Exec};
use serde::Serialize;
use serde_json::json;
use sqlx::{AnyConnection, AnyPool, Row};

/// How an entry changes grants (`EntryMeta::grants`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GrantEffect {
    /// Adding kinds make a default grant; removing kinds draw in order.
    #[default]
    Auto,
    /// Make a grant with these terms.
    Create(GrantSpec),
    /// This scheduled grant starts counting now.
    Activate(i64),
    /// Draw from this grant first (a refund of its payment), then in order.
    Prefer(i64),
    /// Exactly these (grant, amount) pairs: a hold's capture or release, an expiry or void.
    Exact(Vec<(i64, i64)>),
}

/// The terms of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSpec {
    pub category: &'static str,
    pub priority: i64,
    pub effective_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub reference: Option<String>,
}

pub const DEFAULT_PRIORITY: i64 = 50;
pub const CATEGORIES: [&str; 3] = ["free", "paid", "promotional"];

impl GrantSpec {
    /// The default terms for an entry kind: initial grants are free, purchases
    /// paid, admin additions promotional; none expire.
    pub fn default_for(kind: EntryKind) -> Self {
        let category = match kind {
            EntryKind::Initial => "free",
            EntryKind::Purchase => "paid",
            _ => "promotional",
        };
        Self { category, priority: DEFAULT_PRIORITY, effective_at: None, expires_at: None, reference: None }
    }
}

/// Where a grant is in its life: `scheduled` until its start, `active`
/// while it counts, then `expired` or `voided` for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantStatus {
    Scheduled,
    Active,
    Expired,
    Voided,
}

impl GrantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Voided => "voided",
        }
    }

    /// A status as stored; the schema's CHECK allows only these.
    pub fn parse(text: &str) -> Result<Self, sqlx::Error> {
        match text {
            "scheduled" => Ok(Self::Scheduled),
            "active" => Ok(Self::Active),
            "expired" => Ok(Self::Expired),
            "voided" => Ok(Self::Voided),
            other => Err(sqlx::Error::Decode(format!("unknown grant status `{other}`").into())),
        }
    }
}

/// A grant as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantRow {
    pub id: i64,
    pub user_id: String,
    pub kind: String,
    pub category: String,
    pub amount: i64,
    pub remaining: i64,
    pub held: i64,
    pub priority: i64,
    pub status: GrantStatus,
    pub effective_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

fn kind_of_grant(kind: EntryKind) -> Option<&'static str> {
    match kind {
        EntryKind::Initial => Some("initial"),
        EntryKind::Purchase => Some("purchase"),
        EntryKind::Adjust => Some("adjust"),
        _ => None,
    }
}

/// The delta that makes a grant of `grant_kind` count.
pub fn adding_delta(grant_kind: &str, amount: i64) -> Delta {
    match grant_kind {
        "initial" => Delta::initial(amount),
        "purchase" => Delta::purchase(amount),
        _ => Delta::adjust(amount),
    }
}

/// The delta that removes `amount` of a grant of `grant_kind` (expiry or void).
pub fn removing_delta(kind: EntryKind, grant_kind: &str, amount: i64) -> Delta {
    let mut delta = Delta { kind: Some(kind), remaining: -amount, ..Delta::default() };
    match grant_kind {
        "initial" => delta.initial = -amount,
        "purchase" => delta.bonus = -amount,
        _ => delta.adjustments = -amount,
    }
    delta
}

/// Which grant column a draw moves credits into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Into_ {
    Held,
    Used,
    Removed,
}

impl Into_ {
    fn column(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Used => "used",
            Self::Removed => "removed",
        }
    }
}

pub(crate) const DRAW_ORDER: &str =
    "priority, CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, created_at, id";

/// Keeps grants in step with one ledger entry (called by `store::apply`).
pub(crate) async fn on_entry(
    conn: &mut AnyConnection,
    user_id: &str,
    delta: &Delta,
    entry_id: i64,
    effect: &GrantEffect,
    remaining_after: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let kind = delta.kind.expect("an entry has a kind");
    let amount = delta.remaining.abs();
    match kind {
        EntryKind::Initial | EntryKind::Purchase | EntryKind::Adjust if delta.remaining > 0 => {
            // Credits arriving while the account is in debt repay the debt first.
            let before = remaining_after - delta.remaining;
            let repaid = (-before).clamp(0, amount);
            match effect {
                GrantEffect::Activate(grant_id) => {
                    sqlx::query(
                        "UPDATE grants SET status = 'active', source_entry_id = $1, remaining = remaining - $2, \
                         removed = removed + $2 WHERE id = $3 AND status = 'scheduled'",
                    )
                    .bind(entry_id)
                    .bind(repaid)
                    .bind(grant_id)
                    .execute(&mut *conn)
                    .await?;
                }
                _ => {
                    let spec = match effect {
                        GrantEffect::Create(spec) => spec.clone(),
                        _ => GrantSpec::default_for(kind),
                    };
                    let grant_kind = kind_of_grant(kind).expect("an adding kind");
                    insert(conn, user_id, grant_kind, amount, &spec, Some(entry_id), repaid, now).await?;
                }
            }
        }
        EntryKind::Spend => draw(conn, user_id, entry_id, amount, None, Into_::Used, false, now).await?,
        EntryKind::Hold => draw(conn, user_id, entry_id, amount, None, Into_::Held, false, now).await?,
        EntryKind::Adjust => draw(conn, user_id, entry_id, amount, None, Into_::Removed, true, now).await?,
        EntryKind::Refund | EntryKind::Clawback => {
            let prefer = match effect {
                GrantEffect::Prefer(grant_id) => Some(*grant_id),
                _ => None,
            };
            draw(conn, user_id, entry_id, amount, prefer, Into_::Removed, true, now).await?
        }
        EntryKind::Capture | EntryKind::Release | EntryKind::Expire | EntryKind::Void => {
            let GrantEffect::Exact(parts) = effect else {
                return Err(sqlx::Error::Protocol(format!("{} needs the exact grants", kind.as_str())));
            };
            let (from, to) = match kind {
                EntryKind::Capture => ("held", "used"),
                EntryKind::Release => ("held", "remaining"),
                _ => ("remaining", "expired"),
            };
            for (grant_id, part) in parts {
                let sql = format!("UPDATE grants SET {from} = {from} - $1, {to} = {to} + $1 WHERE id = $2");
                sqlx::query(&sql).bind(part).bind(grant_id).execute(&mut *conn).await?;
                record_draw(conn, entry_id, *grant_id, *part).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    conn: &mut AnyConnection,
    user_id: &str,
    grant_kind: &str,
    amount: i64,
    spec: &GrantSpec,
    source_entry_id: Option<i64>,
    repaid: i64,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let status = if source_entry_id.is_some() { "active" } else { "scheduled" };
    let row = sqlx::query(
        "INSERT INTO grants (user_id, source_entry_id, kind, category, amount, remaining, removed, priority, \
         effective_at, expires_at, status, reference, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(user_id)
    .bind(source_entry_id)
    .bind(grant_kind)
    .bind(spec.category)
    .bind(amount)
    .bind(amount - repaid)
    .bind(repaid)
    .bind(spec.priority)
    .bind(spec.effective_at.unwrap_or(now).min(if source_entry_id.is_some() { now } else { i64::MAX }))
    .bind(spec.expires_at)
    .bind(status)
    .bind(spec.reference.as_deref())
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    row.try_get("id")
}

/// Stores a grant that starts later; it counts from `effective_at` on.
pub async fn schedule(
    conn: &mut AnyConnection,
    user_id: &str,
    grant_kind: &str,
    amount: i64,
    spec: &GrantSpec,
) -> Result<i64, sqlx::Error> {
    insert(conn, user_id, grant_kind, amount, spec, None, 0, crate::db::now_ms()).await
}

async fn record_draw(
    conn: &mut AnyConnection,
    entry_id: i64,
    grant_id: i64,
    amount: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO grant_draws (entry_id, grant_id, amount) VALUES ($1, $2, $3) \
         ON CONFLICT (entry_id, grant_id) DO UPDATE SET amount = grant_draws.amount + excluded.amount",
    )
    .bind(entry_id)
    .bind(grant_id)
    .bind(amount)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Takes `amount` from live grants in draw order (a preferred grant first).
/// A spend or hold must be covered; a removal may run short (the rest is debt).
#[allow(clippy::too_many_arguments)]
async fn draw(
    conn: &mut AnyConnection,
    user_id: &str,
    entry_id: i64,
    amount: i64,
    prefer: Option<i64>,
    into: Into_,
    may_run_short: bool,
    now: i64,
) -> Result<(), sqlx::Error> {
    if prefer.is_none() && amount > 0 {
        // Usually the first grant in draw order covers the whole amount: then
        // one UPDATE finds it and draws from it.
        let sql = format!(
            "UPDATE grants SET remaining = remaining - $1, {column} = {column} + $1 \
             WHERE id = (SELECT id FROM grants WHERE user_id = $2 AND status = 'active' AND remaining > 0 \
             AND (expires_at IS NULL OR expires_at > $3) ORDER BY {DRAW_ORDER} LIMIT 1) AND remaining >= $1 \
             RETURNING id",
            column = into.column()
        );
        let row = sqlx::query(&sql).bind(amount).bind(user_id).bind(now).fetch_optional(&mut *conn).await?;
        if let Some(row) = row {
            return record_draw(conn, entry_id, row.try_get("id")?, amount).await;
        }
    }
    let sql = format!(
        "SELECT id, remaining FROM grants WHERE user_id = $1 AND status = 'active' AND remaining > 0 \
         AND (expires_at IS NULL OR expires_at > $2) ORDER BY CASE WHEN id = $3 THEN 0 ELSE 1 END, {DRAW_ORDER}"
    );
    let rows =
        sqlx::query(&sql).bind(user_id).bind(now).bind(prefer.unwrap_or(-1)).fetch_all(&mut *conn).await?;
    let mut left = amount;
    let update = format!(
        "UPDATE grants SET remaining = remaining - $1, {column} = {column} + $1 WHERE id = $2",
        column = into.column()
    );
    for row in rows {
        if left == 0 {
            break;
        }
        let grant_id: i64 = row.try_get("id")?;
        let take = left.min(row.try_get::<i64, _>("remaining")?);
        sqlx::query(&update).bind(take).bind(grant_id).execute(&mut *conn).await?;
        record_draw(conn, entry_id, grant_id, take).await?;
        left -= take;
    }
    if left > 0 && !may_run_short {
        return Err(sqlx::Error::Protocol(format!("live grants of {user_id} do not cover {amount}")));
    }
    Ok(())
}

/// What a hold took from each grant, in draw order.
pub async fn draws_of(conn: &mut AnyConnection, entry_id: i64) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.grant_id, d.amount FROM grant_draws d JOIN grants g ON g.id = d.grant_id WHERE d.entry_id = $1 \
         ORDER BY g.priority, CASE WHEN g.expires_at IS NULL THEN 1 ELSE 0 END, g.expires_at, g.created_at, g.id",
    )
    .bind(entry_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|row| Ok((row.try_get("grant_id")?, row.try_get("amount")?))).collect()
}

/// Live and future grants of a user, in draw order.
pub async fn list(conn: &mut AnyConnection, user_id: &str) -> Result<Vec<GrantRow>, sqlx::Error> {
    let sql = format!(
        "SELECT id, user_id, kind, category, amount, remaining, held, priority, status, effective_at, expires_at \
         FROM grants WHERE user_id = $1 AND status IN ('active', 'scheduled') AND (remaining > 0 OR held > 0) \
         ORDER BY {DRAW_ORDER}"
    );
    let rows = sqlx::query(&sql).bind(user_id).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            Ok(GrantRow {
                id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                kind: row.try_get("kind")?,
                category: row.try_get("category")?,
                amount: row.try_get("amount")?,
                remaining: row.try_get("remaining")?,
                held: row.try_get("held")?,
                priority: row.try_get("priority")?,
                status: GrantStatus::parse(&row.try_get::<String, _>("status")?)?,
                effective_at_ms: row.try_get("effective_at")?,
                expires_at_ms: row.try_get("expires_at")?,
            })
        })
        .collect()
}

/// Whether a user has grants to start or expire (a cheap read before a write).
pub async fn has_due(conn: &mut AnyConnection, user_id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let sql = format!("SELECT 1 WHERE {}", due_exists("$1", "$2"));
    let row = sqlx::query(&sql).bind(user_id).bind(now).fetch_optional(&mut *conn).await?;
    Ok(row.is_some())
}

/// SQL that is true when a grant of `user` (an SQL expression) is due at
/// `now` (a placeholder): scheduled and started, or live and expired. Every
/// statement that must not see a due grant uses this one definition.
pub(crate) fn due_exists(user: &str, now: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM grants g WHERE g.user_id = {user} \
         AND ((g.status = 'scheduled' AND g.effective_at <= {now}) \
         OR (g.status = 'active' AND g.expires_at IS NOT NULL AND g.expires_at <= {now})))"
    )
}

/// Users with grants due to start or end at `now`, at most `limit`.
pub async fn users_due(pool: &AnyPool, now: i64, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query(
        "SELECT DISTINCT user_id FROM grants WHERE (status = 'scheduled' AND effective_at <= $1) \
         OR (status = 'active' AND expires_at IS NOT NULL AND expires_at <= $1) LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| row.try_get("user_id"))
    .collect()
}

// Set-wise draws: a batch's entries drawn from their grants in a few
// statements (`ledger::batch`, `holds::batch`), by the same order and rules
// as `draw` does one entry at a time.

/// Draws a batch's spends from each account's first live grant where it covers them all.
pub(crate) fn spend_draw_sql(postgres: bool) -> &'static str {
    static CELL: StatementCell = statement_cell();
    cached(postgres, |postgres| first_grant_draw_sql(postgres, "used"), &CELL)
}

/// One applied entry whose grants are still to draw (`draw_grants`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Draw<'a> {
    pub user_id: &'a str,
    pub entry_id: i64,
    pub amount: i64,
    /// The account's `remaining` right after this entry.
    pub balance_after: i64,
}

/// The grant side of a batch's applied entries (`delta` makes each one's
/// change from its amount). Where an account's first live grant covers the
/// total of its rows, that total is taken from it in one UPDATE for all
/// accounts (`sql`, a `first_grant_draw_sql`) and each row's draw recorded
/// in one INSERT; the other accounts' rows draw one by one
/// (`grants::on_entry`). Only applied entries are passed, so an account the
/// batch did not debit (closed, a grant due, short) keeps its grants as they
/// are.
pub(crate) async fn draw_grants<C: Exec>(
    conn: &mut C,
    sql: &str,
    delta: fn(i64) -> Delta,
    now: i64,
    rows: &[Draw<'_>],
) -> Result<(), sqlx::Error> {
    let postgres = conn.postgres();
    let totals = totals_per_account(rows.iter().map(|row| (row.user_id, row.amount)));
    let drawn = per_user(conn, sql, now, &totals_json(&totals)).await?;
    let draws: Vec<serde_json::Value> = rows
        .iter()
        .filter_map(|r| {
            let grant = drawn.get(r.user_id)?;
            Some(json!({"entry_id": r.entry_id, "grant_id": grant, "amount": r.amount}))
        })
        .collect();
    if !draws.is_empty() {
        conn.execute(draws_sql(postgres), vec![serde_json::Value::from(draws).to_string().into()]).await?;
    }
    for row in rows.iter().filter(|row| !drawn.contains_key(row.user_id)) {
        let change = delta(row.amount);
        crate::ledger::grants::on_entry(
            conn.any().ok_or_else(crate::exec::needs_sqlx)?,
            row.user_id,
            &change,
            row.entry_id,
            &GrantEffect::Auto,
            row.balance_after,
            now,
        )
        .await?;
    }
    Ok(())
}

/// Moves each account's total (`$2`, as `totals_json` writes them) from
/// `remaining` to `column` of its first live grant at `$1`, where that grant
/// covers it; returns `(user_id, grant id)` for each account it drew from.
pub(crate) fn first_grant_draw_sql(postgres: bool, column: &str) -> String {
    format!(
        "UPDATE grants SET remaining = remaining - d.total, {column} = {column} + d.total \
         FROM ({totals}) AS d \
         WHERE grants.id = (SELECT g.id FROM grants g WHERE g.user_id = d.user_id AND g.status = 'active' \
           AND g.remaining > 0 AND (g.expires_at IS NULL OR g.expires_at > $1) ORDER BY {order} LIMIT 1) \
         AND grants.remaining >= d.total \
         RETURNING grants.user_id, grants.id",
        totals = table(postgres, "$2", &[("user_id", "text"), ("total", "bigint")]),
        order = crate::ledger::grants::DRAW_ORDER,
    )
}

/// The grant draws of the entries whose grant covered them; `$1` the rows.
fn draws_sql(postgres: bool) -> &'static str {
    static CELL: StatementCell = statement_cell();
    cached(
        postgres,
        |postgres| {
            format!(
                "INSERT INTO grant_draws (entry_id, grant_id, amount) \
                 SELECT r.entry_id, r.grant_id, r.amount FROM ({rows}) AS r",
                rows = table(
                    postgres,
                    "$1",
                    &[("entry_id", "bigint"), ("grant_id", "bigint"), ("amount", "bigint")]
                ),
            )
        },
        &CELL,
    )
}

/// Holds each account's total in its first live grant where that grant
/// covers it; `$1` the time, `$2` the totals.
pub(crate) fn hold_draw_sql(postgres: bool) -> &'static str {
    static CELL: StatementCell = statement_cell();
    cached(postgres, |postgres| first_grant_draw_sql(postgres, "held"), &CELL)
}

const MOVES: [(&str, &str); 2] = [("hold_entry", "bigint"), ("capture_entry", "bigint")];

/// The (hold entry, capture entry) rows of `$1` as `r`, each with
/// what its hold drew as `d`. On PostgreSQL a LATERAL lookup (`OFFSET 0`
/// keeps the planner from flattening it back into a join), so each row reads
/// its hold's draws through the primary key whatever the statistics say: a
/// plain join lets a planner without statistics of `grant_draws` (before it
/// is first analyzed) guess many draws per entry and hash a full scan of the
/// table instead.
fn hold_draws(postgres: bool) -> String {
    let rows = table(postgres, "$1", &MOVES);
    if postgres {
        format!(
            "({rows}) AS r CROSS JOIN LATERAL \
             (SELECT grant_id, amount FROM grant_draws WHERE grant_draws.entry_id = r.hold_entry OFFSET 0) AS d"
        )
    } else {
        format!("grant_draws d JOIN ({rows}) AS r ON d.entry_id = r.hold_entry")
    }
}

/// What captured holds drew, from `held` to `used`; `$1` the (hold entry, capture entry) rows.
fn capture_grants_sql(postgres: bool) -> &'static str {
    static CELL: StatementCell = statement_cell();
    cached(
        postgres,
        |postgres| {
            format!(
                "UPDATE grants SET held = held - x.amount, used = used + x.amount \
                 FROM (SELECT d.grant_id, SUM(d.amount) AS amount FROM {draws} GROUP BY d.grant_id) AS x \
                 WHERE grants.id = x.grant_id",
                draws = hold_draws(postgres),
            )
        },
        &CELL,
    )
}

/// Each capture entry draws what its hold drew.
fn capture_draws_sql(postgres: bool) -> &'static str {
    static CELL: StatementCell = statement_cell();
    cached(
        postgres,
        |postgres| {
            format!(
                "INSERT INTO grant_draws (entry_id, grant_id, amount) \
                 SELECT r.capture_entry, d.grant_id, d.amount FROM {draws}",
                draws = hold_draws(postgres),
            )
        },
        &CELL,
    )
}

/// Moves what captured holds drew from `held` to `used` in their grants,
/// and records the same draws for the capture entries; `moves` the
/// `[{"hold_entry", "capture_entry"}]` rows.
pub(crate) async fn move_captured<C: Exec>(
    conn: &mut C,
    moves: &str,
    postgres: bool,
) -> Result<(), sqlx::Error> {
    conn.execute(capture_grants_sql(postgres), vec![Arg::from(moves)]).await?;
    conn.execute(capture_draws_sql(postgres), vec![Arg::from(moves)]).await?;
    Ok(())
}
