//! Building the set-wise statements: a batch goes in as one JSON array
//! parameter that each statement reads as a table, so every statement has
//! one fixed text whatever the batch's size and stays prepared.

use crate::exec::{Exec, ReadRow};
use serde_json::json;
use std::collections::BTreeMap;

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
