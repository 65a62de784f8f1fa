//! `POST /api/checkout` against a fake Creem API served by the test.

use crate::both;
use crate::support::{token, unique, Backend, TestApp};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Json;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the fake Creem answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Create,
    Fail,
    Hang,
}

type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// Serves `POST /v1/checkouts` like Creem, recording what it received.
async fn fake_creem(behaviour: Behaviour) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let app = axum::Router::new().route(
        "/v1/checkouts",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let recorder = recorder.clone();
            async move {
                let key = headers.get("x-api-key").map(|v| v.to_str().unwrap().to_string());
                recorder.lock().unwrap().push((key, body.clone()));
                match behaviour {
                    Behaviour::Create => (
                        axum::http::StatusCode::OK,
                        Json(json!({"id": "ch_fake", "checkout_url": format!("https://checkout.creem.io/{}",
                            body["request_id"].as_str().unwrap())})),
                    ),
                    Behaviour::Fail => {
                        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "boom"})))
                    }
                    Behaviour::Hang => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        (axum::http::StatusCode::OK, Json(json!({})))
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

async fn a_checkout_is_created_at_creem_with_the_users_metadata(backend: Backend) {
    let (base, seen) = fake_creem(Behaviour::Create).await;
    let app = TestApp::spawn_with(backend, &[("CREEM_API_BASE", base)]).await;
    let user = unique("buyer");
    let bearer = token(&user);
    let mut urls = Vec::new();
    for _ in 0..2 {
        let response = app.post_json("/api/checkout", Some(&bearer), &json!({"plan": "starter"}), None).await;
        assert_eq!(response.status(), StatusCode::OK);
        urls.push(response.json::<Value>().await.unwrap()["checkoutUrl"].as_str().unwrap().to_string());
    }
    assert!(urls[0].starts_with("https://checkout.creem.io/"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let (key, body) = &seen[0];
    assert_eq!(key.as_deref(), Some("creem_test_key"));
    assert_eq!(body["product_id"], crate::support::STARTER_PRODUCT);
    assert_eq!(body["metadata"]["userId"], user.as_str());
    assert!(body["success_url"].as_str().unwrap().starts_with("http"));
    assert_ne!(seen[0].1["request_id"], seen[1].1["request_id"], "every checkout has its own request_id");
    assert_eq!(app.count("checkouts").await, 2);
    assert_eq!(app.credits(&user).await["credits"]["remaining"], 8, "a checkout grants nothing by itself");
}
both!(a_checkout_is_created_at_creem_with_the_users_metadata);

async fn creem_errors_and_time_outs_are_a_clear_502_that_changes_nothing(backend: Backend) {
    for behaviour in [Behaviour::Fail, Behaviour::Hang] {
        let (base, seen) = fake_creem(behaviour).await;
        let app = TestApp::spawn_with(backend, &[("CREEM_API_BASE", base)]).await;
        let bearer = token(&unique("buyer"));
        let response = app.post_json("/api/checkout", Some(&bearer), &json!({"plan": "premium"}), None).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "upstream_error");
        assert!(error["error"]["message"].as_str().unwrap().contains("nothing was charged"));
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(app.count("checkouts").await, 0);
    }
    let app = TestApp::spawn(backend).await;
    let bearer = token(&unique("buyer"));
    for body in [json!({"plan": "gold"}), json!({}), json!({"plan": "starter", "price": 1})] {
        let response = app.post_json("/api/checkout", Some(&bearer), &body, None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let anonymous = app.post_json("/api/checkout", None, &json!({"plan": "starter"}), None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
both!(creem_errors_and_time_outs_are_a_clear_502_that_changes_nothing);
