//! Daily statistics in the operator's time zone: credits granted (free),
//! purchased, spent and clawed back, revenue per plan, active and new users.
//! A test payment (the admin's test webhook) is no revenue: its credits
//! count as granted, not purchased, and its price is left out.
//! Rows are bucketed in Rust from integer timestamps, so both engines agree exactly.

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::{AnyPool, Row};
use std::collections::{BTreeMap, BTreeSet};

/// The longest range one request may ask for.
pub const MAX_DAYS: i64 = 366;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayStats {
    pub date: String,
    /// Free credits: initial grants, positive admin adjustments and test payments.
    pub granted: i64,
    pub purchased: i64,
    /// Spends plus captured holds.
    pub spent: i64,
    /// Refunds and dispute clawbacks.
    pub clawed_back: i64,
    pub revenue_cents_by_plan: BTreeMap<String, i64>,
    /// Users who spent, held or captured that day.
    pub active_users: i64,
    pub new_users: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsReport {
    pub time_zone: String,
    pub from: String,
    pub to: String,
    pub days: Vec<DayStats>,
}

/// Parses `from`/`to` (YYYY-MM-DD, inclusive) and checks the range.
pub fn parse_range(from: &str, to: &str) -> Result<(NaiveDate, NaiveDate), String> {
    let parse = |text: &str, name: &str| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| format!("`{name}` must be a date like 2026-11-01"))
    };
    let (from, to) = (parse(from, "from")?, parse(to, "to")?);
    let days = (to - from).num_days() + 1;
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(format!("the range must be 1 to {MAX_DAYS} days, `from` not after `to`"));
    }
    Ok((from, to))
}

fn start_of(tz: Tz, day: NaiveDate) -> i64 {
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    tz.from_local_datetime(&midnight).earliest().map_or(0, |at| at.timestamp_millis())
}

fn day_of(tz: Tz, ms: i64) -> NaiveDate {
    tz.timestamp_millis_opt(ms).single().map_or(NaiveDate::MIN, |at| at.date_naive())
}

/// Adds one ledger entry to its day's figures. A test webhook's purchase
/// counts as granted, never as purchased.
fn tally_entry(
    row: &sqlx::any::AnyRow,
    tz: Tz,
    days: &mut BTreeMap<NaiveDate, DayStats>,
    active: &mut BTreeMap<NaiveDate, BTreeSet<String>>,
) -> Result<(), sqlx::Error> {
    let date = day_of(tz, row.try_get("created_at")?);
    let Some(stats) = days.get_mut(&date) else { return Ok(()) };
    let kind: String = row.try_get("kind")?;
    let amount: i64 = row.try_get("amount")?;
    let used: i64 = row.try_get("used_delta")?;
    let test = row.try_get::<i64, _>("is_test")? != 0;
    match kind.as_str() {
        "initial" => stats.granted += amount,
        "adjust" if amount > 0 => stats.granted += amount,
        "purchase" if test => stats.granted += amount,
        "purchase" => stats.purchased += amount,
        "spend" | "capture" => stats.spent += used,
        "refund" | "clawback" => stats.clawed_back -= amount,
        _ => {}
    }
    if matches!(kind.as_str(), "spend" | "hold" | "capture") {
        active.entry(date).or_default().insert(row.try_get("user_id")?);
    }
    Ok(())
}

pub async fn daily(
    pool: &AnyPool,
    tz: Tz,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<StatsReport, sqlx::Error> {
    let (start, end) = (start_of(tz, from), start_of(tz, to.succ_opt().unwrap_or(to)));
    let mut days: BTreeMap<NaiveDate, DayStats> = BTreeMap::new();
    let mut active: BTreeMap<NaiveDate, BTreeSet<String>> = BTreeMap::new();
    let mut day = from;
    while day <= to {
        days.insert(day, DayStats { date: day.to_string(), ..DayStats::default() });
        day = day.succ_opt().expect("dates continue");
    }
    let entries = sqlx::query(
        "SELECT e.user_id, e.kind, e.amount, e.used_delta, e.created_at, COALESCE(p.is_test, 0) AS is_test \
         FROM ledger_entries e LEFT JOIN payments p ON e.kind = 'purchase' AND p.grant_entry_id = e.id \
         WHERE e.created_at >= $1 AND e.created_at < $2",
    )
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await?;
    for row in &entries {
        tally_entry(row, tz, &mut days, &mut active)?;
    }
    let payments = sqlx::query(
        "SELECT plan, amount_cents, created_at FROM payments \
         WHERE plan IS NOT NULL AND is_test = 0 AND created_at >= $1 AND created_at < $2",
    )
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await?;
    for row in &payments {
        if let Some(stats) = days.get_mut(&day_of(tz, row.try_get("created_at")?)) {
            *stats.revenue_cents_by_plan.entry(row.try_get("plan")?).or_default() +=
                row.try_get::<i64, _>("amount_cents")?;
        }
    }
    let accounts = sqlx::query("SELECT created_at FROM accounts WHERE created_at >= $1 AND created_at < $2")
        .bind(start)
        .bind(end)
        .fetch_all(pool)
        .await?;
    for row in &accounts {
        if let Some(stats) = days.get_mut(&day_of(tz, row.try_get("created_at")?)) {
            stats.new_users += 1;
        }
    }
    for (date, users) in active {
        if let Some(stats) = days.get_mut(&date) {
            stats.active_users = users.len() as i64;
        }
    }
    Ok(StatsReport {
        time_zone: tz.name().to_string(),
        from: from.to_string(),
        to: to.to_string(),
        days: days.into_values().collect(),
    })
}
