//! The `credits` binary: migrate, grant, check, and configuration errors.

use crate::both;
use crate::support::{fresh_database_url, unique, Backend, TestApp};
use std::process::{Command, Output};

fn credits(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_credits"));
    command.args(args).env("DATABASE_URL", database_url).env_remove("CREDITS_CONFIG");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run credits")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

async fn migrate_grant_and_check_work_and_check_finds_corruption(backend: Backend) {
    let url = fresh_database_url(backend).await;
    let migrate = credits(&url, &["migrate"], &[]);
    assert!(migrate.status.success(), "{}", text(&migrate));
    let user = unique("granted");
    let grant = credits(&url, &["grant", "--user", &user, "--amount", "25", "--reason", "launch gift"], &[]);
    assert!(grant.status.success(), "{}", text(&grant));
    assert!(text(&grant).contains("\"remaining\":33"), "8 initial + 25: {}", text(&grant));
    let bad_grant = credits(&url, &["grant", "--user", &user, "--amount", "0", "--reason", "x"], &[]);
    assert!(!bad_grant.status.success());
    assert!(text(&bad_grant).contains("--amount"));

    let app = TestApp::spawn_on(&url, &[]).await;
    let view = app.credits(&user).await;
    assert_eq!(view["credits"]["remaining"], 33);
    assert_eq!(view["recent"][0]["kind"], "adjust");
    assert_eq!(view["recent"][0]["reason"], "launch gift");

    let clean = credits(&url, &["check"], &[]);
    assert!(clean.status.success(), "{}", text(&clean));
    assert!(text(&clean).contains("\"ok\": true"));

    // A row that satisfies every constraint but no longer matches its ledger.
    sqlx::query(
        "UPDATE accounts SET remaining = remaining + 5, adjustments = adjustments + 5, \
         total = total + 5 WHERE user_id = $1",
    )
    .bind(&user)
    .execute(&app.service.db().pool)
    .await
    .unwrap();
    let dirty = credits(&url, &["check"], &[]);
    assert_eq!(dirty.status.code(), Some(1), "{}", text(&dirty));
    let report: serde_json::Value = serde_json::from_slice(&dirty.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert!(report["discrepancies"].as_array().unwrap().iter().any(|d| d["userId"] == user.as_str()));

    // A ledger row whose balanceAfter breaks the chain.
    let url2 = fresh_database_url(backend).await;
    let app2 = TestApp::spawn_on(&url2, &[]).await;
    app2.set_balance(&user, 40).await;
    sqlx::query("UPDATE ledger_entries SET balance_after = balance_after + 1 WHERE kind = 'initial'")
        .execute(&app2.service.db().pool)
        .await
        .unwrap();
    let report = app2.service.check().await.unwrap();
    assert!(!report.ok);
    assert!(report.discrepancies.iter().any(|d| d.entry_id.is_some()), "{report:?}");
}
both!(migrate_grant_and_check_work_and_check_finds_corruption);

#[test]
fn bad_configuration_stops_the_process_naming_the_setting() {
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("DATABASE_URL", "mysql://localhost/x")], "DATABASE_URL"),
        (&[("CREDITS_ADDR", "not-an-address")], "CREDITS_ADDR"),
        (&[("CLERK_JWT_KEY", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")], "CLERK_JWT_KEY"),
        (&[("CREDITS_CONFIG", "/definitely/not/here.toml")], "CREDITS_CONFIG"),
    ];
    let dir = std::env::temp_dir().join("credits-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join(format!("{}.db", unique("cfg"))).display());
    for (env, setting) in cases {
        let output = credits(&url, &["check"], env);
        assert_eq!(output.status.code(), Some(2), "{setting}: {}", text(&output));
        assert!(text(&output).contains(setting), "{setting}: {}", text(&output));
    }
    let config = dir.join(format!("{}.toml", unique("cfg")));
    std::fs::write(&config, "initial_credits = 8\ncost_per_vidoe = 10\n").unwrap();
    let output = credits(&url, &["check"], &[("CREDITS_CONFIG", config.to_str().unwrap())]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("cost_per_vidoe"), "{}", text(&output));
    let output = credits(&url, &["serve", "--addr", "nowhere"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("--addr"), "{}", text(&output));
}
