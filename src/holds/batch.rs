//! Many hold creations and full captures in a few statements, as
//! `ledger::batch` does for spends. A group-commit batch made only of plain
//! hold requests (no Idempotency-Key; a creation, or a capture of the whole
//! hold) is applied as if its creations ran first, one at a time in batch
//! order, then its captures: every request of the batch was waiting for the
//! batch's commit, so any order of them is one that could have happened.
//!
//! The rules stay those of `holds::create` and `holds::resolve`:
//! - creations debit each account once by their total for it, in one
//!   conditional UPDATE (active, no due grant, `remaining` covers the total);
//!   an account that cannot cover them all is left untouched here;
//! - a capture wins only an open, unexpired hold (`status = 'open' AND
//!   expires_at > now` in the UPDATE that resolves it), so a hold resolves
//!   exactly once however many requests race; a hold named twice in one batch
//!   goes set-wise once;
//! - a user's capture wins only a hold that user made on its own account
//!   (`holds::resolver_allowed_sql`, in the same UPDATE);
//! - each creation and capture gets its own ledger entry with the balance it
//!   left, and its own grant draws (a capture moves exactly what its hold drew
//!   from each grant from `held` to `used`).
//!
//! What is not applied here (an account short of credits, a grant due, a hold
//! already resolved, expired or unknown) runs afterwards one request at a time
//! in the same transaction, and so gets the usual answer or refusal.

use super::{Hold, MadeBy, Resolver};
use crate::exec::{Exec, ReadRow};
use crate::ledger::batch::{entries_sql, figures_after_each, lock_accounts};
use crate::ledger::grants::{draw_grants, hold_draw_sql, Draw};
use crate::ledger::sql::{cached, statement_cell, table, totals_json, totals_per_account, StatementCell};
use crate::ledger::{Delta, EntryKind, Figures};
use serde_json::json;
use std::collections::{HashMap, HashSet};

/// One plain hold request of a batch.
#[derive(Debug, Clone, Copy)]
pub enum HoldOp<'a> {
    Create {
        user_id: &'a str,
        amount: i64,
        expires_at_ms: i64,
        reason: Option<&'a str>,
        actor: &'a str,
        /// The worker key acting, if any: it must still be active.
        api_key: Option<&'a str>,
        made_by: MadeBy,
    },
    /// Capture all of `hold_id`, whose owner is `user_id`.
    Capture {
        hold_id: &'a str,
        user_id: &'a str,
        actor: &'a str,
        api_key: Option<&'a str>,
        resolver: Resolver<'a>,
    },
}

impl<'a> HoldOp<'a> {
    fn user_id(&self) -> &str {
        match self {
            HoldOp::Create { user_id, .. } | HoldOp::Capture { user_id, .. } => user_id,
        }
    }

    fn actor(&self) -> &'a str {
        match *self {
            HoldOp::Create { actor, .. } | HoldOp::Capture { actor, .. } => actor,
        }
    }

    fn api_key(&self) -> Option<&'a str> {
        match *self {
            HoldOp::Create { api_key, .. } | HoldOp::Capture { api_key, .. } => api_key,
        }
    }
}

