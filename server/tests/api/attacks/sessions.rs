//! Attacks: stolen or forgotten sessions (contract §8, issue 33). A new
//! sign-in ends the browser's old session; a session unused for
//! `SESSION_IDLE_HOURS` ends although its 30 days are not over.

use crate::both;
use crate::support::{unique, Backend, TestApp};
use credits::auth::local::SESSION_IDLE_HOURS;
use reqwest::StatusCode;
use serde_json::json;

/// A new sign-in replaces the browser's session: the cookie it had before
/// (which someone may have seen or planted) stops working.
async fn a_new_sign_in_ends_the_browsers_old_session(backend: Backend) {
    let app = TestApp::spawn_local(backend, &[]).await;
    let email = format!("{}@example.com", unique("u"));
    let old = app.sign_up_local(&email, "a long password").await;
    assert_eq!(app.credits_by_cookie(&old.cookie).await.0, StatusCode::OK);
    let again = app
        .client
        .post(app.url("/api/auth/sign-in"))
        .header("cookie", &old.cookie)
        .header("origin", app.base.as_str())
        .json(&json!({"email": email, "password": "a long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(app.credits_by_cookie(&old.cookie).await.0, StatusCode::UNAUTHORIZED, "the old session ended");
}
both!(a_new_sign_in_ends_the_browsers_old_session);

/// Moves every session's last use `hours` into the past.
async fn age_sessions(app: &TestApp, hours: i64) {
    let then = credits::db::now_ms() - hours * 3600 * 1000;
    sqlx::query("UPDATE local_sessions SET last_seen_at = $1")
        .bind(then)
        .execute(&app.service.db().pool)
        .await
        .unwrap();
}

async fn a_session_unused_past_the_idle_timeout_has_ended(backend: Backend) {
    let app = TestApp::spawn_local(backend, &[]).await;
    let browser = app.sign_up_local(&format!("{}@example.com", unique("idle")), "a long password").await;
    age_sessions(&app, SESSION_IDLE_HOURS - 1).await;
    assert_eq!(app.credits_by_cookie(&browser.cookie).await.0, StatusCode::OK, "used within the timeout");
    // That use counted: an hour and a half later it is still within the timeout.
    let seen: i64 = sqlx::query_scalar("SELECT MAX(last_seen_at) FROM local_sessions")
        .fetch_one(&app.service.db().pool)
        .await
        .unwrap();
    assert!(seen > credits::db::now_ms() - 60_000, "the request refreshed the session's last use");
    age_sessions(&app, SESSION_IDLE_HOURS + 1).await;
    assert_eq!(
        app.credits_by_cookie(&browser.cookie).await.0,
        StatusCode::UNAUTHORIZED,
        "idle past the timeout, though within its 30 days"
    );
    // The sweep deletes ended sessions.
    credits::auth::local::sweep(&app.service.db().pool, 100).await.unwrap();
    assert_eq!(app.count("local_sessions").await, 0);
}
both!(a_session_unused_past_the_idle_timeout_has_ended);
