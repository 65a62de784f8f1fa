//! `credits check`: recomputes every account from its ledger.
//!
//! The database's constraints already refuse an unbalanced row or account; this
//! check catches what constraints cannot see: an account whose figures differ
//! from the sum of its entries, and a `balance_after` chain that does not add up.

use super::rules::Figures;
use serde::Serialize;
use sqlx::{AnyPool, Row};

/// One discrepancy, machine-readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Discrepancy {
    pub user_id: String,
    pub problem: String,
    pub account: Option<Figures>,
    pub ledger: Option<Figures>,
    pub entry_id: Option<i64>,
}

/// The whole report; `ok` is true only when `discrepancies` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub ok: bool,
    pub accounts_checked: i64,
    pub entries_checked: i64,
    pub discrepancies: Vec<Discrepancy>,
}

const SUMS_SQL: &str = "SELECT a.user_id, a.remaining, a.held, a.used, a.initial, a.bonus, \
     a.adjustments, a.total, \
     CAST(COALESCE(s.remaining, 0) AS BIGINT) AS s_remaining, \
     CAST(COALESCE(s.held, 0) AS BIGINT) AS s_held, \
     CAST(COALESCE(s.used, 0) AS BIGINT) AS s_used, \
     CAST(COALESCE(s.initial, 0) AS BIGINT) AS s_initial, \
     CAST(COALESCE(s.bonus, 0) AS BIGINT) AS s_bonus, \
     CAST(COALESCE(s.adjustments, 0) AS BIGINT) AS s_adjustments, \
     CAST(COALESCE(s.entries, 0) AS BIGINT) AS s_entries, \
     (SELECT e.balance_after FROM ledger_entries e WHERE e.user_id = a.user_id \
      ORDER BY e.id DESC LIMIT 1) AS last_balance \
     FROM accounts a LEFT JOIN (SELECT user_id, SUM(amount) AS remaining, \
     SUM(held_delta) AS held, SUM(used_delta) AS used, SUM(initial_delta) AS initial, \
     SUM(bonus_delta) AS bonus, SUM(adjust_delta) AS adjustments, COUNT(*) AS entries \
     FROM ledger_entries GROUP BY user_id) s ON s.user_id = a.user_id ORDER BY a.user_id";

/// Entries whose `balance_after` is not the previous one plus their amount.
const CHAIN_SQL: &str = "SELECT id, user_id FROM (SELECT id, user_id, amount, balance_after, \
     LAG(balance_after) OVER (PARTITION BY user_id ORDER BY id) AS previous \
     FROM ledger_entries) chain \
     WHERE balance_after <> COALESCE(previous, 0) + amount ORDER BY id";

