//! Attacks: forwarded headers from clients (contract §8). `X-Forwarded-*`
//! is believed only from `CREDITS_TRUSTED_PROXIES`; cookies are `Secure`
//! whenever the browser is on https.

use crate::both;
use crate::support::{set_cookies, unique, Backend, TestApp};
use reqwest::StatusCode;
use serde_json::json;

/// The Set-Cookie headers of a sign-up sent with `headers`.
async fn sign_up_cookies(app: &TestApp, headers: &[(&str, &str)]) -> Vec<String> {
    let mut request = app.client.post(app.url("/api/auth/sign-up"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let email = format!("{}@example.com", unique("p"));
    let response =
        request.json(&json!({"email": email, "password": "a long password"})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    set_cookies(&response)
}

fn all_secure(cookies: &[String]) -> bool {
    !cookies.is_empty() && cookies.iter().all(|cookie| cookie.contains("; Secure"))
}

async fn forwarded_proto_counts_only_from_a_trusted_proxy(backend: Backend) {
    let open = TestApp::spawn_local(backend, &[]).await;
    let cookies = sign_up_cookies(&open, &[("x-forwarded-proto", "https")]).await;
    assert!(
        !cookies.iter().any(|cookie| cookie.contains("Secure")),
        "an untrusted peer's header: {cookies:?}"
    );

    let proxied = TestApp::spawn_local(backend, &[("CREDITS_TRUSTED_PROXIES", "127.0.0.0/8".into())]).await;
    assert!(all_secure(&sign_up_cookies(&proxied, &[("x-forwarded-proto", "https")]).await));
    assert!(!all_secure(&sign_up_cookies(&proxied, &[("x-forwarded-proto", "http")]).await));
}
both!(forwarded_proto_counts_only_from_a_trusted_proxy);

async fn an_https_public_url_makes_every_cookie_secure(backend: Backend) {
    let app =
        TestApp::spawn_local(backend, &[("CREDITS_PUBLIC_URL", "https://app.example.com".into())]).await;
    let cookies = sign_up_cookies(&app, &[("origin", "https://app.example.com")]).await;
    assert!(all_secure(&cookies), "{cookies:?}");
}
both!(an_https_public_url_makes_every_cookie_secure);
