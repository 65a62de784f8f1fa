//! `Idempotency-Key` on `POST /api/credits`.

use crate::both;
use crate::support::{figures, token, unique, Backend, TestApp};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn a_replay_returns_the_first_response_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("user");
    app.set_balance(&user, 50).await;
    let bearer = token(&user);
    let body = json!({"action": "deduct", "amount": 10, "reason": "video 1"});
    let first = app.post_json("/api/credits", Some(&bearer), &body, Some("video-1")).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let replay = app.post_json("/api/credits", Some(&bearer), &body, Some("video-1")).await;
    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);
    assert_eq!(app.credits(&user).await["credits"]["remaining"], 40);
    // Another user's identical key is their own.
    let other = unique("other");
    app.set_balance(&other, 50).await;
    let response = app.post_json("/api/credits", Some(&token(&other)), &body, Some("video-1")).await;
    assert!(response.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.credits(&other).await["credits"]["remaining"], 40);
}
both!(a_replay_returns_the_first_response_and_changes_nothing);

async fn the_same_key_with_another_body_is_a_409(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("user");
    app.set_balance(&user, 50).await;
    let bearer = token(&user);
    let first = json!({"action": "deduct", "amount": 10});
    let response = app.post_json("/api/credits", Some(&bearer), &first, Some("k1")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second = json!({"action": "deduct", "amount": 20});
    let response = app.post_json("/api/credits", Some(&bearer), &second, Some("k1")).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "idempotency_conflict");
    assert_eq!(app.credits(&user).await["credits"]["remaining"], 40);
}
both!(the_same_key_with_another_body_is_a_409);

async fn concurrent_requests_with_one_key_take_effect_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("user");
    app.set_balance(&user, 100).await;
    let bearer = token(&user);
    let body = json!({"action": "deduct", "amount": 10});
    let requests = (0..20).map(|_| app.post_json("/api/credits", Some(&bearer), &body, Some("once")));
    let responses = join_all(requests).await;
    let mut fresh = 0;
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
        if response.headers().get("idempotent-replayed").is_none() {
            fresh += 1;
        }
        assert_eq!(response.json::<Value>().await.unwrap()["credits"]["remaining"], 90);
    }
    assert_eq!(fresh, 1);
    assert_eq!(figures(&app.credits(&user).await).0, 90);
    app.assert_consistent().await;
}
both!(concurrent_requests_with_one_key_take_effect_once);

async fn a_refused_request_leaves_its_key_free_and_long_keys_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("user");
    app.credits(&user).await;
    let bearer = token(&user);
    let body = json!({"action": "deduct", "amount": 10});
    let response = app.post_json("/api/credits", Some(&bearer), &body, Some("retry-me")).await;
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    app.set_balance(&user, 10).await;
    let response = app.post_json("/api/credits", Some(&bearer), &body, Some("retry-me")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.credits(&user).await["credits"]["remaining"], 0);

    let long_key = "k".repeat(256);
    let response = app.post_json("/api/credits", Some(&bearer), &body, Some(&long_key)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let ok_key = "k".repeat(255);
    let add = json!({"action": "deduct", "amount": 1});
    app.set_balance(&user, 1).await;
    let response = app.post_json("/api/credits", Some(&bearer), &add, Some(&ok_key)).await;
    assert_eq!(response.status(), StatusCode::OK);
}
both!(a_refused_request_leaves_its_key_free_and_long_keys_are_refused);