/// Checks across tables; each query returns the offending `user_id` and `entry_id`.
const CROSS_CHECKS: [(&str, &str); 8] = [
    (
        "SELECT a.user_id, CAST(NULL AS BIGINT) AS entry_id FROM accounts a \
         LEFT JOIN (SELECT user_id, SUM(remaining) AS rest, SUM(held) AS held FROM grants \
         WHERE status IN ('active', 'expired', 'voided') GROUP BY user_id) g ON g.user_id = a.user_id \
         WHERE COALESCE(g.rest, 0) <> CASE WHEN a.remaining > 0 THEN a.remaining ELSE 0 END \
         OR COALESCE(g.held, 0) <> a.held",
        "grant remainders differ from remaining + held",
    ),
    (
        "SELECT user_id, CAST(NULL AS BIGINT) AS entry_id FROM grants WHERE status IN ('expired', 'voided') AND remaining > 0",
        "an expired or voided grant still has a remainder",
    ),
    (
        "SELECT e.user_id, e.id AS entry_id FROM grant_draws d JOIN ledger_entries e ON e.id = d.entry_id \
         JOIN grants g ON g.id = d.grant_id WHERE e.kind IN ('spend', 'hold') \
         AND (e.created_at < g.effective_at OR (g.expires_at IS NOT NULL AND e.created_at >= g.expires_at))",
        "a spend or hold drew from a grant that was not live",
    ),
    (
        "SELECT p.user_id, p.grant_entry_id AS entry_id FROM payments p          LEFT JOIN ledger_entries e ON e.id = p.grant_entry_id          WHERE p.status = 'credited' AND (e.id IS NULL OR e.kind <> 'purchase' OR e.user_id <> p.user_id)",
        "a credited payment has no purchase entry of its user",
    ),
    (
        "SELECT e.user_id, e.id AS entry_id FROM ledger_entries e          LEFT JOIN payments p ON p.grant_entry_id = e.id WHERE e.kind = 'purchase' AND p.id IS NULL",
        "a purchase entry belongs to no payment",
    ),
    (
        "SELECT a.user_id, CAST(NULL AS BIGINT) AS entry_id FROM accounts a          LEFT JOIN (SELECT user_id, SUM(amount) AS open_amount FROM holds WHERE status = 'open' GROUP BY user_id) h          ON h.user_id = a.user_id WHERE a.held <> COALESCE(h.open_amount, 0)",
        "held differs from the sum of open holds",
    ),
    (
        "SELECT user_id, id AS entry_id FROM ledger_entries WHERE kind IN ('spend', 'hold') AND balance_after < 0",
        "a spend or hold went beyond the balance",
    ),
    (
        "SELECT p.user_id, CAST(NULL AS BIGINT) AS entry_id FROM payments p          WHERE p.status = 'credited' AND p.grant_entry_id IS NULL",
        "a credited payment has no grant",
    ),
];

fn figures(row: &sqlx::any::AnyRow, prefix: &str) -> Result<Figures, sqlx::Error> {
    let get = |name: &str| row.try_get::<i64, _>(format!("{prefix}{name}").as_str());
    let (initial, bonus, adjustments) = (get("initial")?, get("bonus")?, get("adjustments")?);
    Ok(Figures {
        remaining: get("remaining")?,
        held: get("held")?,
        used: get("used")?,
        initial,
        bonus,
        adjustments,
        total: initial + bonus + adjustments,
    })
}

/// Runs the whole check in one read.
pub async fn run(pool: &AnyPool) -> Result<CheckReport, sqlx::Error> {
    let mut discrepancies = Vec::new();
    let mut entries_checked = 0;
    let rows = sqlx::query(SUMS_SQL).fetch_all(pool).await?;
    for row in &rows {
        let user_id: String = row.try_get("user_id")?;
        let mut account = figures(row, "")?;
        account.total = row.try_get("total")?;
        let ledger = figures(row, "s_")?;
        entries_checked += row.try_get::<i64, _>("s_entries")?;
        let report = |problem: &str| Discrepancy {
            user_id: user_id.clone(),
            problem: problem.to_string(),
            account: Some(account),
            ledger: Some(ledger),
            entry_id: None,
        };
        if !account.is_consistent() {
            discrepancies.push(report("account breaks remaining + held + used == total"));
        }
        if account != ledger {
            discrepancies.push(report("account figures differ from the sum of its ledger"));
        }
        let last_balance: Option<i64> = row.try_get("last_balance")?;
        if last_balance.unwrap_or(0) != account.remaining {
            discrepancies.push(report("remaining differs from the last entry's balanceAfter"));
        }
    }
    for row in sqlx::query(CHAIN_SQL).fetch_all(pool).await? {
        discrepancies.push(Discrepancy {
            user_id: row.try_get("user_id")?,
            problem: "balanceAfter is not the previous balance plus the amount".into(),
            account: None,
            ledger: None,
            entry_id: Some(row.try_get("id")?),
        });
    }
    for (sql, problem) in CROSS_CHECKS {
        for row in sqlx::query(sql).fetch_all(pool).await? {
            discrepancies.push(Discrepancy {
                user_id: row.try_get::<Option<String>, _>("user_id")?.unwrap_or_default(),
                problem: problem.to_string(),
                account: None,
                ledger: None,
                entry_id: row.try_get("entry_id")?,
            });
        }
    }
    Ok(CheckReport {
        ok: discrepancies.is_empty(),
        accounts_checked: rows.len() as i64,
        entries_checked,
        discrepancies,
    })
}
