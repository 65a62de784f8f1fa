//! Daily statistics for a seeded month, against a table computed by hand.

use crate::both;
use crate::support::{token, unique, Backend, TestApp, ADMIN};
use reqwest::StatusCode;
use serde_json::Value;

/// date, granted, purchased, spent, clawedBack, activeUsers, newUsers, starter revenue.
type DayRow = (&'static str, i64, i64, i64, i64, i64, i64, i64);

/// Milliseconds for a UTC instant.
fn utc(day: u32, hour: u32, minute: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(2026, 11, day)
        .unwrap()
        .and_hms_opt(hour, minute, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

async fn seed(app: &TestApp, prefix: &str) {
    let pool = &app.service.db().pool;
    // Shanghai is UTC+8: 16:30Z on the 1st is 00:30 on the 2nd there.
    for (user, created) in [("a", utc(1, 2, 0)), ("b", utc(1, 15, 30)), ("c", utc(1, 16, 30))] {
        sqlx::query("INSERT INTO accounts (user_id, remaining, total, created_at, updated_at) VALUES ($1, 0, 0, $2, $2)")
            .bind(format!("{prefix}{user}"))
            .bind(created)
            .execute(pool)
            .await
            .unwrap();
    }
    // (user, kind, amount, used_delta, at)
    let entries = [
        ("a", "initial", 8, 0, utc(1, 2, 0)),
        ("b", "initial", 8, 0, utc(1, 15, 30)),
        ("c", "initial", 8, 0, utc(1, 16, 30)),
        ("a", "purchase", 115, 0, utc(2, 1, 0)),
        ("a", "spend", -10, 10, utc(2, 4, 0)),
        ("b", "spend", -5, 5, utc(2, 5, 0)),
        ("c", "hold", -8, 0, utc(3, 2, 0)),
        ("c", "capture", 0, 8, utc(3, 3, 0)),
        ("a", "refund", -58, 0, utc(5, 2, 0)),
        ("a", "adjust", 20, 0, utc(5, 3, 0)),
        ("b", "adjust", -3, 0, utc(5, 4, 0)),
    ];
    for (user, kind, amount, used, at) in entries {
        let (held, initial, bonus, adjust) = match kind {
            "hold" => (-amount, 0, 0, 0),
            "capture" => (-used, 0, 0, 0),
            "initial" => (0, amount, 0, 0),
            "purchase" | "refund" => (0, 0, amount, 0),
            "adjust" => (0, 0, 0, amount),
            _ => (0, 0, 0, 0),
        };
        sqlx::query(
            "INSERT INTO ledger_entries (user_id, kind, amount, held_delta, used_delta, initial_delta, bonus_delta, \
             adjust_delta, balance_after, actor, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 'seed', $9)",
        )
        .bind(format!("{prefix}{user}"))
        .bind(kind)
        .bind(amount as i64)
        .bind(held as i64)
        .bind(used as i64)
        .bind(initial as i64)
        .bind(bonus as i64)
        .bind(adjust as i64)
        .bind(at)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO payments (payment_key, event_id, product_id, plan, amount_cents, credits, status, created_at) \
         VALUES ($1, 'evt_seed', 'prod_s', 'starter', 990, 115, 'pending_user', $2)",
    )
    .bind(format!("order:{prefix}"))
    .bind(utc(2, 1, 0))
    .execute(pool)
    .await
    .unwrap();
}

async fn stats_for_a_seeded_month_match_the_hand_computed_table(backend: Backend) {
    let dir = std::env::temp_dir().join("credits-tests");
    let path = dir.join(format!("{}.toml", unique("tz")));
    std::fs::write(&path, "time_zone = \"Asia/Shanghai\"\n").unwrap();
    let app = TestApp::spawn_with(backend, &[("CREDITS_CONFIG", path.display().to_string())]).await;
    seed(&app, "s_").await;
    let response = app.get("/api/admin/stats?from=2026-11-01&to=2026-11-30", Some(&token(ADMIN))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["timeZone"], "Asia/Shanghai");
    let days = report["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    // date: granted, purchased, spent, clawedBack, activeUsers, newUsers, starter revenue
    let expected: [DayRow; 4] = [
        ("2026-11-01", 16, 0, 0, 0, 0, 2, 0),
        ("2026-11-02", 8, 115, 15, 0, 2, 1, 990),
        ("2026-11-03", 0, 0, 8, 0, 1, 0, 0),
        ("2026-11-05", 20, 0, 0, 58, 0, 0, 0),
    ];
    for day in days {
        let date = day["date"].as_str().unwrap();
        let row = expected.iter().find(|row| row.0 == date).copied().unwrap_or(("", 0, 0, 0, 0, 0, 0, 0));
        let got = (
            row.0,
            day["granted"].as_i64().unwrap(),
            day["purchased"].as_i64().unwrap(),
            day["spent"].as_i64().unwrap(),
            day["clawedBack"].as_i64().unwrap(),
            day["activeUsers"].as_i64().unwrap(),
            day["newUsers"].as_i64().unwrap(),
            day["revenueCentsByPlan"]["starter"].as_i64().unwrap_or(0),
        );
        assert_eq!(got, row);
    }
    for bad in [
        "from=2026-11-30&to=2026-11-01",
        "from=2025-01-01&to=2026-11-01",
        "from=yesterday&to=2026-11-01",
        "to=2026-11-01",
    ] {
        let response = app.get(&format!("/api/admin/stats?{bad}"), Some(&token(ADMIN))).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_credits"))
        .args(["stats", "--from", "2026-11-01", "--to", "2026-11-30"])
        .env("DATABASE_URL", app.service.db().url())
        .env("CREDITS_CONFIG", &path)
        .output()
        .unwrap();
    assert!(cli.status.success());
    let from_cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(from_cli, report, "`credits stats` prints the same report");
}
both!(stats_for_a_seeded_month_match_the_hand_computed_table);
