//! `POST /api/webhooks/clerk`: Svix signatures and the user lifecycle.

use crate::both;
use crate::support::{clerk_fixture, figures, now, token, unique, Backend, TestApp, CLERK_SECRET};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn created(user: &str, email: &str) -> Value {
    let mut event = clerk_fixture("user.created.json");
    event["data"]["id"] = json!(user);
    event["data"]["email_addresses"][0]["email_address"] = json!(email);
    event
}

async fn the_user_lifecycle_creates_updates_and_closes_the_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("clerk");
    let event = created(&user, "mei@example.com");
    let message = unique("msg");
    let (status, body) = app.clerk(&message, &event, now()).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("accepted")));
    let (status, body) = app.clerk(&message, &event, now()).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("duplicate")));
    let (status, _) = app.clerk(&unique("msg"), &event, now()).await;
    assert_eq!(status, StatusCode::OK, "a replay under a new message id");
    let synced: Value = app.get("/api/user/sync", Some(&token(&user))).await.json().await.unwrap();
    assert_eq!(synced["email"], "mei@example.com");
    assert_eq!(synced["name"], "Mei Lin");
    assert_eq!(figures(&synced), (8, 8, 0, 0, 8), "one initial grant");

    let mut updated = created(&user, "mei@lin.dev");
    updated["type"] = json!("user.updated");
    app.clerk(&unique("msg"), &updated, now()).await;
    let synced: Value = app.get("/api/user/sync", Some(&token(&user))).await.json().await.unwrap();
    assert_eq!(synced["email"], "mei@lin.dev");

    let mut deleted = clerk_fixture("user.deleted.json");
    deleted["data"]["id"] = json!(user);
    let (status, _) = app.clerk(&unique("msg"), &deleted, now()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, error) = app.change(&user, json!({"action": "deduct", "amount": 1})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a closed account cannot spend");
    assert!(error["error"]["message"].as_str().unwrap().contains("closed"));
    let view = app.credits(&user).await;
    assert_eq!(view["canGenerateVideo"], false);
    assert_eq!(app.all_entries(&user).await.len(), 1, "the ledger is kept");
    app.assert_consistent().await;
}
both!(the_user_lifecycle_creates_updates_and_closes_the_account);

async fn svix_signatures_and_the_five_minute_tolerance_are_enforced(backend: Backend) {
    use credits::webhooks::clerk::{secret_key, sign};
    let app = TestApp::spawn(backend).await;
    let key = secret_key(CLERK_SECRET).unwrap();
    let other_key = secret_key("whsec_b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXk=").unwrap();
    let send = |id: String, timestamp: i64, signature: String, prefix: &'static str, body: Vec<u8>| {
        app.client
            .post(app.url("/api/webhooks/clerk"))
            .header(format!("{prefix}-id"), id)
            .header(format!("{prefix}-timestamp"), timestamp.to_string())
            .header(format!("{prefix}-signature"), signature)
            .body(body)
            .send()
    };
    let t = now();
    let fresh = |user: &str| serde_json::to_vec(&created(user, "x@example.com")).unwrap();
    let cases = [
        ("wrong secret", t, true),
        ("six minutes old", t - 360, false),
        ("six minutes ahead", t + 360, false),
    ];
    for (case, timestamp, wrong_key) in cases {
        let body = fresh(&unique("u"));
        let id = unique("msg");
        let signature = sign(if wrong_key { &other_key } else { &key }, &id, timestamp, &body);
        let response = send(id, timestamp, signature, "svix", body).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
    }
    let body = fresh("u_missing");
    let response = app.client.post(app.url("/api/webhooks/clerk")).body(body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "missing headers");
    assert_eq!(app.count("accounts").await, 0, "refused deliveries change nothing");

    let body = fresh(&unique("u"));
    let id = unique("msg");
    let within = t - 290;
    let several = format!("v1,AAAA {} v1,BBBB", sign(&key, &id, within, &body));
    assert_eq!(send(id, within, several, "svix", body).await.unwrap().status(), StatusCode::OK);
    let body = fresh(&unique("u"));
    let id = unique("msg");
    let signature = sign(&key, &id, t, &body);
    assert_eq!(
        send(id, t, signature, "webhook", body).await.unwrap().status(),
        StatusCode::OK,
        "webhook-* headers"
    );
    assert_eq!(app.count("accounts").await, 2);
}
both!(svix_signatures_and_the_five_minute_tolerance_are_enforced);
