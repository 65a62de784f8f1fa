//! Attacks: metrics. An attacker who sends made-up methods and paths must not
//! grow `/metrics` (memory and series) or write their text into it; with a
//! metrics token configured, nobody without it reads the business figures,
//! and the token never shows in them.

use crate::both;
use crate::support::{token, unique, Backend, TestApp, CLERK_SECRET, CREEM_SECRET};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The series in a Prometheus text answer: every line that is not a comment.
fn series(text: &str) -> usize {
    text.lines().filter(|line| !line.is_empty() && !line.starts_with('#')).count()
}

async fn metrics_text(app: &TestApp, bearer: Option<&str>) -> String {
    let response = app.get("/metrics", bearer).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

async fn made_up_methods_and_paths_do_not_grow_metric_series(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Upper-case letters only: valid in a method and a path, and easy to find.
    let tag: String =
        unique("ATTACKER").chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_uppercase();
    let before = series(&metrics_text(&app, None).await);
    let paths = ["/", "/api/credits", "/api/{tag}", "/{tag}", "/pkg/{tag}.js", "/api/holds/{tag}/capture"];
    for index in 0..60 {
        let method = Method::from_bytes(format!("{tag}M{index}").as_bytes()).unwrap();
        let path = paths[index % paths.len()].replace("{tag}", &format!("{tag}P{index}"));
        let method = if index % 4 == 0 { Method::GET } else { method };
        app.client.request(method, app.url(&path)).send().await.unwrap();
    }
    let text = metrics_text(&app, None).await;
    for line in text.lines() {
        assert!(!line.to_uppercase().contains(&tag), "raw request text became a label: {line}");
    }
    let added = series(&text).saturating_sub(before);
    // Other tests share the process-wide recorder and add their own (bounded)
    // series meanwhile; one series per made-up request would add over 1,000.
    assert!(added < 200, "{added} new series after 60 made-up requests");
}
both!(made_up_methods_and_paths_do_not_grow_metric_series);

async fn metrics_need_the_token_when_one_is_set(backend: Backend) {
    let metrics_token = unique("metrics-token");
    let app = TestApp::spawn_with(backend, &[("CREDITS_METRICS_TOKEN", metrics_token.clone())]).await;
    app.credits(&unique("scraped")).await;
    let wrong = format!("{metrics_token}x");
    for (bearer, scheme) in
        [(None, "Bearer"), (Some(wrong.as_str()), "Bearer"), (Some(&metrics_token), "Basic")]
    {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(bearer) = bearer {
            request = request.header("authorization", format!("{scheme} {bearer}"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{scheme} {bearer:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
        assert!(!body.to_string().contains(&metrics_token));
    }
    // The token sent where it does not belong must not end up in the figures either.
    app.get(&format!("/api/{metrics_token}"), Some(&metrics_token)).await;
    app.get("/api/credits", Some(&token(&unique("scraped")))).await;
    let text = metrics_text(&app, Some(&metrics_token)).await;
    assert!(text.contains("http_requests_total"), "{text}");
    for secret in [metrics_token.as_str(), CREEM_SECRET, CLERK_SECRET] {
        assert!(!text.contains(secret), "a secret in /metrics");
    }

    let open = TestApp::spawn(backend).await;
    assert!(
        metrics_text(&open, None).await.contains("http_requests_total"),
        "without a token /metrics is open"
    );
}
both!(metrics_need_the_token_when_one_is_set);