/// Applies what it can: at each op's index, the hold as it now is and the
/// account's figures right after that op, or `None` when the op must run on
/// its own afterwards.
pub async fn apply<C: Exec>(
    conn: &mut C,
    ops: &[HoldOp<'_>],
    postgres: bool,
) -> Result<Vec<Option<(Hold, Figures)>>, sqlx::Error> {
    let now = crate::db::now_ms();
    let mut out: Vec<Option<(Hold, Figures)>> = vec![None; ops.len()];

    // 0. The worker keys acting, confirmed active in this transaction (one
    //    read for the batch); an op whose key was revoked is left to run on
    //    its own, where it is refused.
    let active = active_keys(conn, ops, postgres).await?;
    let allowed: Vec<bool> = ops.iter().map(|op| op.api_key().is_none_or(|id| active.contains(id))).collect();

    // 1. The holds to capture, each open and unexpired one resolved once.
    //    This comes first, as in `holds::resolve` (the hold, then its
    //    account), so a batch and a lone capture of the same hold on
    //    PostgreSQL take their locks in the same order.
    let captures = captures_to_try(ops, &allowed);
    let won = capture_holds(conn, &captures, now, postgres).await?;
    if postgres {
        let users = totals_per_account(ops.iter().map(|op| (op.user_id(), 0)));
        lock_accounts(conn, &totals_json(&users)).await?;
    }

    // 2. Creations: each account debited once by its total, if it covers it.
    apply_creations(conn, ops, &allowed, now, postgres, &mut out).await?;
    // 3. Captures: each account's held credits moved to used by its total.
    apply_captures(conn, &captures, &won, now, postgres, &mut out).await?;

    // 4. One entry per applied op: holds first, then captures, in batch order.
    let applied = |create: bool| -> Vec<usize> {
        (0..ops.len())
            .filter(|&index| out[index].is_some() && matches!(ops[index], HoldOp::Create { .. }) == create)
            .collect()
    };
    let (create_indexes, capture_indexes) = (applied(true), applied(false));
    if create_indexes.is_empty() && capture_indexes.is_empty() {
        return Ok(out);
    }
    let order: Vec<usize> = create_indexes.iter().chain(&capture_indexes).copied().collect();
    let entry_ids = insert_entries(conn, ops, &out, &order, now, postgres).await?;

    // 5. Grants of the creations: where an account's first live grant covers
    //    its total, it holds all of them there; other holds draw one by one.
    record_creations(conn, ops, &mut out, &create_indexes, &entry_ids, now, postgres).await?;
    // 6. Grants of the captures: what each hold drew moves from held to used,
    //    and the capture entry records the same draws.
    move_captured_draws(conn, &out, &capture_indexes, &entry_ids, postgres).await?;

    // 7. What each entry causes besides: notices, metrics, the trace.
    for &index in &order {
        let (hold, figures) = out[index].as_ref().expect("applied");
        after_entry(conn, &ops[index], hold, figures, now).await?;
    }
    Ok(out)
}

/// Step 0: which of the worker keys the ops name are still active.
async fn active_keys<C: Exec>(
    conn: &mut C,
    ops: &[HoldOp<'_>],
    postgres: bool,
) -> Result<HashSet<String>, sqlx::Error> {
    let keys: Vec<serde_json::Value> = ops
        .iter()
        .filter_map(HoldOp::api_key)
        .collect::<HashSet<_>>()
        .into_iter()
        .map(|id| json!({"id": id}))
        .collect();
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    conn.fetch_all(active_keys_sql(postgres), vec![serde_json::Value::from(keys).to_string().into()])
        .await?
        .iter()
        .map(|row| row.read(0))
        .collect()
}

/// The captures the batch tries set-wise, as `(index, hold id, resolving
/// user)`: each allowed capture whose hold no earlier op of the batch named
/// (a hold named twice goes set-wise once; the other capture runs alone).
fn captures_to_try<'a>(ops: &[HoldOp<'a>], allowed: &[bool]) -> Vec<(usize, &'a str, Option<&'a str>)> {
    let mut named = HashSet::new();
    ops.iter()
        .enumerate()
        .filter_map(|(index, op)| match *op {
            HoldOp::Capture { hold_id, resolver, .. } if allowed[index] && named.insert(hold_id) => {
                Some((index, hold_id, resolver.user()))
            }
            _ => None,
        })
        .collect()
}

