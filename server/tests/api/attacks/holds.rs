//! Attacks: holds. Who may resolve a hold (contract §3): one made with an API
//! key (or by an admin for someone else) any active API key or an admin,
//! never the user it is for; one a user made, that user, an API key or an
//! admin. Anyone else gets 403 or 404 and the hold is untouched.

use crate::both;
use crate::support::{figures, token, unique, Backend, TestApp, ADMIN};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn post(app: &TestApp, bearer: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app.post_json(path, Some(bearer), &body, None).await;
    (response.status(), response.json().await.unwrap())
}

/// A new worker API key, as `credits apikey create` makes one.
async fn worker_key(app: &TestApp) -> String {
    credits::auth::api_keys::create(&app.service.db().pool, "video worker").await.unwrap().1
}

async fn hold(app: &TestApp, bearer: &str, body: Value) -> String {
    let (status, hold) = post(app, bearer, "/api/holds", body).await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    hold["holdId"].as_str().unwrap().to_string()
}

/// Every way `bearer` could try to end hold `id`: a partial capture (resolved
/// on its own), a full capture without a key (resolved set-wise with others),
/// the same with an Idempotency-Key, and a release. Each must be refused.
async fn every_resolution_is_refused(app: &TestApp, bearer: &str, id: &str) {
    let capture = format!("/api/holds/{id}/capture");
    let release = format!("/api/holds/{id}/release");
    let attempts = [
        (capture.as_str(), json!({"amount": 1}), None),
        (capture.as_str(), json!({}), None),
        (capture.as_str(), json!({}), Some("attack-capture")),
        (release.as_str(), json!({}), None),
    ];
    for (path, body, key) in attempts {
        let response = app.post_json(path, Some(bearer), &body, key).await;
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert!(
            matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
            "{path} {body} answered {status}: {answer}"
        );
        assert!(answer["holdId"].is_null(), "a refusal shows no hold: {answer}");
    }
}

async fn a_user_cannot_capture_or_release_a_hold_a_worker_made(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("victim_of_a_cheap_video");
    app.set_balance(&user, 20).await;
    let worker = worker_key(&app).await;
    let id = hold(&app, &worker, json!({"userId": user, "amount": 10, "reason": "video"})).await;

    every_resolution_is_refused(&app, &token(&user), &id).await;
    let view = app.credits(&user).await;
    assert_eq!((figures(&view).0, view["held"].as_i64(), figures(&view).2), (10, Some(10), 0));

    // The worker's own capture still gets the whole video's price.
    let (status, captured) = post(&app, &worker, &format!("/api/holds/{id}/capture"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{captured}");
    assert_eq!((captured["status"].as_str(), captured["captured"].as_i64()), (Some("captured"), Some(10)));
    let view = app.credits(&user).await;
    assert_eq!((figures(&view).0, view["held"].as_i64(), figures(&view).2), (10, Some(0), 10));
    app.assert_consistent().await;
}
both!(a_user_cannot_capture_or_release_a_hold_a_worker_made);

async fn a_user_cannot_resolve_a_hold_an_admin_made_for_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("held_by_admin");
    app.set_balance(&user, 20).await;
    let id = hold(&app, &token(ADMIN), json!({"userId": user, "amount": 6})).await;

    every_resolution_is_refused(&app, &token(&user), &id).await;
    assert_eq!(app.credits(&user).await["held"], 6);
    let (status, released) = post(&app, &token(ADMIN), &format!("/api/holds/{id}/release"), json!({})).await;
    assert_eq!((status, released["status"].as_str()), (StatusCode::OK, Some("released")), "{released}");
    assert_eq!(figures(&app.credits(&user).await).0, 20);
    app.assert_consistent().await;
}
both!(a_user_cannot_resolve_a_hold_an_admin_made_for_it);

async fn a_worker_may_resolve_a_hold_a_user_made(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("self_holder");
    app.set_balance(&user, 30).await;
    let worker = worker_key(&app).await;
    let bearer = token(&user);
    let captured_by_worker = hold(&app, &bearer, json!({"amount": 10})).await;
    let released_by_worker = hold(&app, &bearer, json!({"amount": 5})).await;
    let captured_by_admin = hold(&app, &bearer, json!({"amount": 3})).await;
    let captured_by_user = hold(&app, &bearer, json!({"amount": 2})).await;

    let path = format!("/api/holds/{captured_by_worker}/capture");
    let (status, answer) = post(&app, &worker, &path, json!({"amount": 4})).await;
    assert_eq!((status, answer["captured"].as_i64()), (StatusCode::OK, Some(4)), "{answer}");
    let path = format!("/api/holds/{released_by_worker}/release");
    let (status, answer) = post(&app, &worker, &path, json!({})).await;
    assert_eq!((status, answer["status"].as_str()), (StatusCode::OK, Some("released")), "{answer}");
    let path = format!("/api/holds/{captured_by_admin}/capture");
    let (status, answer) = post(&app, &token(ADMIN), &path, json!({})).await;
    assert_eq!((status, answer["captured"].as_i64()), (StatusCode::OK, Some(3)), "{answer}");
    let path = format!("/api/holds/{captured_by_user}/capture");
    let (status, answer) = post(&app, &bearer, &path, json!({})).await;
    assert_eq!((status, answer["captured"].as_i64()), (StatusCode::OK, Some(2)), "{answer}");

    let view = app.credits(&user).await;
    assert_eq!((figures(&view).0, view["held"].as_i64(), figures(&view).2), (21, Some(0), 9));
    app.assert_consistent().await;
}
both!(a_worker_may_resolve_a_hold_a_user_made);

async fn another_user_cannot_touch_a_hold(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, stranger) = (unique("owner"), unique("stranger"));
    app.set_balance(&owner, 20).await;
    app.credits(&stranger).await;
    let worker = worker_key(&app).await;
    let own = hold(&app, &token(&owner), json!({"amount": 4})).await;
    let workers = hold(&app, &worker, json!({"userId": owner, "amount": 5})).await;

    for id in [&own, &workers] {
        every_resolution_is_refused(&app, &token(&stranger), id).await;
    }
    let view = app.credits(&owner).await;
    assert_eq!((figures(&view).0, view["held"].as_i64()), (11, Some(9)));
    assert_eq!(figures(&app.credits(&stranger).await), (8, 8, 0, 0, 8));

    let (status, _) = post(&app, &token(&owner), &format!("/api/holds/{own}/capture"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(&app, &worker, &format!("/api/holds/{workers}/capture"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let view = app.credits(&owner).await;
    assert_eq!((figures(&view).0, view["held"].as_i64(), figures(&view).2), (11, Some(0), 9));
    app.assert_consistent().await;
}
both!(another_user_cannot_touch_a_hold);
