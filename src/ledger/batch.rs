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
//! Each statement's text depends on the batch's size, so none is kept in the
//! connection's statement cache (`persistent(false)`): hundreds of cached
//! shapes would cost memory for no reuse.

use super::rules::{Delta, EntryKind};
use crate::grants::GrantEffect;
use sqlx::{AnyConnection, Row};
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
/// several instances never wait on each other in a cycle.
pub async fn apply_spends(
    conn: &mut AnyConnection,
    spends: &[PlainSpend<'_>],
    postgres: bool,
) -> Result<Vec<bool>, sqlx::Error> {
    let now = crate::db::now_ms();
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    for spend in spends {
        *totals.entry(spend.user_id).or_default() += spend.amount;
    }
    let users: Vec<(&str, i64)> = totals.into_iter().collect();
    if postgres {
        let list = (1..=users.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql =
            format!("SELECT user_id FROM accounts WHERE user_id IN ({list}) ORDER BY user_id FOR UPDATE");
        let mut query = sqlx::query(&sql).persistent(false);
        for (user, _) in &users {
            query = query.bind(*user);
        }
        query.fetch_all(&mut *conn).await?;
    }

    // 1. Every account covered in full, debited by its total at once.
    let sql = format!(
        "UPDATE accounts SET remaining = remaining - d.total, used = used + d.total, updated_at = $1 \
         FROM ({totals}) AS d \
         WHERE accounts.user_id = d.user_id AND accounts.status = 'active' AND accounts.remaining >= d.total \
         AND NOT {due} \
         RETURNING accounts.user_id, accounts.remaining",
        totals = totals_table(2, users.len()),
        due = crate::grants::due_exists("accounts.user_id", "$1"),
    );
    let debited = per_user(conn, &sql, now, &users).await?;
    let mut applied = vec![false; spends.len()];
    if debited.is_empty() {
        return Ok(applied);
    }

    // 2. One entry per spend, with the balance it left, as if one at a time:
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
    let rows = entry_rows(mine.len());
    let sql = format!(
        "INSERT INTO ledger_entries (user_id, kind, amount, held_delta, used_delta, initial_delta, \
         bonus_delta, adjust_delta, balance_after, reason, reference, actor, created_at) VALUES {} \
         RETURNING id, user_id, balance_after",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql).persistent(false).bind(now);
    for &index in &mine {
        let spend = &spends[index];
        let delta = Delta::spend(spend.amount);
        query = query
            .bind(spend.user_id)
            .bind(delta.remaining)
            .bind(delta.used)
            .bind(balance_after[index])
            .bind(spend.reason)
            .bind(spend.actor);
    }
    // An account's entries in one batch have distinct balances (every spend
    // is positive), so (user, balance_after) names each entry.
    let ids: BTreeMap<(String, i64), i64> = query
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok(((row.try_get::<String, _>(1)?, row.try_get::<i64, _>(2)?), row.try_get::<i64, _>(0)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let entry_id = |index: usize| -> Result<i64, sqlx::Error> {
        let key = (spends[index].user_id.to_string(), balance_after[index]);
        ids.get(&key).copied().ok_or_else(|| sqlx::Error::Protocol("a batched entry has no id".into()))
    };

    // 3. Grants: where an account's first live grant covers its total, one
    //    UPDATE draws from all of them; other accounts draw spend by spend.
    let covered_users: Vec<(&str, i64)> =
        users.iter().copied().filter(|(user, _)| debited.contains_key(*user)).collect();
    let sql = format!(
        "UPDATE grants SET remaining = remaining - d.total, used = used + d.total \
         FROM ({totals}) AS d \
         WHERE grants.id = (SELECT g.id FROM grants g WHERE g.user_id = d.user_id AND g.status = 'active' \
           AND g.remaining > 0 AND (g.expires_at IS NULL OR g.expires_at > $1) ORDER BY {order} LIMIT 1) \
         AND grants.remaining >= d.total \
         RETURNING grants.user_id, grants.id",
        totals = totals_table(2, covered_users.len()),
        order = crate::grants::DRAW_ORDER,
    );
    let drawn = per_user(conn, &sql, now, &covered_users).await?;
    let mut draws = Vec::new();
    for &index in &mine {
        let spend = &spends[index];
        let id = entry_id(index)?;
        match drawn.get(spend.user_id) {
            Some(grant_id) => draws.push((id, *grant_id, spend.amount)),
            None => {
                let delta = Delta::spend(spend.amount);
                crate::grants::on_entry(
                    conn,
                    spend.user_id,
                    &delta,
                    id,
                    &GrantEffect::Auto,
                    balance_after[index],
                    now,
                )
                .await?;
            }
        }
    }
    if !draws.is_empty() {
        let rows: Vec<String> = (0..draws.len())
            .map(|row| {
                let p = 1 + row * 3;
                format!("(CAST(${p} AS BIGINT), CAST(${} AS BIGINT), CAST(${} AS BIGINT))", p + 1, p + 2)
            })
            .collect();
        let sql = format!("INSERT INTO grant_draws (entry_id, grant_id, amount) VALUES {}", rows.join(", "));
        let mut query = sqlx::query(&sql).persistent(false);
        for (entry, grant, amount) in &draws {
            query = query.bind(*entry).bind(*grant).bind(*amount);
        }
        query.execute(&mut *conn).await?;
    }

    // 4. What each entry causes besides: notices, metrics, the trace.
    for &index in &mine {
        let spend = &spends[index];
        let delta = Delta::spend(spend.amount);
        let span = tracing::info_span!("ledger.apply", user_id = %spend.user_id, kind = ?EntryKind::Spend,
            amount = delta.remaining, used = delta.used, actor = spend.actor, batched = true);
        let _entered = span.enter();
        crate::alerts::on_entry(conn, spend.user_id, &delta, balance_after[index], now).await?;
        super::store::record_metrics(EntryKind::Spend, &delta);
    }
    Ok(applied)
}

/// `SELECT column1 AS user_id, column2 AS total FROM (VALUES ($first, $first+1), …)`
/// — a table both SQLite and PostgreSQL read the same way.
fn totals_table(first: usize, rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let p = first + row * 2;
            format!("(CAST(${p} AS TEXT), CAST(${} AS BIGINT))", p + 1)
        })
        .collect();
    format!("SELECT column1 AS user_id, column2 AS total FROM (VALUES {}) AS v", values.join(", "))
}

/// The VALUES rows of the entry INSERT: `$1` is the time, then six per row.
fn entry_rows(rows: usize) -> Vec<String> {
    (0..rows)
        .map(|row| {
            let p = 2 + row * 6;
            format!(
                "(CAST(${p} AS TEXT), 'spend', CAST(${} AS BIGINT), 0, CAST(${} AS BIGINT), 0, 0, 0, \
                 CAST(${} AS BIGINT), CAST(${} AS TEXT), NULL, CAST(${} AS TEXT), $1)",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5
            )
        })
        .collect()
}

/// Runs a statement over `totals_table(2, …)` of `users` (`$1` is the time)
/// that returns `(user_id, value)` rows, as a map.
async fn per_user(
    conn: &mut AnyConnection,
    sql: &str,
    now: i64,
    users: &[(&str, i64)],
) -> Result<BTreeMap<String, i64>, sqlx::Error> {
    let mut query = sqlx::query(sql).persistent(false).bind(now);
    for (user, total) in users {
        query = query.bind(*user).bind(*total);
    }
    query
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?)))
        .collect()
}
