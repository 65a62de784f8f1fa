//! Many plain spends in a few statements. A group-commit batch made only of
//! spends (no Idempotency-Key, nothing to audit) debits each account once by
//! the batch's total for it, in one conditional UPDATE for all accounts, then
//! writes all entries in one INSERT and all grant draws in one more.
//!
//! The rules stay those of `store::apply`: an account is debited only if it
//! is active, has no due grant and covers the whole total (checked and debited
//! in the one statement); every spend gets its own ledger entry whose
//! `balance_after` is what it would have been one spend at a time. An account
//! the batch cannot cover in one go is left untouched here, and its spends run
//! one by one afterwards, each with its own check.
//!
//! Each statement has one fixed text whatever the batch's size: the batch
//! goes in as one JSON array parameter that the statement reads as a table
//! (`json_each` on SQLite, `json_to_recordset` on PostgreSQL). So every
//! statement is parsed and planned once per connection and then stays
//! prepared, instead of once per batch.

use super::rules::{Delta, EntryKind};
use crate::exec::{Exec, ReadRow};
use crate::ledger::grants::GrantEffect;
use serde_json::json;
use std::collections::BTreeMap;

/// One spend of a batch.
#[derive(Debug, Clone, Copy)]
pub struct PlainSpend<'a> {
    pub user_id: &'a str,
    pub amount: i64,
    pub reason: Option<&'a str>,
    pub actor: &'a str,
}

