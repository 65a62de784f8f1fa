//! Local accounts (no Clerk configured): sign-up, sign-in, sign-out, CSRF,
//! promotion to admin from the CLI, and the default sign-in rate limit.

use crate::both;
use crate::support::{unique, Backend, TestApp};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

async fn local_app(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, &[("CLERK_JWT_KEY", String::new())]).await
}

/// The `name=value` pairs of a response's Set-Cookie headers, and their attributes.
fn cookies(response: &Response) -> Vec<String> {
    response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

fn cookie_value(cookies: &[String], name: &str) -> String {
    let prefix = format!("{name}=");
    let cookie = cookies.iter().find(|c| c.starts_with(&prefix)).unwrap();
    cookie[prefix.len()..].split(';').next().unwrap().to_string()
}

async fn local_accounts_sign_up_in_and_out_with_csrf_protection(backend: Backend) {
    let app = local_app(backend).await;
    let email = format!("{}@example.com", unique("ada"));
    let signed_up = app
        .post_json("/api/auth/sign-up", None, &json!({"email": email, "password": "correct horse"}), None)
        .await;
    assert_eq!(signed_up.status(), StatusCode::OK);
    let set = cookies(&signed_up);
    let session_cookie = set.iter().find(|c| c.starts_with("credits_session=")).unwrap();
    assert!(
        session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"),
        "{session_cookie}"
    );
    let session = cookie_value(&set, "credits_session");
    let csrf = cookie_value(&set, "credits_csrf");
    let cookie = format!("credits_session={session}; credits_csrf={csrf}");

    let view: Value = app
        .client
        .get(app.url("/api/credits"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["credits"]["remaining"], 8, "a new local user gets the initial grant");
    let deduct = json!({"action": "deduct", "amount": 3});
    let forged = app
        .client
        .post(app.url("/api/credits"))
        .header("cookie", &cookie)
        .json(&deduct)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "a cookie alone cannot spend (CSRF)");
    let cross_site = app
        .client
        .post(app.url("/api/credits"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .json(&deduct)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let with_token = app
        .client
        .post(app.url("/api/credits"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&deduct)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), StatusCode::OK);
    let host = app.base.trim_start_matches("http://").to_string();
    let same_origin = app
        .client
        .post(app.url("/api/credits"))
        .header("cookie", &cookie)
        .header("origin", format!("http://{host}"))
        .json(&deduct)
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), StatusCode::OK);
    let view: Value = app
        .client
        .get(app.url("/api/credits"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["credits"]["remaining"], 2);

    let again = app
        .post_json(
            "/api/auth/sign-up",
            None,
            &json!({"email": email.to_uppercase(), "password": "another one"}),
            None,
        )
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "one account per email");
    let short = app
        .post_json("/api/auth/sign-up", None, &json!({"email": "b@example.com", "password": "short"}), None)
        .await;
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    let wrong = app
        .post_json("/api/auth/sign-in", None, &json!({"email": email, "password": "wrong horse"}), None)
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let form = app
        .client
        .post(app.url("/api/auth/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email={}&password=correct+horse", email.replace('@', "%40")))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK, "HTML forms sign in too");

    let out = app.client.post(app.url("/api/auth/sign-out")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    let after = app.client.get(app.url("/api/credits")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "the session ended");

    // The operator makes the account an admin from the CLI.
    let promoted = std::process::Command::new(env!("CARGO_BIN_EXE_credits"))
        .args(["promote", "--email", &email])
        .env("DATABASE_URL", app.service.db().url())
        .env_remove("CREDITS_CONFIG")
        .output()
        .unwrap();
    assert!(promoted.status.success(), "{}", String::from_utf8_lossy(&promoted.stderr));
    let signed_in = app
        .post_json("/api/auth/sign-in", None, &json!({"email": email, "password": "correct horse"}), None)
        .await;
    let set = cookies(&signed_in);
    let (session, csrf) = (cookie_value(&set, "credits_session"), cookie_value(&set, "credits_csrf"));
    let add = app
        .client
        .post(app.url("/api/credits"))
        .header("cookie", format!("credits_session={session}"))
        .header("x-csrf-token", csrf)
        .json(&json!({"action": "add", "amount": 10, "reason": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(add.status(), StatusCode::OK);
    assert_eq!(add.json::<Value>().await.unwrap()["credits"]["remaining"], 12);
}
both!(local_accounts_sign_up_in_and_out_with_csrf_protection);

async fn sign_in_is_rate_limited_by_default(backend: Backend) {
    let app = local_app(backend).await;
    let body = json!({"email": "nobody@example.com", "password": "guess guess"});
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..7 {
        let response = app.post_json("/api/auth/sign-in", None, &body, None).await;
        statuses.push(response.status());
        if let Some(value) = response.headers().get("retry-after") {
            retry_after = Some(value.to_str().unwrap().parse::<u64>().unwrap());
        }
    }
    assert_eq!(&statuses[..5], [StatusCode::UNAUTHORIZED; 5], "{statuses:?}");
    assert_eq!(&statuses[5..], [StatusCode::TOO_MANY_REQUESTS; 2]);
    assert!(retry_after.unwrap() >= 1);
    let clerk_app = TestApp::spawn(backend).await;
    let response = clerk_app.post_json("/api/auth/sign-up", None, &body, None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "no local accounts when Clerk is configured");
}
both!(sign_in_is_rate_limited_by_default);