/// Step 1: resolves the holds of `captures` that are open, unexpired and
/// theirs to capture, by id.
async fn capture_holds<C: Exec>(
    conn: &mut C,
    captures: &[(usize, &str, Option<&str>)],
    now: i64,
    postgres: bool,
) -> Result<HashMap<String, Hold>, sqlx::Error> {
    if captures.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<serde_json::Value> =
        captures.iter().map(|(_, id, user)| json!({"hold_id": id, "user_id": user})).collect();
    conn.fetch_all(capture_sql(postgres), vec![now.into(), serde_json::Value::from(rows).to_string().into()])
        .await?
        .iter()
        .map(|row| super::hold_from_row(row).map(|hold| (hold.id.clone(), hold)))
        .collect()
}

/// Each allowed creation's account and amount, at its index (`None` for
/// every other op).
fn creation_requests<'a>(ops: &[HoldOp<'a>], allowed: &[bool]) -> Vec<Option<(&'a str, i64)>> {
    ops.iter()
        .zip(allowed)
        .map(|(op, &allowed)| match *op {
            HoldOp::Create { user_id, amount, .. } if allowed => Some((user_id, amount)),
            _ => None,
        })
        .collect()
}

/// Takes one hold's amount back off the figures it left: held to remaining.
fn undo_hold(figures: &mut Figures, amount: i64) {
    figures.remaining += amount;
    figures.held -= amount;
}

/// Takes one capture back off the figures it left: used to held.
fn undo_capture(figures: &mut Figures, captured: i64) {
    figures.held += captured;
    figures.used -= captured;
}

