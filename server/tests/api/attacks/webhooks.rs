//! Attacks on the webhook endpoints: floods of forged or unparseable
//! deliveries must be refused without growing storage without bound.

use crate::both;
use crate::support::{
    figures, token, unique, Backend, TestApp, ADMIN, CREEM_SECRET, STANDARD_PRODUCT, STARTER_PRODUCT,
};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// Rejected deliveries kept as a sample (the newest); the rest are only counted.
const SAMPLE: i64 = 100;

/// The test config (the fixtures' products) with the webhook rate limit
/// lifted, so that a flood from one address reaches the endpoints.
fn flood_config() -> String {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join("credits-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("flood-config-{}.toml", std::process::id()));
        let text = format!(
            "[[plans]]\nname = \"starter\"\ncreem_product_id = \"{STARTER_PRODUCT}\"\n\
             [[plans]]\nname = \"standard\"\ncreem_product_id = \"{STANDARD_PRODUCT}\"\n\
             [[plans]]\nname = \"premium\"\ncreem_product_id = \"prod_premium\"\n\
             [rate_limits]\nwebhooks = {{ per_minute = 1000000, burst = 1000000 }}\n"
        );
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    })
    .clone()
}

async fn flood_app(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, &[("CREDITS_CONFIG", flood_config())]).await
}

/// A checkout for `user`, padded to 64 KiB (the largest body the server takes).
fn padded_checkout(user: &str) -> Vec<u8> {
    let mut event = crate::support::creem_fixture("checkout.completed.onetime.json");
    event["id"] = json!(unique("evt"));
    event["object"]["order"]["id"] = json!(unique("ord"));
    event["object"]["metadata"]["userId"] = json!(user);
    let mut body = serde_json::to_vec(&event).unwrap();
    body.resize(64 * 1024, b' ');
    body
}

/// Sends `count` posts built by `post`, 16 at a time; every answer must be `expected`.
async fn flood(count: usize, expected: StatusCode, post: impl Fn(usize) -> reqwest::RequestBuilder) {
    let statuses: Vec<StatusCode> = futures::stream::iter((0..count).map(|i| post(i).send()))
        .buffer_unordered(16)
        .map(|response| response.unwrap().status())
        .collect()
        .await;
    assert!(
        statuses.iter().all(|status| *status == expected),
        "{:?}",
        statuses.iter().find(|s| **s != expected)
    );
}

/// `GET /api/admin/webhooks`: the deliveries listed and the rejection counts by (provider, reason).
async fn admin_log(app: &TestApp) -> (Vec<Value>, Vec<(String, String, i64)>) {
    let log: Value =
        app.get("/api/admin/webhooks?limit=500", Some(&token(ADMIN))).await.json().await.unwrap();
    let counts = log["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["provider"].as_str().unwrap().into(),
                row["reason"].as_str().unwrap().into(),
                row["count"].as_i64().unwrap(),
            )
        })
        .collect();
    (log["deliveries"].as_array().unwrap().clone(), counts)
}

async fn forged_webhooks_are_counted_not_stored(backend: Backend) {
    let app = flood_app(backend).await;
    let user = unique("victim");
    let before = figures(&app.credits(&user).await);
    let entries = app.count("ledger_entries").await;
    let body = padded_checkout(&user);
    flood(500, StatusCode::UNAUTHORIZED, |i| {
        app.client
            .post(app.url("/api/webhooks/creem"))
            .header("creem-signature", format!("{i:064x}"))
            .body(body.clone())
    })
    .await;
    flood(50, StatusCode::UNAUTHORIZED, |i| {
        app.client
            .post(app.url("/api/webhooks/clerk"))
            .header("svix-id", format!("msg_{i}"))
            .header("svix-timestamp", crate::support::now().to_string())
            .header("svix-signature", "v1,Zm9yZ2Vk")
            .body(vec![0xFF; 64 * 1024])
    })
    .await;

    assert_eq!(app.count("webhook_deliveries").await, SAMPLE, "only the newest rejected deliveries are kept");
    let (deliveries, counts) = admin_log(&app).await;
    assert_eq!(
        counts,
        [("clerk".into(), "bad_signature".into(), 50), ("creem".into(), "bad_signature".into(), 500)]
    );
    assert_eq!(deliveries.len() as i64, SAMPLE);
    for delivery in &deliveries {
        assert_eq!(delivery["outcome"], "rejected");
        let prefix = delivery["bodyPrefix"].as_str().expect("a sampled delivery shows how its body began");
        assert!(prefix.len() <= 1024, "{} bytes kept", prefix.len());
        assert!(delivery["eventId"].is_null(), "no unverified id is stored");
    }
    assert_eq!(app.count("webhook_events").await, 0);
    assert_eq!(app.count("payments").await, 0);
    assert_eq!(app.count("ledger_entries").await, entries);
    assert_eq!(figures(&app.credits(&user).await), before, "nothing was credited");
    app.assert_consistent().await;

    // Genuine deliveries are still accepted and logged in full.
    let event: Value = serde_json::from_slice(&body).unwrap();
    let (status, outcome) = app.creem(&event).await;
    assert_eq!((status, outcome["outcome"].as_str()), (StatusCode::OK, Some("accepted")));
    assert_eq!(app.count("webhook_deliveries").await, SAMPLE + 1);
    assert_eq!(figures(&app.credits(&user).await).3, 115);
}
both!(forged_webhooks_are_counted_not_stored);

async fn signed_garbage_is_counted_as_unparseable(backend: Backend) {
    let app = flood_app(backend).await;
    flood(150, StatusCode::BAD_REQUEST, |i| {
        let body = format!("{{\"id\": {i}, \"garbage\": \"{}\"}}", "x".repeat(4000));
        let signature = credits::webhooks::creem::sign(CREEM_SECRET, body.as_bytes());
        app.client.post(app.url("/api/webhooks/creem")).header("creem-signature", signature).body(body)
    })
    .await;
    assert_eq!(app.count("webhook_deliveries").await, SAMPLE);
    let (deliveries, counts) = admin_log(&app).await;
    assert_eq!(counts, [("creem".into(), "unparseable".into(), 150)]);
    assert!(deliveries.iter().all(|d| d["reason"].as_str().is_some_and(|reason| reason.len() <= 256)));
    assert_eq!(app.count("webhook_events").await, 0);
    app.assert_consistent().await;
}
both!(signed_garbage_is_counted_as_unparseable);
