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
/// transaction is a batch's (`writer`), begun to plan for key lookups.
pub async fn apply_spends<C: Exec>(
    conn: &mut C,
    spends: &[PlainSpend<'_>],
    postgres: bool,
) -> Result<Vec<bool>, sqlx::Error> {
    let now = crate::db::now_ms();
    let totals = totals_json(&totals_per_account(spends.iter().map(|spend| (spend.user_id, spend.amount))));
    if postgres {
        lock_accounts(conn, &totals).await?;
    }

    // 1. Every account covered in full, debited by its total at once.
    let debited = per_user(conn, debit_sql(postgres), now, &totals).await?;
    if debited.is_empty() {
        return Ok(vec![false; spends.len()]);
    }

    // 2. One entry per spend, with the balance it left, as if one at a time.
    let requests: Vec<Option<(&str, i64)>> =
        spends.iter().map(|spend| Some((spend.user_id, spend.amount))).collect();
    let final_remaining = debited.iter().map(|(user, remaining)| (user.as_str(), *remaining)).collect();
    let balance_after =
        figures_after_each(&requests, final_remaining, |remaining, amount| *remaining += amount);
    let mine: Vec<(&PlainSpend<'_>, i64)> =
        spends.iter().zip(&balance_after).filter_map(|(spend, after)| Some((spend, (*after)?))).collect();
    let entry_ids = insert_spend_entries(conn, &mine, now, postgres).await?;

    // 3. Grants: where an account's first live grant covers its total, it
    //    is drawn from once for all the account's spends; other accounts
    //    draw spend by spend.
    let rows: Vec<Draw<'_>> = mine
        .iter()
        .zip(&entry_ids)
        .map(|(&(spend, balance_after), &entry_id)| Draw {
            user_id: spend.user_id,
            entry_id,
            amount: spend.amount,
            balance_after,
        })
        .collect();
    draw_grants(conn, draw_sql(postgres), Delta::spend, now, &rows).await?;

    // 4. What each entry causes besides: notices, metrics, the trace.
    for &(spend, balance_after) in &mine {
        let delta = Delta::spend(spend.amount);
        let span = tracing::info_span!("ledger.apply", user_id = %spend.user_id, kind = ?EntryKind::Spend,
            amount = delta.remaining, used = delta.used, actor = spend.actor, batched = true);
        let _entered = span.enter();
        crate::ledger::alerts::on_entry(conn, spend.user_id, &delta, balance_after, now).await?;
        super::store::record_metrics(EntryKind::Spend, &delta);
    }
    Ok(balance_after.iter().map(Option::is_some).collect())
}

/// Writes one spend entry per applied spend (with the balance it left), in
/// batch order; returns their ids in the same order.
async fn insert_spend_entries<C: Exec>(
    conn: &mut C,
    applied: &[(&PlainSpend<'_>, i64)],
    now: i64,
    postgres: bool,
) -> Result<Vec<i64>, sqlx::Error> {
    let rows: Vec<serde_json::Value> = applied
        .iter()
        .map(|&(spend, balance_after)| {
            let delta = Delta::spend(spend.amount);
            json!({"user_id": spend.user_id, "kind": "spend", "amount": delta.remaining, "held": 0,
                   "used": delta.used, "balance_after": balance_after, "reason": spend.reason,
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
    applied
        .iter()
        .map(|&(spend, balance_after)| {
            ids.get(&(spend.user_id.to_string(), balance_after))
                .copied()
                .ok_or_else(|| sqlx::Error::Protocol("a batched entry has no id".into()))
        })
        .collect()
}

/// The total of a batch's amounts per account, in user-id order: what one
/// conditional UPDATE debits each account by.
pub(crate) fn totals_per_account<'a>(
    amounts: impl IntoIterator<Item = (&'a str, i64)>,
) -> Vec<(&'a str, i64)> {
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    for (user, amount) in amounts {
        *totals.entry(user).or_default() += amount;
    }
    totals.into_iter().collect()
}

/// Each request's figures right after it, as if the batch had run one
/// request at a time in batch order. `requests` holds each request's account
/// and amount (`None` for one that takes no part); `after` the figures of
/// every account the batch changed, after all of its requests; `undo` takes
/// one request's amount back off an account's figures. Walks each account's
/// requests backwards from its final figures, so a request of an account
/// not in `after` gets `None`.
pub(crate) fn figures_after_each<F: Copy>(
    requests: &[Option<(&str, i64)>],
    mut after: BTreeMap<&str, F>,
    undo: impl Fn(&mut F, i64),
) -> Vec<Option<F>> {
    let mut each = vec![None; requests.len()];
    for (index, request) in requests.iter().enumerate().rev() {
        let Some((user, amount)) = *request else { continue };
        if let Some(figures) = after.get_mut(user) {
            each[index] = Some(*figures);
            undo(figures, amount);
        }
    }
    each
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const USERS: [&str; 4] = ["ann", "bob", "cy", "dee"];

    /// The debit statement's arithmetic: an account whose `remaining` covers
    /// its total is debited by all of it; any other is left as it is.
    fn debit(available: &BTreeMap<&'static str, i64>, totals: &[(&str, i64)]) -> BTreeMap<&'static str, i64> {
        totals
            .iter()
            .filter_map(|&(user, total)| {
                let (&user, &remaining) = available.get_key_value(user)?;
                (remaining >= total).then_some((user, remaining - total))
            })
            .collect()
    }

    /// The model: each spend on its own, in batch order, refused when it
    /// exceeds what is left. Each spend's balance after it, and the final balances.
    fn one_by_one(
        mut available: BTreeMap<&'static str, i64>,
        spends: &[(&'static str, i64)],
    ) -> (Vec<Option<i64>>, BTreeMap<&'static str, i64>) {
        let each = spends
            .iter()
            .map(|&(user, amount)| {
                let remaining = available.get_mut(user)?;
                (*remaining >= amount).then(|| {
                    *remaining -= amount;
                    *remaining
                })
            })
            .collect();
        (each, available)
    }

    /// The batch: set-wise for the accounts that cover their total, then the
    /// spends it left one by one, as the writer runs them.
    fn set_wise_then_rest(
        available: BTreeMap<&'static str, i64>,
        spends: &[(&'static str, i64)],
    ) -> (Vec<Option<i64>>, BTreeMap<&'static str, i64>) {
        let totals = totals_per_account(spends.iter().copied());
        let debited = debit(&available, &totals);
        let requests: Vec<Option<(&str, i64)>> = spends.iter().map(|&spend| Some(spend)).collect();
        let mut each =
            figures_after_each(&requests, debited.clone(), |remaining, amount| *remaining += amount);
        let mut balances = available;
        balances.extend(debited);
        let left: Vec<usize> = (0..spends.len()).filter(|&index| each[index].is_none()).collect();
        for index in left {
            let (user, amount) = spends[index];
            let Some(remaining) = balances.get_mut(user) else { continue };
            if *remaining >= amount {
                *remaining -= amount;
                each[index] = Some(*remaining);
            }
        }
        (each, balances)
    }

    #[test]
    fn totals_add_up_per_account_in_user_order() {
        let totals = totals_per_account([("bob", 3), ("ann", 2), ("bob", 4), ("cy", 1)]);
        assert_eq!(totals, [("ann", 2), ("bob", 7), ("cy", 1)]);
        assert!(totals_per_account([]).is_empty());
    }

    #[test]
    fn each_spend_sees_the_balance_it_would_have_left_alone() {
        // ann had 100 and spends 3 then 4; bob was not debited.
        let requests = [Some(("ann", 3)), Some(("bob", 5)), None, Some(("ann", 4))];
        let after = BTreeMap::from([("ann", 93)]);
        let each = figures_after_each(&requests, after, |remaining, amount| *remaining += amount);
        assert_eq!(each, [Some(97), None, None, Some(93)]);
    }

    #[test]
    fn an_account_short_of_its_total_is_left_whole_to_run_one_by_one() {
        let available = BTreeMap::from([("ann", 10), ("bob", 10)]);
        let spends = [("ann", 6), ("bob", 4), ("ann", 6), ("bob", 6)];
        let debited = debit(&available, &totals_per_account(spends));
        assert_eq!(debited, BTreeMap::from([("bob", 0)]), "ann's 12 exceed her 10");
        let (each, balances) = set_wise_then_rest(available.clone(), &spends);
        assert_eq!(each, [Some(4), Some(6), None, Some(0)]);
        assert_eq!((each, balances), one_by_one(available, &spends));
    }

    fn batches() -> impl Strategy<Value = (BTreeMap<&'static str, i64>, Vec<(&'static str, i64)>)> {
        let available = proptest::collection::vec(0..60_i64, USERS.len())
            .prop_map(|balances| USERS.into_iter().zip(balances).collect::<BTreeMap<_, _>>());
        let spends = proptest::collection::vec((0..USERS.len(), 1..25_i64), 0..40)
            .prop_map(|spends| spends.into_iter().map(|(user, amount)| (USERS[user], amount)).collect());
        (available, spends)
    }

    proptest! {
        #[test]
        fn a_batch_ends_as_its_spends_one_at_a_time((available, spends) in batches()) {
            prop_assert_eq!(set_wise_then_rest(available.clone(), &spends), one_by_one(available, &spends));
        }

        #[test]
        fn an_account_that_covers_its_total_has_every_spend_applied_set_wise(
            (available, spends) in batches()
        ) {
            let totals = totals_per_account(spends.iter().copied());
            let debited = debit(&available, &totals);
            let requests: Vec<Option<(&str, i64)>> = spends.iter().map(|&spend| Some(spend)).collect();
            let each = figures_after_each(&requests, debited.clone(), |remaining, amount| *remaining += amount);
            for (index, &(user, amount)) in spends.iter().enumerate() {
                prop_assert_eq!(each[index].is_some(), debited.contains_key(user));
                if let Some(after) = each[index] {
                    prop_assert!(after >= 0 && after + amount <= available[user]);
                }
            }
            for (user, total) in totals {
                prop_assert_eq!(debited.get(user).copied(), (available[user] >= total).then(|| available[user] - total));
            }
        }
    }
}
