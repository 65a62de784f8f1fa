//! Attacks: password guessing and sign-in floods (contract §8). Guessing is
//! throttled per client and per account; one client's failures never lock
//! other clients out; hashing work is bounded.

use crate::both;
use crate::support::{unique, Backend, TestApp};
use reqwest::StatusCode;
use serde_json::json;

/// A local server behind a trusted proxy at 127.0.0.1 (the test client).
async fn behind_proxy(backend: Backend) -> TestApp {
    TestApp::spawn_local(backend, &[("CREDITS_TRUSTED_PROXIES", "127.0.0.1".into())]).await
}

async fn sign_in_from(app: &TestApp, client: &str, email: &str, password: &str) -> StatusCode {
    app.client
        .post(app.url("/api/auth/sign-in"))
        .header("x-forwarded-for", client)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn guessing_one_account_from_many_addresses_is_refused(backend: Backend) {
    let app = behind_proxy(backend).await;
    let victim = format!("{}@example.com", unique("victim"));
    app.sign_up_local(&victim, "the real password").await;
    let mut statuses = Vec::new();
    for guess in 0..12 {
        statuses.push(
            sign_in_from(&app, &format!("198.51.100.{guess}"), &victim, &format!("guess {guess:04}")).await,
        );
    }
    assert_eq!(&statuses[..10], [StatusCode::UNAUTHORIZED; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], [StatusCode::TOO_MANY_REQUESTS; 2], "the account's budget is spent");
    // Other accounts, from the same addresses, are not locked out.
    let other = format!("{}@example.com", unique("other"));
    app.sign_up_local(&other, "other password").await;
    assert_eq!(sign_in_from(&app, "198.51.100.3", &other, "other password").await, StatusCode::OK);
}
both!(guessing_one_account_from_many_addresses_is_refused);

async fn behind_a_proxy_one_clients_failures_do_not_lock_out_the_others(backend: Backend) {
    let app = behind_proxy(backend).await;
    let email = format!("{}@example.com", unique("user"));
    app.sign_up_local(&email, "right password").await;
    // The attacker's address is the right-most one the proxy did not add;
    // what it wrote itself ("1.1.1.x, ") changes nothing.
    let mut statuses = Vec::new();
    for attempt in 0..7 {
        let forged = format!("1.1.1.{attempt}, 203.0.113.66");
        statuses.push(sign_in_from(&app, &forged, &format!("{attempt}@example.com"), "wrong password").await);
    }
    assert_eq!(&statuses[5..], [StatusCode::TOO_MANY_REQUESTS; 2], "{statuses:?}");
    assert_eq!(sign_in_from(&app, "203.0.113.77", &email, "right password").await, StatusCode::OK);
}
both!(behind_a_proxy_one_clients_failures_do_not_lock_out_the_others);

async fn rotating_addresses_within_one_ipv6_slash_64_does_not_reset_the_limit(backend: Backend) {
    let app = behind_proxy(backend).await;
    let mut statuses = Vec::new();
    for attempt in 0..7 {
        let address = format!("2001:db8:5:7:{attempt:x}::1");
        statuses
            .push(sign_in_from(&app, &address, &format!("{attempt}@example.com"), "wrong password").await);
    }
    assert_eq!(&statuses[5..], [StatusCode::TOO_MANY_REQUESTS; 2], "{statuses:?}");
    assert_eq!(
        sign_in_from(&app, "2001:db8:5:8::1", "x@example.com", "wrong password").await,
        StatusCode::UNAUTHORIZED,
        "the next /64 is another client"
    );
}
both!(rotating_addresses_within_one_ipv6_slash_64_does_not_reset_the_limit);

async fn without_trusted_proxies_forwarded_for_is_ignored(backend: Backend) {
    let app = TestApp::spawn_local(backend, &[]).await;
    let mut statuses = Vec::new();
    for attempt in 0..7 {
        statuses.push(
            sign_in_from(&app, &format!("198.51.100.{attempt}"), "x@example.com", "wrong password").await,
        );
    }
    assert_eq!(&statuses[5..], [StatusCode::TOO_MANY_REQUESTS; 2], "{statuses:?}");
}
both!(without_trusted_proxies_forwarded_for_is_ignored);

/// A flood of sign-ins from many clients, each for another account, gets
/// answers (refusals included) and leaves the server serving: hashing runs
/// with bounded concurrency, the rest waits in a bounded queue or is refused.
async fn a_sign_in_flood_is_answered_within_bounds(backend: Backend) {
    let app = behind_proxy(backend).await;
    let attempts = (0..120).map(|n| {
        let app = &app;
        async move {
            let client = format!("10.9.{}.{}", n / 250, n % 250);
            let response = app
                .client
                .post(app.url("/api/auth/sign-in"))
                .header("x-forwarded-for", client)
                .json(&json!({"email": format!("{n}@example.com"), "password": "wrong password"}))
                .send()
                .await
                .unwrap();
            let retry = response.headers().get("retry-after").is_some();
            (response.status(), retry)
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    for (status, retry) in &answers {
        assert!([StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE].contains(status), "{status}");
        assert_eq!(*status == StatusCode::SERVICE_UNAVAILABLE, *retry, "503 carries Retry-After");
    }
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status(), StatusCode::OK);
}
both!(a_sign_in_flood_is_answered_within_bounds);
