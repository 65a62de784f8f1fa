//! Clerk session tokens: every way a token can be wrong is a 401 that changes nothing.

use crate::both;
use crate::support::{key, now, sign, token, unique, Backend, TestApp, ADMIN};
use axum::routing::get;
use axum::Json;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

async fn status_of(app: &TestApp, bearer: Option<&str>) -> StatusCode {
    let body = json!({"action": "deduct", "amount": 1});
    app.post_json("/api/credits", bearer, &body, None).await.status()
}

async fn bad_tokens_are_refused_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sub = unique("user");
    let t = now();
    let claims = |extra: Value| {
        let mut base = json!({"sub": sub, "iat": t, "exp": t + 60});
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        base
    };
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(key(0).public_pem.as_bytes()),
    )
    .unwrap();
    let cases = [
        ("missing", None),
        ("garbage", Some("not.a.token".to_string())),
        ("signed by another key", Some(sign(1, None, claims(json!({}))))),
        ("expired beyond the skew", Some(sign(0, None, claims(json!({"exp": t - 10}))))),
        ("not valid yet", Some(sign(0, None, claims(json!({"nbf": t + 30}))))),
        ("issued in the future", Some(sign(0, None, claims(json!({"iat": t + 30}))))),
        ("without iat", Some(sign(0, None, json!({"sub": sub, "exp": t + 60})))),
        ("without exp", Some(sign(0, None, json!({"sub": sub, "iat": t})))),
        ("HS256 with the public key as secret", Some(hs256)),
    ];
    for (case, bearer) in &cases {
        assert_eq!(status_of(&app, bearer.as_deref()).await, StatusCode::UNAUTHORIZED, "{case}");
    }
    let response = app.get("/api/credits", Some("x.y.z")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "unauthenticated");
    assert_eq!(app.count("accounts").await, 0, "refused requests create nothing");

    let within_skew = sign(0, None, claims(json!({"exp": t - 3, "nbf": t + 3, "iat": t + 3})));
    assert_eq!(app.get("/api/credits", Some(&within_skew)).await.status(), StatusCode::OK);
    let cookie =
        app.client.get(app.url("/api/credits")).header("cookie", format!("__session={}", token(&sub)));
    assert_eq!(cookie.send().await.unwrap().status(), StatusCode::OK);
}
both!(bad_tokens_are_refused_and_change_nothing);

async fn issuer_and_authorized_parties_are_enforced_when_configured(backend: Backend) {
    let extra = [
        ("CLERK_ISSUER", "https://clerk.example.com".to_string()),
        ("CLERK_AUTHORIZED_PARTIES", "https://app.example.com, https://admin.example.com".to_string()),
    ];
    let app = TestApp::spawn_with(backend, &extra).await;
    let t = now();
    let with = |iss: Option<&str>, azp: Option<&str>| {
        let mut claims = json!({"sub": "user_scoped", "iat": t, "exp": t + 60});
        if let Some(iss) = iss {
            claims["iss"] = json!(iss);
        }
        if let Some(azp) = azp {
            claims["azp"] = json!(azp);
        }
        sign(0, None, claims)
    };
    let good = (Some("https://clerk.example.com"), Some("https://app.example.com"));
    assert_eq!(app.get("/api/credits", Some(&with(good.0, good.1))).await.status(), StatusCode::OK);
    let admin_party = with(good.0, Some("https://admin.example.com"));
    assert_eq!(app.get("/api/credits", Some(&admin_party)).await.status(), StatusCode::OK);
    for (case, bearer) in [
        ("wrong issuer", with(Some("https://evil.example.com"), good.1)),
        ("no issuer", with(None, good.1)),
        ("wrong azp", with(good.0, Some("https://evil.example.com"))),
        ("no azp", with(good.0, None)),
    ] {
        assert_eq!(app.get("/api/credits", Some(&bearer)).await.status(), StatusCode::UNAUTHORIZED, "{case}");
    }
}
both!(issuer_and_authorized_parties_are_enforced_when_configured);

/// A JWKS endpoint like Clerk's, counting how often it is fetched.
async fn serve_jwks(fetches: Arc<AtomicUsize>) -> String {
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "key-a", "use": "sig", "alg": "RS256",
        "n": key(0).n, "e": key(0).e}]});
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            fetches.fetch_add(1, Ordering::SeqCst);
            let jwks = jwks.clone();
            async move { Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn jwks_keys_are_fetched_once_and_cached(backend: Backend) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = serve_jwks(fetches.clone()).await;
    let app =
        TestApp::spawn_with(backend, &[("CLERK_JWT_KEY", String::new()), ("CLERK_JWKS_URL", url)]).await;
    let t = now();
    let claims = json!({"sub": ADMIN, "iat": t, "exp": t + 60});
    let good = sign(0, Some("key-a"), claims.clone());
    for _ in 0..10 {
        assert_eq!(app.get("/api/credits", Some(&good)).await.status(), StatusCode::OK);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the key set is cached");
    let unknown_kid = sign(1, Some("key-b"), claims.clone());
    assert_eq!(app.get("/api/credits", Some(&unknown_kid)).await.status(), StatusCode::UNAUTHORIZED);
    let wrong_key_known_kid = sign(1, Some("key-a"), claims.clone());
    assert_eq!(app.get("/api/credits", Some(&wrong_key_known_kid)).await.status(), StatusCode::UNAUTHORIZED);
    let no_kid = sign(0, None, claims);
    assert_eq!(app.get("/api/credits", Some(&no_kid)).await.status(), StatusCode::UNAUTHORIZED);
}
both!(jwks_keys_are_fetched_once_and_cached);
