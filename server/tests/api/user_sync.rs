//! `GET/POST /api/user/sync`.

use crate::both;
use crate::support::{figures, now, sign, unique, Backend, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn token_with_profile(sub: &str, email: &str, name: &str) -> String {
    sign(0, None, json!({"sub": sub, "iat": now(), "exp": now() + 60, "email": email, "name": name}))
}

async fn sync_creates_once_and_keeps_the_profile_current(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("synced");
    let bearer = token_with_profile(&user, "ada@example.com", "Ada");
    let first = app.client.post(app.url("/api/user/sync")).bearer_auth(&bearer).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["created"], true);
    assert_eq!(first["user"]["userId"], user.as_str());
    assert_eq!(first["user"]["email"], "ada@example.com");
    assert_eq!(first["user"]["name"], "Ada");
    assert_eq!(figures(&first["user"]), (8, 8, 0, 0, 8));
    let again: Value = app
        .client
        .post(app.url("/api/user/sync"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["created"], false);
    assert_eq!(figures(&again["user"]), (8, 8, 0, 0, 8));

    let renamed = token_with_profile(&user, "ada@lovelace.org", "Ada L.");
    let user_view: Value = app.get("/api/user/sync", Some(&renamed)).await.json().await.unwrap();
    assert_eq!(user_view["email"], "ada@lovelace.org");
    assert_eq!(user_view["name"], "Ada L.");
    assert!(user_view["createdAt"].as_str().unwrap().contains('T'));
    assert_eq!(app.all_entries(&user).await.len(), 1, "one initial grant, nothing else");
    let unauthenticated = app.client.post(app.url("/api/user/sync")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}
both!(sync_creates_once_and_keeps_the_profile_current);
