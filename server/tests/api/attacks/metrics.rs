//! Attacks: metrics. An attacker who sends made-up methods and paths must not
//! grow `/metrics` (memory and series) or write their text into it; with a
//! metrics token configured, nobody without it reads the business figures,
//! and the token never shows in them.

use crate::both;
use crate::support::{token, unique, Backend, TestApp, CLERK_SECRET, CREEM_SECRET};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const STANDARD_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The value of label `name` on one Prometheus line, if it has that label.
fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    line[start..].split('"').next()
}

/// The request series whose method is not a standard one: where made-up
/// methods land. A histogram's bucket, sum and count lines are one series.
fn non_standard_method_series(text: &str) -> std::collections::BTreeSet<(String, String, String)> {
    let requests = text.lines().filter(|line| line.starts_with("http_request"));
    let odd = requests.filter_map(|line| {
        let method = label(line, "method")?;
        let metric = line.split('{').next()?.trim_end_matches("_bucket").trim_end_matches("_sum");
        let series = (
            metric.trim_end_matches("_count").to_string(),
            method.to_string(),
            label(line, "route")?.to_string(),
        );
        (!STANDARD_METHODS.contains(&method)).then_some(series)
    });
    odd.collect()
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
        if let Some(method) = label(line, "method") {
            assert!(STANDARD_METHODS.contains(&method) || method == "other", "{line}");
        }
    }
    // The 45 made-up methods share the method "other" on the five route labels
    // they reach: ten series over the two metrics, where one per request
    // would be 90. (Other tests running meanwhile use standard methods.)
    let series = non_standard_method_series(&text);
    assert!(series.len() <= 12, "{} series for made-up methods: {series:?}", series.len());
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
