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
use crate::exec::{Arg, Exec, ReadRow};
use crate::ledger::batch::{
    cached, draw_grants, entries_sql, first_grant_draw_sql, lock_accounts, statement_cell, table,
    totals_json, Draw, StatementCell,
};
use crate::ledger::{Delta, EntryKind, Figures};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};

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
    let keys: Vec<serde_json::Value> = ops
        .iter()
        .filter_map(HoldOp::api_key)
        .collect::<HashSet<_>>()
        .into_iter()
        .map(|id| json!({"id": id}))
        .collect();
    let active: HashSet<String> = if keys.is_empty() {
        HashSet::new()
    } else {
        conn.fetch_all(active_keys_sql(postgres), vec![serde_json::Value::from(keys).to_string().into()])
            .await?
            .iter()
            .map(|row| row.read(0))
            .collect::<Result<_, _>>()?
    };
    let allowed = |op: &HoldOp<'_>| op.api_key().is_none_or(|id| active.contains(id));

    // 1. The holds to capture, each open and unexpired one resolved once.
    //    This comes first, as in `holds::resolve` (the hold, then its
    //    account), so a batch and a lone capture of the same hold on
    //    PostgreSQL take their locks in the same order.
    let mut named = HashSet::new();
    let captures: Vec<(usize, &str, Option<&str>)> = ops
        .iter()
        .enumerate()
        .filter_map(|(index, op)| match op {
            HoldOp::Capture { hold_id, resolver, .. } if allowed(op) && named.insert(*hold_id) => {
                Some((index, *hold_id, resolver.user()))
            }
            _ => None,
        })
        .collect();
    let won: HashMap<String, Hold> = if captures.is_empty() {
        HashMap::new()
    } else {
        let rows: Vec<serde_json::Value> =
            captures.iter().map(|(_, id, user)| json!({"hold_id": id, "user_id": user})).collect();
        conn.fetch_all(
            capture_sql(postgres),
            vec![now.into(), serde_json::Value::from(rows).to_string().into()],
        )
        .await?
        .iter()
        .map(|row| super::hold_from_row(row).map(|hold| (hold.id.clone(), hold)))
        .collect::<Result<_, _>>()?
    };
    if postgres {
        let mut users: Vec<(&str, i64)> = ops.iter().map(|op| (op.user_id(), 0)).collect();
        users.sort_unstable();
        users.dedup();
        lock_accounts(conn, &totals_json(&users)).await?;
    }

    // 2. Creations: each account debited once by its total, if it covers it.
    let mut create_totals: BTreeMap<&str, i64> = BTreeMap::new();
    for op in ops.iter().filter(|op| allowed(op)) {
        if let HoldOp::Create { user_id, amount, .. } = op {
            *create_totals.entry(user_id).or_default() += amount;
        }
    }
    let create_users: Vec<(&str, i64)> = create_totals.into_iter().collect();
    let mut after_creates = if create_users.is_empty() {
        HashMap::new()
    } else {
        figures_per_user(conn, create_debit_sql(postgres), now, &totals_json(&create_users)).await?
    };
    // Walking backwards from each account's figures after all its creations.
    for (index, op) in ops.iter().enumerate().rev() {
        let HoldOp::Create { user_id, amount, expires_at_ms, reason, made_by, .. } = *op else { continue };
        if !allowed(op) {
            continue;
        }
        let Some(figures) = after_creates.get_mut(user_id) else { continue };
        let hold = Hold {
            id: super::new_id(),
            user_id: user_id.to_string(),
            amount,
            captured: 0,
            status: "open".into(),
            reason: reason.map(str::to_string),
            created_at_ms: now,
            expires_at_ms,
            resolved_at_ms: None,
            entry_id: None,
            made_by,
        };
        out[index] = Some((hold, *figures));
        figures.remaining += amount;
        figures.held -= amount;
    }

    // 3. Captures: each account's held credits moved to used by its total.
    if !won.is_empty() {
        let mut capture_totals: BTreeMap<&str, i64> = BTreeMap::new();
        for hold in won.values() {
            *capture_totals.entry(hold.user_id.as_str()).or_default() += hold.captured;
        }
        let users: Vec<(&str, i64)> = capture_totals.into_iter().collect();
        let mut after = if users.is_empty() {
            HashMap::new()
        } else {
            figures_per_user(conn, capture_move_sql(postgres), now, &totals_json(&users)).await?
        };
        for &(index, hold_id, _) in captures.iter().rev() {
            let Some(hold) = won.get(hold_id) else { continue };
            let figures = after.get_mut(hold.user_id.as_str()).ok_or_else(|| {
                sqlx::Error::Protocol(format!("the account of captured hold {hold_id} was not updated"))
            })?;
            out[index] = Some((hold.clone(), *figures));
            figures.held += hold.captured;
            figures.used -= hold.captured;
        }
    }

    // 4. One entry per applied op: holds first, then captures, in batch order.
    let creates =
        || out.iter().enumerate().filter(|(i, a)| a.is_some() && matches!(ops[*i], HoldOp::Create { .. }));
    let captured =
        || out.iter().enumerate().filter(|(i, a)| a.is_some() && matches!(ops[*i], HoldOp::Capture { .. }));
    let mut rows = Vec::new();
    for (index, applied) in creates().chain(captured()) {
        let (hold, figures) = applied.as_ref().expect("applied");
        let (kind, delta) = match ops[index] {
            HoldOp::Create { .. } => ("hold", Delta::hold(hold.amount)),
            HoldOp::Capture { .. } => ("capture", Delta::capture(hold.captured)),
        };
        rows.push(
            json!({"user_id": hold.user_id, "kind": kind, "amount": delta.remaining, "held": delta.held,
            "used": delta.used, "balance_after": figures.remaining, "reason": hold.reason,
            "reference": format!("hold:{}", hold.id), "actor": ops[index].actor()}),
        );
    }
    if rows.is_empty() {
        return Ok(out);
    }
    // Within one statement each reference is one hold's: a hold created
    // here cannot also be captured here (nobody knows its id yet).
    let entry_ids: HashMap<String, i64> = conn
        .fetch_all(entries_sql(postgres), vec![now.into(), serde_json::Value::from(rows).to_string().into()])
        .await?
        .iter()
        .map(|row| Ok((row.read::<String>(3)?, row.read::<i64>(0)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let entry_of = |hold: &Hold| {
        entry_ids
            .get(&format!("hold:{}", hold.id))
            .copied()
            .ok_or_else(|| sqlx::Error::Protocol("a batched hold entry has no id".into()))
    };

    // 5. Grants of the creations: where an account's first live grant covers
    //    its total, it holds all of them there; other holds draw one by one.
    let create_indexes: Vec<usize> = creates().map(|(index, _)| index).collect();
    let capture_indexes: Vec<usize> = captured().map(|(index, _)| index).collect();
    if !create_indexes.is_empty() {
        let mut rows = Vec::with_capacity(create_indexes.len());
        for &index in &create_indexes {
            let (hold, figures) = out[index].as_mut().expect("applied");
            let entry_id = entry_of(hold)?;
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
    }

    // 6. Grants of the captures: what each hold drew moves from held to used,
    //    and the capture entry records the same draws.
    let moves: Vec<serde_json::Value> = capture_indexes
        .iter()
        .filter_map(|&index| {
            let (hold, _) = out[index].as_ref().expect("applied");
            let hold_entry = hold.entry_id?;
            Some(entry_of(hold).map(|capture| json!({"hold_entry": hold_entry, "capture_entry": capture})))
        })
        .collect::<Result<_, _>>()?;
    if !moves.is_empty() {
        let moves = serde_json::Value::from(moves).to_string();
        conn.execute(capture_grants_sql(postgres), vec![Arg::from(moves.as_str())]).await?;
        conn.execute(capture_draws_sql(postgres), vec![Arg::from(moves)]).await?;
    }

    // 7. What each entry causes besides: notices, metrics, the trace.
    for &index in create_indexes.iter().chain(&capture_indexes) {
        let (hold, figures) = out[index].as_ref().expect("applied");
        let (kind, delta) = match ops[index] {
            HoldOp::Create { .. } => (EntryKind::Hold, Delta::hold(hold.amount)),
            HoldOp::Capture { .. } => (EntryKind::Capture, Delta::capture(hold.captured)),
        };
        let span = tracing::info_span!("ledger.apply", user_id = %hold.user_id, kind = ?kind,
            amount = delta.remaining, held = delta.held, used = delta.used, actor = ops[index].actor(),
            batched = true);
        let _entered = span.enter();
        crate::alerts::on_entry(conn, &hold.user_id, &delta, figures.remaining, now).await?;
        crate::ledger::store::record_metrics(kind, &delta);
        if kind == EntryKind::Hold {
            metrics::counter!("credits_held_total").increment(hold.amount as u64);
        } else {
            metrics::counter!("credits_spent_total").increment(hold.captured as u64);
            tracing::info!(hold_id = %hold.id, user_id = %hold.user_id, status = "captured",
                captured = hold.captured, released = 0, "hold resolved");
        }
    }
    Ok(out)
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
                due = crate::grants::due_exists("accounts.user_id", "$1"),
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

/// Step 5: holds each account's total in its first live grant where that
/// grant covers it; `$1` the time, `$2` the totals.
fn hold_draw_sql(postgres: bool) -> &'static str {
    static CELL: StatementCell = statement_cell();
    cached(postgres, |postgres| first_grant_draw_sql(postgres, "held"), &CELL)
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

const MOVES: [(&str, &str); 2] = [("hold_entry", "bigint"), ("capture_entry", "bigint")];

/// Step 6: the (hold entry, capture entry) rows of `$1` as `r`, each with
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

/// Step 6: what the captured holds drew, from `held` to `used`; `$1` the (hold entry, capture entry) rows.
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

/// Step 6: each capture entry draws what its hold drew.
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
