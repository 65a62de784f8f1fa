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

use super::grants::{draw_grants, spend_draw_sql, Draw};
use super::rules::{Delta, EntryKind};
use super::sql::{cached, per_user, statement_cell, table, totals_json, totals_per_account, StatementCell};
use crate::exec::{Exec, ReadRow};
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
    draw_grants(conn, spend_draw_sql(postgres), Delta::spend, now, &rows).await?;

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