/// Step 2: debits each account by its creations' total where it covers it,
/// and puts each of those creations' new hold and figures in `out`.
async fn apply_creations<C: Exec>(
    conn: &mut C,
    ops: &[HoldOp<'_>],
    allowed: &[bool],
    now: i64,
    postgres: bool,
    out: &mut [Option<(Hold, Figures)>],
) -> Result<(), sqlx::Error> {
    let requests = creation_requests(ops, allowed);
    let totals = totals_per_account(requests.iter().flatten().copied());
    if totals.is_empty() {
        return Ok(());
    }
    let after = figures_per_user(conn, create_debit_sql(postgres), now, &totals_json(&totals)).await?;
    let after = after.iter().map(|(user, figures)| (user.as_str(), *figures)).collect();
    for (index, figures) in figures_after_each(&requests, after, undo_hold).into_iter().enumerate() {
        let (Some(figures), HoldOp::Create { user_id, amount, expires_at_ms, reason, made_by, .. }) =
            (figures, ops[index])
        else {
            continue;
        };
        let hold = Hold {
            id: super::new_id(),
            user_id: user_id.to_string(),
            amount,
            captured: 0,
            status: super::HoldStatus::Open,
            reason: reason.map(str::to_string),
            created_at_ms: now,
            expires_at_ms,
            resolved_at_ms: None,
            entry_id: None,
            made_by,
        };
        out[index] = Some((hold, figures));
    }
    Ok(())
}

/// Step 3: moves each account's captured total from held to used, and puts
/// each won capture's hold and figures in `out`.
async fn apply_captures<C: Exec>(
    conn: &mut C,
    captures: &[(usize, &str, Option<&str>)],
    won: &HashMap<String, Hold>,
    now: i64,
    postgres: bool,
    out: &mut [Option<(Hold, Figures)>],
) -> Result<(), sqlx::Error> {
    if won.is_empty() {
        return Ok(());
    }
    let requests: Vec<Option<(&str, i64)>> = captures
        .iter()
        .map(|(_, hold_id, _)| won.get(*hold_id).map(|hold| (hold.user_id.as_str(), hold.captured)))
        .collect();
    let totals = totals_per_account(requests.iter().flatten().copied());
    let after = figures_per_user(conn, capture_move_sql(postgres), now, &totals_json(&totals)).await?;
    let after = after.iter().map(|(user, figures)| (user.as_str(), *figures)).collect();
    let each = figures_after_each(&requests, after, undo_capture);
    for (&(index, hold_id, _), figures) in captures.iter().zip(each) {
        let Some(hold) = won.get(hold_id) else { continue };
        let figures = figures.ok_or_else(|| {
            sqlx::Error::Protocol(format!("the account of captured hold {hold_id} was not updated"))
        })?;
        out[index] = Some((hold.clone(), figures));
    }
    Ok(())
}

/// The ledger entry an applied op writes: its kind and change.
fn entry_of_op(op: &HoldOp<'_>, hold: &Hold) -> (EntryKind, Delta) {
    match op {
        HoldOp::Create { .. } => (EntryKind::Hold, Delta::hold(hold.amount)),
        HoldOp::Capture { .. } => (EntryKind::Capture, Delta::capture(hold.captured)),
    }
}

/// Step 4: one entry per applied op, in `order`; returns each entry's id by
/// its reference (`hold:<id>`). Within one statement each reference is one
/// hold's: a hold created here cannot also be captured here (nobody knows
/// its id yet).
async fn insert_entries<C: Exec>(
    conn: &mut C,
    ops: &[HoldOp<'_>],
    out: &[Option<(Hold, Figures)>],
    order: &[usize],
    now: i64,
    postgres: bool,
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let rows: Vec<serde_json::Value> = order
        .iter()
        .map(|&index| {
            let (hold, figures) = out[index].as_ref().expect("applied");
            let (kind, delta) = entry_of_op(&ops[index], hold);
            let kind = if kind == EntryKind::Hold { "hold" } else { "capture" };
            json!({"user_id": hold.user_id, "kind": kind, "amount": delta.remaining, "held": delta.held,
                   "used": delta.used, "balance_after": figures.remaining, "reason": hold.reason,
                   "reference": format!("hold:{}", hold.id), "actor": ops[index].actor()})
        })
        .collect();
    conn.fetch_all(entries_sql(postgres), vec![now.into(), serde_json::Value::from(rows).to_string().into()])
        .await?
        .iter()
        .map(|row| Ok((row.read::<String>(3)?, row.read::<i64>(0)?)))
        .collect()
}

/// The id of the entry that `insert_entries` wrote for this hold.
fn entry_id_of(entry_ids: &HashMap<String, i64>, hold: &Hold) -> Result<i64, sqlx::Error> {
    entry_ids
        .get(&format!("hold:{}", hold.id))
        .copied()
        .ok_or_else(|| sqlx::Error::Protocol("a batched hold entry has no id".into()))
}

/// Step 5: the creations' grant draws, then their rows in `holds`, each
/// with its entry's id.
async fn record_creations<C: Exec>(
    conn: &mut C,
    ops: &[HoldOp<'_>],
    out: &mut [Option<(Hold, Figures)>],
    create_indexes: &[usize],
    entry_ids: &HashMap<String, i64>,
    now: i64,
    postgres: bool,
) -> Result<(), sqlx::Error> {
    if create_indexes.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::with_capacity(create_indexes.len());
    for &index in create_indexes {
        let (hold, figures) = out[index].as_mut().expect("applied");
        let entry_id = entry_id_of(entry_ids, hold)?;
        hold.entry_id = Some(entry_id);
        rows.push(Draw {
            user_id: ops[index].user_id(),
            entry_id,
            amount: hold.amount,
            balance_after: figures.remaining,
        });
    }
    draw_grants(conn, hold_draw_sql(postgres), Delta::hold, now, &rows).await?;
    let holds: Vec<serde_json::Value> = create_indexes
        .iter()
        .map(|&index| {
            let (hold, _) = out[index].as_ref().expect("applied");
            json!({"id": hold.id, "user_id": hold.user_id, "amount": hold.amount, "reason": hold.reason,
                   "actor": ops[index].actor(), "expires_at": hold.expires_at_ms, "entry_id": hold.entry_id,
                   "made_by": hold.made_by.as_str()})
        })
        .collect();
    conn.execute(
        insert_holds_sql(postgres),
        vec![now.into(), serde_json::Value::from(holds).to_string().into()],
    )
    .await?;
    Ok(())
}

/// Step 6: what each captured hold drew moves from held to used in its
/// grants, and its capture entry records the same draws.
async fn move_captured_draws<C: Exec>(
    conn: &mut C,
    out: &[Option<(Hold, Figures)>],
    capture_indexes: &[usize],
    entry_ids: &HashMap<String, i64>,
    postgres: bool,
) -> Result<(), sqlx::Error> {
    let moves: Vec<serde_json::Value> = capture_indexes
        .iter()
        .filter_map(|&index| {
            let (hold, _) = out[index].as_ref().expect("applied");
            let hold_entry = hold.entry_id?;
            Some(
                entry_id_of(entry_ids, hold)
                    .map(|capture| json!({"hold_entry": hold_entry, "capture_entry": capture})),
            )
        })
        .collect::<Result<_, _>>()?;
    if moves.is_empty() {
        return Ok(());
    }
    let moves = serde_json::Value::from(moves).to_string();
    crate::ledger::grants::move_captured(conn, &moves, postgres).await
}

/// Step 7: what one applied op's entry causes besides: notices, metrics, the trace.
async fn after_entry<C: Exec>(
    conn: &mut C,
    op: &HoldOp<'_>,
    hold: &Hold,
    figures: &Figures,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (kind, delta) = entry_of_op(op, hold);
    let span = tracing::info_span!("ledger.apply", user_id = %hold.user_id, kind = ?kind,
        amount = delta.remaining, held = delta.held, used = delta.used, actor = op.actor(), batched = true);
    let _entered = span.enter();
    crate::ledger::alerts::on_entry(conn, &hold.user_id, &delta, figures.remaining, now).await?;
    crate::ledger::store::record_metrics(kind, &delta);
    if kind == EntryKind::Hold {
        metrics::counter!("credits_held_total").increment(hold.amount as u64);
    } else {
        metrics::counter!("credits_spent_total").increment(hold.captured as u64);
        tracing::info!(hold_id = %hold.id, user_id = %hold.user_id, status = "captured",
            captured = hold.captured, released = 0, "hold resolved");
    }
    Ok(())
}

const FIGURES: &str =
    "accounts.user_id, accounts.remaining, accounts.held, accounts.used, accounts.initial, \
     accounts.bonus, accounts.adjustments, accounts.total";

/// Runs a statement (`$1` the time, `$2` the totals) that returns each
/// changed account's figures (`FIGURES`).
async fn figures_per_user<C: Exec>(
    conn: &mut C,
    sql: &str,
    now: i64,
    totals: &str,
) -> Result<HashMap<String, Figures>, sqlx::Error> {
    conn.fetch_all(sql, vec![now.into(), totals.into()])
        .await?
        .iter()
        .map(|row| {
            let figures = Figures {
                remaining: row.read(1)?,
                held: row.read(2)?,
                used: row.read(3)?,
                initial: row.read(4)?,
                bonus: row.read(5)?,
                adjustments: row.read(6)?,
                total: row.read(7)?,
            };
            Ok((row.read::<String>(0)?, figures))
        })
        .collect()
}

/// Step 2: `remaining` to `held` for every account that covers its total; `$1` the time, `$2` the totals.
fn create_debit_sql(postgres: bool) -> &'static str {
    static CELL: StatementCell = statement_cell();
    cached(
        postgres,
        |postgres| {
            format!(
                "UPDATE accounts SET remaining = remaining - d.total, held = held + d.total, updated_at = $1 \
                 FROM ({totals}) AS d \
                 WHERE accounts.user_id = d.user_id AND accounts.status = 'active' \
                 AND accounts.remaining >= d.total AND NOT {due} RETURNING {FIGURES}",
                totals = table(postgres, "$2", &[("user_id", "text"), ("total", "bigint")]),
                due = crate::ledger::grants::due_exists("accounts.user_id", "$1"),
            )
        },
        &CELL,
    )
}

/// Step 0: the ids in `$1` of keys that are active.
fn active_keys_sql(postgres: bool) -> &'static str {
    static CELL: StatementCell = statement_cell();
    cached(
        postgres,
        |postgres| {
            format!(
                "SELECT api_keys.id FROM api_keys JOIN ({keys}) AS k ON api_keys.id = k.id \
                 WHERE api_keys.revoked_at IS NULL",
                keys = table(postgres, "$1", &[("id", "text")]),
            )
        },
        &CELL,
    )
}

/// Step 1: resolves the open, unexpired holds named in `$2` as captured in
/// full at `$1`, each only for a resolver its maker allows.
fn capture_sql(postgres: bool) -> &'static str {
    static CELL: StatementCell = statement_cell();
    cached(
        postgres,
        |postgres| {
            format!(
                "UPDATE holds SET status = 'captured', captured = amount, resolved_at = $1 \
                 FROM ({rows}) AS r \
                 WHERE holds.id = r.hold_id AND holds.status = 'open' AND holds.expires_at > $1 \
                 AND {allowed} RETURNING {columns}",
                rows = table(postgres, "$2", &[("hold_id", "text"), ("user_id", "text")]),
                allowed = super::resolver_allowed_sql("holds", "r.user_id"),
                columns = super::HOLD_COLUMNS
                    .split(", ")
                    .map(|c| format!("holds.{c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        },
        &CELL,
    )
}

/// Step 3: `held` to `used` by each account's captured total; `$1` the time, `$2` the totals.
fn capture_move_sql(postgres: bool) -> &'static str {
    static CELL: StatementCell = statement_cell();
    cached(
        postgres,
        |postgres| {
            format!(
                "UPDATE accounts SET held = held - d.total, used = used + d.total, updated_at = $1 \
                 FROM ({totals}) AS d WHERE accounts.user_id = d.user_id RETURNING {FIGURES}",
                totals = table(postgres, "$2", &[("user_id", "text"), ("total", "bigint")]),
            )
        },
        &CELL,
    )
}

/// Step 5: the new holds; `$1` the time, `$2` the rows.
fn insert_holds_sql(postgres: bool) -> &'static str {
    static CELL: StatementCell = statement_cell();
    cached(
        postgres,
        |postgres| {
            format!(
                "INSERT INTO holds (id, user_id, amount, status, reason, actor, created_at, expires_at, entry_id, \
                 made_by) SELECT r.id, r.user_id, r.amount, 'open', r.reason, r.actor, $1, r.expires_at, \
                 r.entry_id, r.made_by FROM ({rows}) AS r",
                rows = table(
                    postgres,
                    "$2",
                    &[
                        ("id", "text"),
                        ("user_id", "text"),
                        ("amount", "bigint"),
                        ("reason", "text"),
                        ("actor", "text"),
                        ("expires_at", "bigint"),
                        ("entry_id", "bigint"),
                        ("made_by", "text"),
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
    use std::collections::BTreeMap;

    const USERS: [&str; 3] = ["ann", "bob", "cy"];
    const HOLDS: [&str; 4] = ["hold_a", "hold_b", "hold_c", "hold_d"];

    fn create(user_id: &str, amount: i64) -> HoldOp<'_> {
        HoldOp::Create {
            user_id,
            amount,
            expires_at_ms: 0,
            reason: None,
            actor: "t",
            api_key: None,
            made_by: MadeBy::User,
        }
    }

    fn capture<'a>(hold_id: &'a str, user_id: &'a str) -> HoldOp<'a> {
        HoldOp::Capture { hold_id, user_id, actor: "t", api_key: None, resolver: Resolver::Privileged }
    }

    fn figures(remaining: i64, held: i64, used: i64) -> Figures {
        Figures { remaining, held, used, ..Figures::default() }
    }

    /// The model of creations: each on its own, in batch order, refused when
    /// it exceeds `remaining`. Each creation's figures after it, and the final ones.
    fn holds_one_by_one(
        mut accounts: BTreeMap<&'static str, Figures>,
        creations: &[(&'static str, i64)],
    ) -> (Vec<Option<Figures>>, BTreeMap<&'static str, Figures>) {
        let each = creations
            .iter()
            .map(|&(user, amount)| {
                let account = accounts.get_mut(user)?;
                (account.remaining >= amount).then(|| {
                    account.remaining -= amount;
                    account.held += amount;
                    *account
                })
            })
            .collect();
        (each, accounts)
    }

    /// The batch: accounts that cover their creations' total are debited by
    /// it in one go (`create_debit_sql`); the creations it left then run one by one.
    fn holds_set_wise_then_rest(
        mut accounts: BTreeMap<&'static str, Figures>,
        creations: &[(&'static str, i64)],
    ) -> (Vec<Option<Figures>>, BTreeMap<&'static str, Figures>) {
        let ops: Vec<HoldOp<'_>> = creations.iter().map(|&(user, amount)| create(user, amount)).collect();
        let requests = creation_requests(&ops, &vec![true; ops.len()]);
        let mut debited = BTreeMap::new();
        for (user, total) in totals_per_account(requests.iter().flatten().copied()) {
            let account = accounts.get_mut(user).expect("a known account");
            if account.remaining >= total {
                account.remaining -= total;
                account.held += total;
                debited.insert(user, *account);
            }
        }
        let mut each = figures_after_each(&requests, debited, undo_hold);
        let left: Vec<usize> = (0..creations.len()).filter(|&index| each[index].is_none()).collect();
        for index in left {
            let (user, amount) = creations[index];
            let account = accounts.get_mut(user).expect("a known account");
            if account.remaining >= amount {
                account.remaining -= amount;
                account.held += amount;
                each[index] = Some(*account);
            }
        }
        (each, accounts)
    }

    /// The model of captures: each on its own, in batch order; only the first
    /// capture of an open hold wins it, moving its amount from held to used.
    fn captures_one_by_one(
        mut accounts: BTreeMap<&'static str, Figures>,
        holds: &BTreeMap<&'static str, (&'static str, i64)>,
        captures: &[&'static str],
    ) -> (Vec<Option<Figures>>, BTreeMap<&'static str, Figures>) {
        let mut open = holds.clone();
        let each = captures
            .iter()
            .map(|hold_id| {
                let (user, amount) = open.remove(hold_id)?;
                let account = accounts.get_mut(user).expect("a known account");
                account.held -= amount;
                account.used += amount;
                Some(*account)
            })
            .collect();
        (each, accounts)
    }

    /// The batch: each hold named is resolved once (`capture_sql`), each
    /// account's captured total moved at once (`capture_move_sql`); a second
    /// capture of a hold runs alone afterwards and finds it resolved.
    fn captures_set_wise(
        mut accounts: BTreeMap<&'static str, Figures>,
        holds: &BTreeMap<&'static str, (&'static str, i64)>,
        captures: &[&'static str],
    ) -> (Vec<Option<Figures>>, BTreeMap<&'static str, Figures>) {
        let ops: Vec<HoldOp<'_>> =
            captures.iter().map(|&hold_id| capture(hold_id, holds[hold_id].0)).collect();
        let tried = captures_to_try(&ops, &vec![true; ops.len()]);
        let requests: Vec<Option<(&str, i64)>> =
            tried.iter().map(|(_, hold_id, _)| holds.get(hold_id).copied()).collect();
        let mut moved = BTreeMap::new();
        for (user, total) in totals_per_account(requests.iter().flatten().copied()) {
            let account = accounts.get_mut(user).expect("a known account");
            account.held -= total;
            account.used += total;
            moved.insert(user, *account);
        }
        let mut each = vec![None; captures.len()];
        for (&(index, _, _), figures) in tried.iter().zip(figures_after_each(&requests, moved, undo_capture))
        {
            each[index] = figures;
        }
        (each, accounts)
    }

    #[test]
    fn a_hold_named_twice_is_tried_once_and_a_refused_key_not_at_all() {
        let ops = [
            capture("hold_a", "ann"),
            create("ann", 5),
            capture("hold_b", "bob"),
            capture("hold_a", "ann"),
            capture("hold_c", "cy"),
        ];
        let allowed = [true, true, true, true, false];
        let tried: Vec<(usize, &str)> =
            captures_to_try(&ops, &allowed).into_iter().map(|(index, hold, _)| (index, hold)).collect();
        assert_eq!(tried, [(0, "hold_a"), (2, "hold_b")]);
        assert_eq!(creation_requests(&ops, &allowed), [None, Some(("ann", 5)), None, None, None]);
    }

    #[test]
    fn each_creation_sees_the_figures_it_would_have_left_alone() {
        // ann had 50 remaining and holds 20 then 15: 35 held in all.
        let ops = [create("ann", 20), capture("hold_a", "ann"), create("ann", 15)];
        let requests = creation_requests(&ops, &[true; 3]);
        let each = figures_after_each(&requests, BTreeMap::from([("ann", figures(15, 35, 0))]), undo_hold);
        assert_eq!(each, [Some(figures(30, 20, 0)), None, Some(figures(15, 35, 0))]);
    }

    #[test]
    fn each_capture_sees_the_figures_it_would_have_left_alone() {
        // ann held 30 (two holds of 10 and 20), both captured.
        let requests = [Some(("ann", 10)), Some(("ann", 20))];
        let each = figures_after_each(&requests, BTreeMap::from([("ann", figures(0, 0, 30))]), undo_capture);
        assert_eq!(each, [Some(figures(0, 20, 10)), Some(figures(0, 0, 30))]);
    }

    fn accounts() -> impl Strategy<Value = BTreeMap<&'static str, Figures>> {
        proptest::collection::vec((0..60_i64, 0..60_i64), USERS.len()).prop_map(|figures| {
            USERS
                .into_iter()
                .zip(figures)
                .map(|(user, (remaining, held))| (user, self::figures(remaining, held, 0)))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn creations_end_as_if_one_at_a_time(
            accounts in accounts(),
            creations in proptest::collection::vec((0..USERS.len(), 1..25_i64), 0..30),
        ) {
            let creations: Vec<(&str, i64)> =
                creations.into_iter().map(|(user, amount)| (USERS[user], amount)).collect();
            prop_assert_eq!(
                holds_set_wise_then_rest(accounts.clone(), &creations),
                holds_one_by_one(accounts, &creations)
            );
        }

        #[test]
        fn captures_end_as_if_one_at_a_time(
            owners in proptest::collection::vec((0..USERS.len(), 1..20_i64), HOLDS.len()),
            captures in proptest::collection::vec(0..HOLDS.len(), 0..12),
        ) {
            let holds: BTreeMap<&str, (&str, i64)> =
                HOLDS.into_iter().zip(owners).map(|(hold, (user, amount))| (hold, (USERS[user], amount))).collect();
            // Each account holds what its holds reserve.
            let mut accounts: BTreeMap<&str, Figures> =
                USERS.into_iter().map(|user| (user, figures(0, 0, 0))).collect();
            for (user, amount) in holds.values() {
                accounts.get_mut(user).expect("a known account").held += amount;
            }
            let captures: Vec<&str> = captures.into_iter().map(|hold| HOLDS[hold]).collect();
            prop_assert_eq!(
                captures_set_wise(accounts.clone(), &holds, &captures),
                captures_one_by_one(accounts, &holds, &captures)
            );
        }
    }
}