/// Applies what it can; `true` at the index of every spend it applied.
/// `postgres`: lock the accounts first, in user-id order, so batches of
/// several instances never wait on each other in a cycle. There the
/// transaction is a batch's (`group_commit`), begun to plan for key lookups.
pub async fn apply_spends<C: Exec>(
    conn: &mut C,
    spends: &[PlainSpend<'_>],
    postgres: bool,
) -> Result<Vec<bool>, sqlx::Error> {
    let now = crate::db::now_ms();
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    for spend in spends {
        *totals.entry(spend.user_id).or_default() += spend.amount;
    }
    let users: Vec<(&str, i64)> = totals.into_iter().collect();
    let totals = totals_json(&users);
    if postgres {
        lock_accounts(conn, &totals).await?;
    }

    // 1. Every account covered in full, debited by its total at once.
    let debited = per_user(conn, debit_sql(postgres), now, &totals).await?;
    let mut applied = vec![false; spends.len()];
    if debited.is_empty() {
        return Ok(applied);
    }

    // 2. One entry per spend (`entries_sql`), with the balance it left, as if one at a time:
    //    walking an account's spends backwards from its final balance.
    let mut after: BTreeMap<&str, i64> =
        debited.iter().map(|(user, remaining)| (user.as_str(), *remaining)).collect();
    let mut balance_after = vec![0; spends.len()];
    for (index, spend) in spends.iter().enumerate().rev() {
        if let Some(remaining) = after.get_mut(spend.user_id) {
            applied[index] = true;
            balance_after[index] = *remaining;
            *remaining += spend.amount;
        }
    }
    let mine: Vec<usize> = (0..spends.len()).filter(|index| applied[*index]).collect();
    let rows: Vec<serde_json::Value> = mine
        .iter()
        .map(|&index| {
            let spend = &spends[index];
            let delta = Delta::spend(spend.amount);
            json!({"user_id": spend.user_id, "kind": "spend", "amount": delta.remaining, "held": 0,
                   "used": delta.used, "balance_after": balance_after[index], "reason": spend.reason,
                   "reference": null, "actor": spend.actor})
        })
        .collect();
    let args = vec![now.into(), serde_json::Value::from(rows).to_string().into()];
    // An account's entries in one batch have distinct balances (every spend
    // is positive), so (user, balance_after) names each entry.
    let ids: BTreeMap<(String, i64), i64> = conn
        .fetch_all(entries_sql(postgres), args)
        .await?
        .iter()
        .map(|row| Ok(((row.read::<String>(1)?, row.read::<i64>(2)?), row.read::<i64>(0)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let entry_id = |index: usize| -> Result<i64, sqlx::Error> {
        let key = (spends[index].user_id.to_string(), balance_after[index]);
        ids.get(&key).copied().ok_or_else(|| sqlx::Error::Protocol("a batched entry has no id".into()))
    };

    // 3. Grants: where an account's first live grant covers its total, it
    //    is drawn from once for all the account's spends; other accounts
    //    draw spend by spend.
    let rows: Vec<Draw<'_>> = mine
        .iter()
        .map(|&index| {
            Ok(Draw {
                user_id: spends[index].user_id,
                entry_id: entry_id(index)?,
                amount: spends[index].amount,
                balance_after: balance_after[index],
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    draw_grants(conn, draw_sql(postgres), Delta::spend, now, &rows).await?;

    // 4. What each entry causes besides: notices, metrics, the trace.
    for &index in &mine {
        let spend = &spends[index];
        let delta = Delta::spend(spend.amount);
        let span = tracing::info_span!("ledger.apply", user_id = %spend.user_id, kind = ?EntryKind::Spend,
            amount = delta.remaining, used = delta.used, actor = spend.actor, batched = true);
        let _entered = span.enter();
        crate::ledger::alerts::on_entry(conn, spend.user_id, &delta, balance_after[index], now).await?;
        super::store::record_metrics(EntryKind::Spend, &delta);
    }
    Ok(applied)
}

/// PostgreSQL: locks the accounts of `totals` (as `totals_json` writes
/// them) in user-id order, so that batches of several instances never wait
/// on each other in a cycle.
pub(crate) async fn lock_accounts<C: Exec>(conn: &mut C, totals: &str) -> Result<(), sqlx::Error> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT user_id FROM accounts WHERE user_id IN (SELECT t.user_id FROM ({}) AS t) \
             ORDER BY user_id FOR UPDATE",
            table(true, "$1", &[("user_id", "text"), ("total", "bigint")])
        )
    });
    conn.fetch_all(SQL.as_str(), vec![totals.into()]).await?;
    Ok(())
}

/// `[{"user_id": …, "total": …}, …]`: the batch's total per account.
pub(crate) fn totals_json(users: &[(&str, i64)]) -> String {
    let rows: Vec<serde_json::Value> =
        users.iter().map(|(user, total)| json!({"user_id": user, "total": total})).collect();
    serde_json::Value::from(rows).to_string()
}

/// A table of the JSON array of objects in `param`, with these columns in
/// array order (`ord`): `json_to_recordset` on PostgreSQL, `json_each` on SQLite.
pub(crate) fn table(postgres: bool, param: &str, columns: &[(&str, &str)]) -> String {
    if postgres {
        let typed: Vec<String> = columns.iter().map(|(name, kind)| format!("{name} {kind}")).collect();
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        format!(
            "SELECT * FROM ROWS FROM (json_to_recordset(CAST({param} AS json)) AS ({})) \
             WITH ORDINALITY AS j({}, ord)",
            typed.join(", "),
            names.join(", ")
        )
    } else {
        let picked: Vec<String> =
            columns.iter().map(|(name, _)| format!("json_extract(value, '$.{name}') AS {name}")).collect();
        format!("SELECT {}, CAST(key AS INTEGER) AS ord FROM json_each({param})", picked.join(", "))
    }
}

/// A statement's text for each engine (SQLite, PostgreSQL), built once.
pub(crate) type StatementCell = [std::sync::OnceLock<String>; 2];

pub(crate) const fn statement_cell() -> StatementCell {
    [std::sync::OnceLock::new(), std::sync::OnceLock::new()]
}

/// One statement's text per engine, built once.
pub(crate) fn cached(
    postgres: bool,
    build: fn(bool) -> String,
    cell: &'static StatementCell,
) -> &'static str {
    cell[usize::from(postgres)].get_or_init(|| build(postgres)).as_str()
}

/// Step 1: debits every account by its total where it covers all of it; `$1` the time, `$2` the totals.
fn debit_sql(postgres: bool) -> &'static str {
    static CELL: StatementCell = statement_cell();
    cached(
        postgres,
        |postgres| {
            format!(
                "UPDATE accounts SET remaining = remaining - d.total, used = used + d.total, updated_at = $1 \
                 FROM ({totals}) AS d \
                 WHERE accounts.user_id = d.user_id AND accounts.status = 'active' \
                 AND accounts.remaining >= d.total AND NOT {due} \
                 RETURNING accounts.user_id, accounts.remaining",
                totals = table(postgres, "$2", &[("user_id", "text"), ("total", "bigint")]),
                due = crate::ledger::grants::due_exists("accounts.user_id", "$1"),
            )
        },
        &CELL,
    )
}

/// One ledger entry per row of `$2`, in its order, at `$1` (the rows carry
/// `user_id`, `kind`, `amount`, `held`, `used`, `balance_after`, `reason`,
/// `reference`, `actor`); returns each entry's `id, user_id, balance_after,
/// reference`. Spends here and holds and captures in `holds::batch`.
pub(crate) fn entries_sql(postgres: bool) -> &'static str {
    static CELL: StatementCell = statement_cell();
    cached(
        postgres,
        |postgres| {
            format!(
                "INSERT INTO ledger_entries (user_id, kind, amount, held_delta, used_delta, initial_delta, \
                 bonus_delta, adjust_delta, balance_after, reason, reference, actor, created_at) \
                 SELECT r.user_id, r.kind, r.amount, r.held, r.used, 0, 0, 0, r.balance_after, r.reason, \
                 r.reference, r.actor, $1 FROM ({rows}) AS r ORDER BY r.ord \
                 RETURNING id, user_id, balance_after, reference",
                rows = table(
                    postgres,
                    "$2",
                    &[
                        ("user_id", "text"),
                        ("kind", "text"),
                        ("amount", "bigint"),
                        ("held", "bigint"),
                        ("used", "bigint"),
                        ("balance_after", "bigint"),
                        ("reason", "text"),
                        ("reference", "text"),
                        ("actor", "text"),
                    ]
                ),
            )
        },
        &CELL,
    )
}

/// Step 3: draws the spends from each account's first live grant where it covers them all.
fn draw_sql(postgres: bool) -> &'static str {
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
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    for row in rows {
        *totals.entry(row.user_id).or_default() += row.amount;
    }
    let totals: Vec<(&str, i64)> = totals.into_iter().collect();
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

/// Runs a statement (`$1` the time, `$2` the totals) that returns
/// `(user_id, value)` rows, as a map.
pub(crate) async fn per_user<C: Exec>(
    conn: &mut C,
    sql: &str,
    now: i64,
    totals: &str,
) -> Result<BTreeMap<String, i64>, sqlx::Error> {
    conn.fetch_all(sql, vec![now.into(), totals.into()])
        .await?
        .iter()
        .map(|row| Ok((row.read::<String>(0)?, row.read::<i64>(1)?)))
        .collect()
}
