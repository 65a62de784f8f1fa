//! Worker API keys, the admin API and its audit log, stats, check, metrics, OpenAPI, rate limits.

use crate::both;
use crate::support::{figures, token, unique, Backend, TestApp, ADMIN};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::Command;

fn cli(database_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_credits"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("CREDITS_CONFIG")
        .output()
        .unwrap()
}

async fn api_keys_may_hold_and_read_figures_and_nothing_else(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.service.db().url().to_string();
    let created = cli(&url, &["apikey", "create", "--name", "video worker"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let key_id = created["id"].as_str().unwrap().to_string();
    let listed = String::from_utf8(cli(&url, &["apikey", "list"]).stdout).unwrap();
    assert!(listed.contains("video worker") && !listed.contains(&key), "the secret is never listed");

    let user = unique("customer");
    app.set_balance(&user, 50).await;
    let view = app.get(&format!("/api/credits?userId={user}"), Some(&key)).await;
    assert_eq!(view.status(), StatusCode::OK);
    assert_eq!(view.json::<Value>().await.unwrap()["credits"]["remaining"], 50);
    let hold = app.post_json("/api/holds", Some(&key), &json!({"userId": user, "amount": 20}), None).await;
    assert_eq!(hold.status(), StatusCode::OK);
    let hold_id = hold.json::<Value>().await.unwrap()["holdId"].as_str().unwrap().to_string();
    let capture = app.post_json(&format!("/api/holds/{hold_id}/capture"), Some(&key), &json!({}), None).await;
    assert_eq!(capture.status(), StatusCode::OK);

    for body in [
        json!({"action": "add", "amount": 5, "userId": user}),
        json!({"action": "set", "amount": 500, "userId": user}),
        json!({"action": "deduct", "amount": 1, "userId": user}),
    ] {
        let response = app.post_json("/api/credits", Some(&key), &body, None).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{body}");
    }
    assert_eq!(app.get("/api/credits/history", Some(&key)).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get("/api/admin/users?q=a", Some(&key)).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get("/api/credits", Some(&key)).await.status(),
        StatusCode::BAD_REQUEST,
        "must name a user"
    );
    assert_eq!(figures(&app.credits(&user).await), (30, 50, 20, 0, 8));

    let revoked = cli(&url, &["apikey", "revoke", &key_id]);
    assert!(revoked.status.success());
    let refused = app.post_json("/api/holds", Some(&key), &json!({"userId": user, "amount": 1}), None).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "a revoked key is refused");
    assert_eq!(
        app.get(&format!("/api/credits?userId={user}"), Some("crk_not_a_key")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
both!(api_keys_may_hold_and_read_figures_and_nothing_else);

/// This instance remembers a key it has verified, so the key is revoked
/// from another process (the CLI, as another instance would): from the next
/// request on, every hold write with it is refused 401 and changes nothing,
/// alone or in a batch beside an active key's requests, and a bad request
/// with it is 401 too, not 400 or 404.
async fn a_revoked_key_is_refused_at_once_though_this_instance_remembers_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.service.db().url().to_string();
    let create_key = |name: &str| {
        let created = cli(&url, &["apikey", "create", "--name", name]);
        assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
        let created: Value = serde_json::from_slice(&created.stdout).unwrap();
        (created["id"].as_str().unwrap().to_string(), created["key"].as_str().unwrap().to_string())
    };
    let (retired_id, retired) = create_key("retired worker");
    let (_, active) = create_key("active worker");
    let user = unique("customer");
    app.set_balance(&user, 1_000).await;
    let hold = |key: String, amount: i64| {
        let (app, body) = (&app, json!({"userId": user, "amount": amount}));
        async move { app.post_json("/api/holds", Some(&key), &body, None).await }
    };
    let mut open = Vec::new();
    for _ in 0..3 {
        let response = hold(retired.clone(), 10).await;
        assert_eq!(response.status(), StatusCode::OK);
        open.push(response.json::<Value>().await.unwrap()["holdId"].as_str().unwrap().to_string());
    }
    assert_eq!(figures(&app.credits(&user).await).0, 970);

    assert!(cli(&url, &["apikey", "revoke", &retired_id]).status.success());
    let holds_before = app.count("holds").await;
    let entries_before = app.count("ledger_entries").await;
    let retired_asks = join_all((0..20).map(|_| hold(retired.clone(), 5)));
    let active_asks = join_all((0..20).map(|_| hold(active.clone(), 1)));
    let (retired_answers, active_answers) = tokio::join!(retired_asks, active_asks);
    assert!(retired_answers.iter().all(|r| r.status() == StatusCode::UNAUTHORIZED), "revoked: all 401");
    assert!(active_answers.iter().all(|r| r.status() == StatusCode::OK), "active: all 200");
    let resolve = |path: String, body: Value| {
        let app = &app;
        let retired = retired.clone();
        async move { app.post_json(&path, Some(&retired), &body, None).await.status() }
    };
    assert_eq!(resolve(format!("/api/holds/{}/capture", open[0]), json!({})).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        resolve(format!("/api/holds/{}/capture", open[1]), json!({"amount": 4})).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(resolve(format!("/api/holds/{}/release", open[2]), json!({})).await, StatusCode::UNAUTHORIZED);
    assert_eq!(resolve("/api/holds/hold_unknown/capture".into(), json!({})).await, StatusCode::UNAUTHORIZED);
    assert_eq!(resolve("/api/holds".into(), json!({"amount": "many"})).await, StatusCode::UNAUTHORIZED);

    let (remaining, _, used, _, _) = figures(&app.credits(&user).await);
    assert_eq!((remaining, used), (1_000 - 30 - 20, 0), "only the active key's 20 holds took credits");
    assert_eq!(app.count("holds").await, holds_before + 20);
    assert_eq!(app.count("ledger_entries").await, entries_before + 20);
    // The active key still captures a hold the revoked one made.
    let capture =
        app.post_json(&format!("/api/holds/{}/capture", open[0]), Some(&active), &json!({}), None).await;
    assert_eq!(capture.status(), StatusCode::OK);
    app.assert_consistent().await;
}
both!(a_revoked_key_is_refused_at_once_though_this_instance_remembers_it);

async fn admins_search_inspect_and_batch_adjust_with_an_audit_trail(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    app.credits(&alice).await;
    app.credits(&bob).await;
    let admin = token(ADMIN);
    let found: Value =
        app.get(&format!("/api/admin/users?q={}", &alice[..8]), Some(&admin)).await.json().await.unwrap();
    assert!(found["users"].as_array().unwrap().iter().any(|u| u["user"]["userId"] == alice.as_str()));
    assert_eq!(app.get("/api/admin/users?q=x", Some(&token(&alice))).await.status(), StatusCode::FORBIDDEN);

    let batch = json!({"adjustments": [
        {"userId": alice, "action": "add", "amount": 100, "reason": "launch promo"},
        {"userId": bob, "action": "add", "amount": -5, "reason": "bad amount"},
        {"userId": bob, "action": "set", "amount": 20, "reason": "support ticket 7"},
        {"userId": "nobody", "action": "add", "amount": 5, "reason": "typo"},
        {"userId": bob, "action": "deduct", "amount": 1, "reason": ""},
    ]});
    let response = app.post_json("/api/admin/adjust", Some(&admin), &batch, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    let oks: Vec<bool> =
        report["results"].as_array().unwrap().iter().map(|r| r["ok"].as_bool().unwrap()).collect();
    assert_eq!(oks, [true, false, true, false, false]);
    assert_eq!(report["results"][1]["error"]["code"], "invalid_request");
    assert_eq!(report["results"][3]["error"]["code"], "not_found");
    assert_eq!(figures(&app.credits(&alice).await).0, 108);
    assert_eq!(figures(&app.credits(&bob).await).0, 20);

    let csv = format!("userId,action,amount,reason\n{alice},deduct,8,refund of promo\n{bob},add,ten,oops\n");
    let response = app
        .client
        .post(app.url("/api/admin/adjust"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let report: Value = response.json().await.unwrap();
    assert_eq!((report["succeeded"].as_i64(), report["failed"].as_i64()), (Some(1), Some(1)), "{report}");

    let detail: Value =
        app.get(&format!("/api/admin/users/{alice}"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(detail["user"]["credits"]["remaining"], 100);
    assert!(detail["ledger"].as_array().unwrap().len() >= 3);
    let audit = detail["audit"].as_array().unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[1]["actor"], format!("admin:{ADMIN}"));
    assert_eq!(audit[1]["action"], "batch.add");
    assert_eq!(audit[1]["reason"], "launch promo");
    assert_eq!(audit[1]["before"]["remaining"], 8);
    assert_eq!(audit[1]["after"]["remaining"], 108);
    assert!(audit[1]["createdAt"].as_str().unwrap().contains('T'));

    let (status, _) =
        app.change(ADMIN, json!({"action": "add", "amount": 1, "userId": bob, "reason": "goodwill"})).await;
    assert_eq!(status, StatusCode::OK);
    let log: Value =
        app.get(&format!("/api/admin/audit?userId={bob}"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(log["entries"][0]["action"], "credits.add", "single admin changes are audited too");
    assert_eq!(app.get("/api/admin/users/nobody", Some(&admin)).await.status(), StatusCode::NOT_FOUND);
    app.assert_consistent().await;
}
both!(admins_search_inspect_and_batch_adjust_with_an_audit_trail);

async fn check_finds_a_corrupted_row_over_http_and_in_holds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("victim");
    app.set_balance(&user, 50).await;
    let admin = token(ADMIN);
    let clean: Value = app.get("/api/admin/check", Some(&admin)).await.json().await.unwrap();
    assert_eq!(clean["ok"], true, "{clean}");
    let hold = app.post_json("/api/holds", Some(&token(&user)), &json!({"amount": 10}), None).await;
    assert_eq!(hold.status(), StatusCode::OK);
    // Close the hold behind the ledger's back: `held` no longer matches open holds.
    sqlx::query("UPDATE holds SET status = 'released', resolved_at = created_at + 1 WHERE user_id = $1")
        .bind(&user)
        .execute(&app.service.db().pool)
        .await
        .unwrap();
    let dirty: Value = app.get("/api/admin/check", Some(&admin)).await.json().await.unwrap();
    assert_eq!(dirty["ok"], false);
    let problems: Vec<&str> =
        dirty["discrepancies"].as_array().unwrap().iter().map(|d| d["problem"].as_str().unwrap()).collect();
    assert!(problems.iter().any(|p| p.contains("open holds")), "{problems:?}");
    // A purchase entry written without its payment.
    sqlx::query("UPDATE ledger_entries SET kind = 'purchase', bonus_delta = adjust_delta, adjust_delta = 0 WHERE user_id = $1 AND kind = 'adjust'")
        .bind(&user)
        .execute(&app.service.db().pool)
        .await
        .unwrap();
    let dirty: Value = app.get("/api/admin/check", Some(&admin)).await.json().await.unwrap();
    let problems: Vec<&str> =
        dirty["discrepancies"].as_array().unwrap().iter().map(|d| d["problem"].as_str().unwrap()).collect();
    assert!(problems.iter().any(|p| p.contains("no payment")), "{problems:?}");
    assert_eq!(app.get("/api/admin/check", Some(&token(&user))).await.status(), StatusCode::FORBIDDEN);
}
both!(check_finds_a_corrupted_row_over_http_and_in_holds);

async fn metrics_and_openapi_describe_the_service(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("metered");
    app.credits(&user).await;
    let (status, _) = app.change(&user, json!({"action": "deduct", "amount": 3})).await;
    assert_eq!(status, StatusCode::OK);
    let text = app.get("/metrics", None).await.text().await.unwrap();
    for needle in [
        "http_requests_total{method=\"POST\",route=\"/api/credits\",status=\"200\"}",
        "http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/credits\"",
        "credits_granted_total",
        "credits_spent_total",
        "db_pool_connections",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle}");
    }
    // What the memory is made of (`memory::record_gauges`): malloc's heap in
    // use, and SQLite's own (its connections' memory, on SQLite).
    let gauge = |needle: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(needle))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("/metrics lacks {needle}"))
    };
    assert!(gauge("process_malloc_bytes{part=\"in_use\"} ") > 0.0);
    assert!(gauge("process_malloc_bytes{part=\"free\"} ") >= 0.0);
    let sqlite_heap = gauge("sqlite_memory_bytes{part=\"heap\"} ");
    assert!(gauge("sqlite_page_buffer_slots_used ") >= 0.0);
    if backend == Backend::Sqlite {
        assert!(sqlite_heap > 0.0, "SQLite's connections use memory");
    }
    let doc: Value = app.get("/api/openapi.json", None).await.json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let contract = [
        ("/api/credits", "get"),
        ("/api/credits", "post"),
        ("/api/credits/history", "get"),
        ("/api/user/sync", "get"),
        ("/api/user/sync", "post"),
        ("/api/checkout", "post"),
        ("/api/holds", "post"),
        ("/api/holds/{id}/capture", "post"),
        ("/api/holds/{id}/release", "post"),
        ("/api/webhooks/creem", "post"),
        ("/api/webhooks/clerk", "post"),
        ("/api/test-creem", "get"),
        ("/api/admin/users", "get"),
        ("/api/admin/users/{id}", "get"),
        ("/api/admin/adjust", "post"),
        ("/api/admin/webhooks", "get"),
        ("/api/admin/stats", "get"),
        ("/api/admin/check", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/api/openapi.json", "get"),
    ];
    for (path, method) in contract {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "OpenAPI lacks {method} {path}");
    }
    assert!(doc["components"]["schemas"]["CreditsView"]["properties"]["canGenerateVideo"].is_object());
}
both!(metrics_and_openapi_describe_the_service);

async fn spending_limits_are_off_by_default_and_429_when_configured(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("busy");
    app.set_balance(&user, 1000).await;
    for _ in 0..30 {
        let (status, _) = app.change(&user, json!({"action": "deduct", "amount": 1})).await;
        assert_eq!(status, StatusCode::OK, "no limit on spending by default");
    }
    let dir = std::env::temp_dir().join("credits-tests");
    let path = dir.join(format!("{}.toml", unique("limits")));
    std::fs::write(&path, "[rate_limits]\nspend = { per_minute = 60, burst = 4 }\n").unwrap();
    let limited = TestApp::spawn_with(backend, &[("CREDITS_CONFIG", path.display().to_string())]).await;
    limited.set_balance(&user, 100).await; // takes one token of this IP's burst of 4
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let response = limited
            .post_json("/api/credits", Some(&token(&user)), &json!({"action": "deduct", "amount": 1}), None)
            .await;
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");
        }
    }
    assert_eq!(&statuses[..3], [StatusCode::OK; 3]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(limited.credits(&user).await["credits"]["remaining"], 97, "a refused request spends nothing");
}
both!(spending_limits_are_off_by_default_and_429_when_configured);
