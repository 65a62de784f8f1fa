//! Attacks: cross-site requests riding on a signed-in browser's cookies
//! (contract §8). Each is refused with 403 before anything changes, and no
//! cookie is set.

use crate::both;
use crate::support::{set_cookies, sign, token, unique, Backend, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

const EVIL: &str = "https://evil.example";

/// A deduct posted with `cookie` and the given Origin/Referer headers.
async fn cookie_deduct(app: &TestApp, cookie: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = app.client.post(app.url("/api/credits")).header("cookie", cookie);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.json(&json!({"action": "deduct", "amount": 2})).send().await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

async fn a_cross_site_spend_with_the_clerk_session_cookie_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("victim");
    let cookie = format!("__session={}", token(&user));
    assert_eq!(app.credits(&user).await["credits"]["remaining"], 8);

    for headers in
        [vec![("origin", EVIL)], vec![("referer", "https://evil.example/page")], vec![("origin", "null")]]
    {
        let (status, body) = cookie_deduct(&app, &cookie, &headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    let own = app.base.clone();
    let (status, body) = cookie_deduct(&app, &cookie, &[("origin", own.as_str())]).await;
    assert_eq!(status, StatusCode::OK, "our own pages may spend: {body}");
    // A bearer token is no cookie: another site cannot make a browser send it.
    let bearer = app
        .client
        .post(app.url("/api/credits"))
        .bearer_auth(token(&user))
        .header("origin", EVIL)
        .json(&json!({"action": "deduct", "amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);
    let view = app.credits(&user).await;
    assert_eq!((view["credits"]["remaining"].as_i64(), view["credits"]["used"].as_i64()), (Some(5), Some(3)));
    app.assert_consistent().await;
}
both!(a_cross_site_spend_with_the_clerk_session_cookie_is_refused);

async fn only_the_public_url_and_authorized_parties_count_as_this_site(backend: Backend) {
    let partner = "https://partner.example";
    let app = TestApp::spawn_with(
        backend,
        &[
            ("CREDITS_PUBLIC_URL", "https://app.example.com".into()),
            ("CLERK_AUTHORIZED_PARTIES", format!("https://app.example.com,{partner}")),
        ],
    )
    .await;
    let user = unique("user");
    let claims = |azp: &str| json!({"sub": user, "azp": azp, "iat": crate::support::now(), "exp": crate::support::now() + 60});
    let cookie = format!("__session={}", sign(0, None, claims(partner)));
    let base = app.base.clone();
    let (status, _) = cookie_deduct(&app, &cookie, &[("origin", base.as_str())]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "with a public URL, the Host no longer vouches");
    for origin in ["https://app.example.com", "https://APP.example.com:443", partner] {
        let (status, body) = cookie_deduct(&app, &cookie, &[("origin", origin)]).await;
        assert_eq!(status, StatusCode::OK, "{origin}: {body}");
    }
    let (status, _) = cookie_deduct(&app, &cookie, &[("origin", "http://app.example.com")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another scheme is another site");
}
both!(only_the_public_url_and_authorized_parties_count_as_this_site);

async fn a_cross_site_local_spend_is_refused_even_with_the_csrf_token(backend: Backend) {
    let app = TestApp::spawn_local(backend, &[]).await;
    let browser = app.sign_up_local(&format!("{}@example.com", unique("v")), "correct horse").await;
    let (status, _) =
        cookie_deduct(&app, &browser.cookie, &[("origin", EVIL), ("x-csrf-token", browser.csrf.as_str())])
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = cookie_deduct(&app, &browser.cookie, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no origin and no CSRF token");
    let (_, view) = app.credits_by_cookie(&browser.cookie).await;
    assert_eq!(view["credits"]["remaining"], 8, "nothing was spent");
}
both!(a_cross_site_local_spend_is_refused_even_with_the_csrf_token);

/// Login CSRF: another site's form signs the victim into the attacker's
/// account, so the victim's later purchases go to the attacker.
async fn a_cross_site_sign_in_or_sign_up_form_is_refused_and_sets_no_cookie(backend: Backend) {
    let app = TestApp::spawn_local(backend, &[]).await;
    let attacker = format!("{}@example.com", unique("attacker"));
    app.sign_up_local(&attacker, "attacker pass").await;
    let users = app.count("local_users").await;
    for (path, email) in [
        ("/api/auth/sign-in", attacker.clone()),
        ("/api/auth/sign-up", format!("{}@example.com", unique("new"))),
    ] {
        let response = app
            .client
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html")
            .header("origin", EVIL)
            .body(format!("email={}&password=attacker+pass", email.replace('@', "%40")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(set_cookies(&response).is_empty(), "{path} set a cookie");
    }
    assert_eq!(app.count("local_users").await, users, "no account was made");
    let own = app
        .client
        .post(app.url("/api/auth/sign-in"))
        .header("origin", app.base.as_str())
        .json(&json!({"email": attacker, "password": "attacker pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK, "our own sign-in form works");
}
both!(a_cross_site_sign_in_or_sign_up_form_is_refused_and_sets_no_cookie);
