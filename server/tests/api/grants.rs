//! Grants that expire, start later and can be voided; draw order; alerts and
//! the outbox to the operator's endpoint.

use crate::both;
use crate::support::{figures, token, unique, Backend, TestApp, ADMIN};
use axum::http::HeaderMap;
use axum::routing::post;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn at(offset: chrono::Duration) -> String {
    (chrono::Utc::now() + offset).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn add(app: &TestApp, user: &str, body: Value) -> Value {
    let mut body = body;
    body["action"] = json!("add");
    body["userId"] = json!(user);
    let (status, view) = app.change(ADMIN, body).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    view
}

fn grant_remaining(view: &Value, amount: i64) -> Vec<i64> {
    view["grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["amount"] == amount)
        .map(|g| g["remaining"].as_i64().unwrap())
        .collect()
}

async fn spends_draw_by_priority_then_soonest_expiry_then_oldest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("drawer");
    app.credits(&user).await; // initial 8, never expires, priority 50
    add(&app, &user, json!({"amount": 11, "expiresAt": at(chrono::Duration::days(30))})).await;
    add(&app, &user, json!({"amount": 12, "expiresAt": at(chrono::Duration::days(10))})).await;
    add(&app, &user, json!({"amount": 5, "priority": 10, "category": "promotional"})).await;
    let (status, view) = app.change(&user, json!({"action": "deduct", "amount": 19})).await;
    assert_eq!(status, StatusCode::OK);
    // Priority 10 first (5), then the grant expiring in 10 days (12), then the one in 30 days (2).
    assert_eq!(grant_remaining(&view, 5), Vec::<i64>::new(), "spent grants are not listed");
    assert_eq!(grant_remaining(&view, 12), Vec::<i64>::new());
    assert_eq!(grant_remaining(&view, 11), vec![9]);
    assert_eq!(grant_remaining(&view, 8), vec![8], "the never-expiring initial grant is drawn last");
    let view = app.credits(&user).await;
    assert_eq!(view["nextExpiry"]["amount"], 9);
    assert!(view["nextExpiry"]["at"].as_str().unwrap().contains('T'));
    let first = &view["grants"][0];
    for key in ["id", "kind", "category", "amount", "remaining", "priority", "effectiveAt", "expiresAt"] {
        assert!(first.get(key).is_some(), "grant field {key}: {first}");
    }
    for bad in [
        json!({"amount": 5, "expiresAt": "tomorrow"}),
        json!({"amount": 5, "expiresAt": at(chrono::Duration::seconds(-5))}),
        json!({"amount": 5, "priority": 101}),
        json!({"amount": 5, "category": "gift"}),
    ] {
        let mut body = bad.clone();
        body["action"] = json!("add");
        body["userId"] = json!(user);
        assert_eq!(app.change(ADMIN, body).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, _) = app
        .change(&user, json!({"action": "deduct", "amount": 1, "expiresAt": at(chrono::Duration::days(1))}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "grant terms only go with add");
    app.assert_consistent().await;
}
both!(spends_draw_by_priority_then_soonest_expiry_then_oldest);

async fn grants_expire_once_and_future_grants_count_from_their_start(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("expiring");
    app.credits(&user).await;
    add(&app, &user, json!({"amount": 30, "expiresAt": at(chrono::Duration::milliseconds(1200))})).await;
    add(&app, &user, json!({"amount": 40, "effectiveAt": at(chrono::Duration::milliseconds(1200))})).await;
    let view = app.credits(&user).await;
    assert_eq!(figures(&view).0, 38, "the future grant does not count yet");
    assert_eq!(view["grants"].as_array().unwrap().len(), 3, "live and future grants are listed");
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let view = app.credits(&user).await;
    assert_eq!(figures(&view), (48, 48, 0, 0, 8), "30 expired, 40 started");
    let entries = app.all_entries(&user).await;
    assert_eq!(entries.iter().filter(|e| e["kind"] == "expire").count(), 1, "expired exactly once");
    let expire = entries.iter().find(|e| e["kind"] == "expire").unwrap();
    assert_eq!(expire["amount"], -30);
    // A second instance sweeping the same database changes nothing more.
    let second = TestApp::spawn_on(app.service.db().url(), &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(figures(&second.credits(&user).await).0, 48);
    app.assert_consistent().await;
}
both!(grants_expire_once_and_future_grants_count_from_their_start);

async fn a_hold_that_outlives_its_grant_gives_nothing_back_on_release(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("holder");
    app.credits(&user).await;
    add(
        &app,
        &user,
        json!({"amount": 20, "priority": 0, "expiresAt": at(chrono::Duration::milliseconds(1000))}),
    )
    .await;
    let bearer = token(&user);
    let hold: Value = app
        .post_json("/api/holds", Some(&bearer), &json!({"amount": 15, "ttlSeconds": 60}), None)
        .await
        .json()
        .await
        .unwrap();
    let id = hold["holdId"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let view = app.credits(&user).await;
    assert_eq!(
        (figures(&view).0, view["held"].as_i64().unwrap()),
        (8, 15),
        "the unheld 5 expired, the held 15 stay held"
    );
    let released: Value = app
        .post_json(&format!("/api/holds/{id}/release"), Some(&bearer), &json!({}), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(released["status"], "released");
    let view = app.credits(&user).await;
    assert_eq!(
        (figures(&view).0, view["held"].as_i64().unwrap()),
        (8, 0),
        "credits returning to an expired grant leave with it"
    );
    let kinds: Vec<String> =
        app.all_entries(&user).await.iter().take(2).map(|e| e["kind"].as_str().unwrap().into()).collect();
    assert_eq!(kinds, ["expire", "release"]);
    app.assert_consistent().await;
}
both!(a_hold_that_outlives_its_grant_gives_nothing_back_on_release);

async fn expiry_racing_spends_never_spends_an_expired_credit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("racer");
    app.set_balance(&user, 0).await;
    add(&app, &user, json!({"amount": 50, "expiresAt": at(chrono::Duration::milliseconds(600))})).await;
    let bearer = token(&user);
    let spends = (0..40).map(|i| {
        let app = &app;
        let bearer = bearer.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(15 * i)).await;
            app.post_json("/api/credits", Some(&bearer), &json!({"action": "deduct", "amount": 2}), None)
                .await
                .status()
        }
    });
    let statuses = join_all(spends).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count() as i64;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::PAYMENT_REQUIRED),
        "{statuses:?}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let view = app.credits(&user).await;
    let expired: i64 = app
        .all_entries(&user)
        .await
        .iter()
        .filter(|e| e["kind"] == "expire")
        .map(|e| -e["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(view["credits"]["used"].as_i64().unwrap(), 2 * ok);
    assert_eq!(2 * ok + expired, 50, "every credit was either spent before expiry or expired, once");
    assert_eq!(figures(&view).0, 0);
    app.assert_consistent().await;
}
both!(expiry_racing_spends_never_spends_an_expired_credit);

async fn a_void_after_a_partial_spend_removes_only_the_rest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("voided");
    app.credits(&user).await;
    let view = add(&app, &user, json!({"amount": 20, "priority": 0})).await;
    let grant_id = view["grants"].as_array().unwrap().iter().find(|g| g["amount"] == 20).unwrap()["id"]
        .as_i64()
        .unwrap();
    app.change(&user, json!({"action": "deduct", "amount": 5})).await;
    let admin = token(ADMIN);
    let path = format!("/api/admin/grants/{grant_id}/void");
    assert_eq!(
        app.post_json(&path, Some(&admin), &json!({}), None).await.status(),
        StatusCode::BAD_REQUEST,
        "a reason is required"
    );
    assert_eq!(
        app.post_json(&path, Some(&token(&user)), &json!({"reason": "x"}), None).await.status(),
        StatusCode::FORBIDDEN
    );
    let voided = app.post_json(&path, Some(&admin), &json!({"reason": "promo abuse"}), None).await;
    assert_eq!(voided.status(), StatusCode::OK);
    assert_eq!(voided.json::<Value>().await.unwrap()["removed"], 15);
    assert_eq!(figures(&app.credits(&user).await), (8, 13, 5, 0, 8), "spent stays spent, the rest is gone");
    assert_eq!(
        app.post_json(&path, Some(&admin), &json!({"reason": "again"}), None).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.all_entries(&user).await[0]["kind"], "void");
    let audit: Value =
        app.get(&format!("/api/admin/audit?userId={user}"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(audit["entries"][0]["action"], "grant.void");
    assert_eq!(audit["entries"][0]["reason"], "promo abuse");
    app.assert_consistent().await;
}
both!(a_void_after_a_partial_spend_removes_only_the_rest);

async fn a_refund_of_a_partly_expired_purchase_takes_only_what_is_left(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("subscriber");
    app.credits(&user).await;
    let mut paid = crate::support::creem_fixture("subscription.paid.json");
    paid["id"] = json!(unique("evt"));
    paid["object"]["id"] = json!(unique("sub"));
    paid["object"]["metadata"]["userId"] = json!(user);
    let transaction = unique("tran");
    paid["object"]["last_transaction_id"] = json!(transaction);
    paid["object"]["current_period_start_date"] = json!(at(chrono::Duration::days(-30)));
    paid["object"]["current_period_end_date"] = json!(at(chrono::Duration::milliseconds(1200)));
    assert_eq!(app.creem(&paid).await.1["outcome"], "accepted");
    assert_eq!(figures(&app.credits(&user).await).0, 363);
    // 100 spent from the purchase (priority order puts the expiring grant first), then the period ends.
    app.change(&user, json!({"action": "deduct", "amount": 100})).await;
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(figures(&app.credits(&user).await).0, 8, "255 unspent credits expired with the period");
    let mut refund = crate::support::creem_fixture("refund.created.json");
    refund["id"] = json!(unique("evt"));
    refund["object"]["id"] = json!(unique("ref"));
    refund["object"]["refund_amount"] = json!(1500);
    refund["object"]["transaction"]["id"] = json!(transaction);
    refund["object"]["order"]["id"] = json!(unique("ord"));
    refund["object"]["transaction"]["order"] = json!(null);
    let (status, body) = app.creem(&refund).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Half of 355 is 178, but 255 already left with the expiry: nothing more is taken.
    assert_eq!(figures(&app.credits(&user).await).0, 8);
    app.assert_consistent().await;
}
both!(a_refund_of_a_partly_expired_purchase_takes_only_what_is_left);

async fn crossing_the_low_threshold_emits_one_event_per_crossing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("spender");
    app.set_balance(&user, 25).await;
    for amount in [10, 10, 2] {
        app.change(&user, json!({"action": "deduct", "amount": amount})).await;
    }
    let view = app.credits(&user).await;
    let lows = view["notices"].as_array().unwrap().iter().filter(|n| n["type"] == "credits.low").count();
    assert_eq!(lows, 1, "25 → 15 → 5 → 3 crosses below 10 once: {}", view["notices"]);
    app.set_balance(&user, 23).await;
    app.change(&user, json!({"action": "deduct", "amount": 15})).await;
    app.change(&user, json!({"action": "deduct", "amount": 8})).await;
    let view = app.credits(&user).await;
    let notices = view["notices"].as_array().unwrap();
    assert_eq!(notices.iter().filter(|n| n["type"] == "credits.low").count(), 2, "a second crossing");
    assert_eq!(notices.iter().filter(|n| n["type"] == "credits.depleted").count(), 1);
    assert_eq!(notices[0]["type"], "credits.depleted");
    assert_eq!(notices[0]["data"]["userId"], user.as_str());
}
both!(crossing_the_low_threshold_emits_one_event_per_crossing);

type Received = Arc<Mutex<Vec<(HeaderMap, String, u16)>>>;

/// The operator's endpoint: fails the first two attempts of every event, then accepts.
async fn flaky_receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let log = received.clone();
    let app = axum::Router::new().route(
        "/hooks",
        post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            async move {
                let mut log = log.lock().unwrap();
                let id = headers["webhook-id"].to_str().unwrap().to_string();
                let tries = log.iter().filter(|(h, _, _)| h["webhook-id"] == id.as_str()).count();
                let status = if tries < 2 { 503 } else { 200 };
                log.push((headers, body, status));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

async fn outbound_webhooks_are_signed_retried_and_delivered_once(backend: Backend) {
    let (url, received) = flaky_receiver().await;
    let secret = "whsec_b3V0Ym91bmQtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXM=";
    let app = TestApp::spawn_with(
        backend,
        &[("CREDITS_WEBHOOK_URL", url), ("CREDITS_WEBHOOK_SECRET", secret.into())],
    )
    .await;
    let user = unique("notified");
    app.credits(&user).await; // credits.granted (initial)
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    loop {
        let done = received.lock().unwrap().iter().any(|(h, body, status)| {
            *status == 200 && body.contains(&user) && h.contains_key("webhook-signature")
        });
        if done || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = received.lock().unwrap().clone();
    let mine: Vec<_> = log.iter().filter(|(_, body, _)| body.contains(&user)).collect();
    let statuses: Vec<u16> = mine.iter().map(|(_, _, status)| *status).collect();
    assert_eq!(statuses, [503, 503, 200], "two failures, one success, nothing after");
    let (headers, body, _) = mine[2];
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["type"], "credits.granted");
    assert_eq!(event["data"]["userId"], user.as_str());
    assert_eq!(event["data"]["amount"], 8);
    let key = credits::webhooks::clerk::secret_key(secret).unwrap();
    let check = credits::webhooks::clerk::Headers {
        id: headers.get("webhook-id").and_then(|v| v.to_str().ok()),
        timestamp: headers.get("webhook-timestamp").and_then(|v| v.to_str().ok()),
        signature: headers.get("webhook-signature").and_then(|v| v.to_str().ok()),
    };
    let now = chrono::Utc::now().timestamp();
    assert!(
        credits::webhooks::clerk::verify(Some(&key), check, body.as_bytes(), now).is_ok(),
        "the signature verifies"
    );
    assert_eq!(mine[0].0["webhook-id"], mine[2].0["webhook-id"], "retries keep the event id");
}
both!(outbound_webhooks_are_signed_retried_and_delivered_once);

async fn configured_lifetimes_validity_and_subscription_rollover(backend: Backend) {
    let dir = std::env::temp_dir().join("credits-tests");
    let path = dir.join(format!("{}.toml", unique("lifetimes")));
    let config = format!(
        "initial_credits_valid_days = 7\n\
         [[plans]]\nname = \"starter\"\ncreem_product_id = \"{}\"\nvalidity_days = 30\n\
         [[plans]]\nname = \"standard\"\ncreem_product_id = \"{}\"\n\
         [subscriptions]\ncredits = \"rollover\"\nrollover_cap = 100\n",
        crate::support::STARTER_PRODUCT,
        crate::support::STANDARD_PRODUCT
    );
    std::fs::write(&path, config).unwrap();
    let app = TestApp::spawn_with(backend, &[("CREDITS_CONFIG", path.display().to_string())]).await;
    let user = unique("configured");
    let view = app.credits(&user).await;
    let days_left = |view: &Value, amount: i64| -> i64 {
        let grant =
            view["grants"].as_array().unwrap().iter().find(|g| g["amount"] == amount).unwrap().clone();
        let at = chrono::DateTime::parse_from_rfc3339(grant["expiresAt"].as_str().unwrap()).unwrap();
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours().div_euclid(24)
    };
    assert_eq!(days_left(&view, 8), 6, "the sign-up grant lives 7 days");
    let mut order = crate::support::creem_fixture("checkout.completed.onetime.json");
    order["id"] = json!(unique("evt"));
    order["object"]["order"]["id"] = json!(unique("ord"));
    order["object"]["metadata"]["userId"] = json!(user);
    app.creem(&order).await;
    assert_eq!(days_left(&app.credits(&user).await, 115), 29, "starter credits live 30 days");

    let subscription = unique("sub");
    for (period, start) in [(1, -60), (2, -30)] {
        let mut paid = crate::support::creem_fixture("subscription.paid.json");
        paid["id"] = json!(unique("evt"));
        paid["object"]["id"] = json!(subscription);
        paid["object"]["metadata"]["userId"] = json!(user);
        paid["object"]["last_transaction_id"] = json!(unique("tran"));
        paid["object"]["current_period_start_date"] = json!(at(chrono::Duration::days(start)));
        paid["object"]["current_period_end_date"] = json!(at(chrono::Duration::days(start + 30)));
        assert_eq!(app.creem(&paid).await.1["outcome"], "accepted", "period {period}");
    }
    // 8 + 115 + the second period's 355 + at most 100 carried over from the first.
    let view = app.credits(&user).await;
    assert_eq!(figures(&view).0, 8 + 115 + 355 + 100);
    assert_eq!(grant_remaining(&view, 355), vec![100, 355]);
    app.assert_consistent().await;
}
both!(configured_lifetimes_validity_and_subscription_rollover);

async fn a_grant_near_its_expiry_is_announced_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("soon");
    app.credits(&user).await;
    add(&app, &user, json!({"amount": 12, "expiresAt": at(chrono::Duration::days(1))})).await;
    add(&app, &user, json!({"amount": 13, "expiresAt": at(chrono::Duration::days(20))})).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let view = app.credits(&user).await;
    let expiring: Vec<&Value> =
        view["notices"].as_array().unwrap().iter().filter(|n| n["type"] == "credits.expiring").collect();
    assert_eq!(expiring.len(), 1, "only the grant within three days, once: {}", view["notices"]);
    assert_eq!(expiring[0]["data"]["amount"], 12);
}
both!(a_grant_near_its_expiry_is_announced_once);
