//! Attacks: fishing for secrets (contract §8). No configured secret appears
//! in the configuration's debug output, in error answers or in `/metrics`.

use crate::both;
use crate::support::{config, fresh_database_url, Backend, TestApp, CLERK_SECRET, CREEM_SECRET};
use reqwest::StatusCode;

const API_KEY: &str = "creem_test_key";

async fn secrets_never_appear_in_debug_output_errors_or_metrics(backend: Backend) {
    let url = fresh_database_url(backend).await;
    let outbound = "whsec_b3V0Ym91bmQtc2VjcmV0LWZvci10ZXN0cw==";
    let extra = [
        ("CREDITS_WEBHOOK_URL", "http://127.0.0.1:9/hook".to_string()),
        ("CREDITS_WEBHOOK_SECRET", outbound.to_string()),
    ];
    let printed = format!("{:?}", config(&url, &extra));
    let password = url.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
    for secret in [CREEM_SECRET, CLERK_SECRET, API_KEY, outbound, password] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }

    let app = TestApp::spawn_on(&url, &extra).await;
    let forged = app
        .client
        .post(app.url("/api/webhooks/creem"))
        .header("creem-signature", "00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let answer = forged.text().await.unwrap();
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    for secret in [CREEM_SECRET, CLERK_SECRET, API_KEY, outbound] {
        assert!(!answer.contains(secret) && !metrics.contains(secret), "{secret} leaked");
    }
}
both!(secrets_never_appear_in_debug_output_errors_or_metrics);
