//! `GET /api/credits/events`: the caller's figures on every change, from any instance.

use crate::both;
use crate::support::{token, unique, Backend, TestApp, ADMIN};
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

/// Reads `credits` events from a server-sent event stream.
struct Events {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp, user: &str) -> Self {
        let response =
            app.client.get(app.url("/api/credits/events")).bearer_auth(token(user)).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        Self { body: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next event whose `remaining` is `expected` (repeats of unchanged figures are skipped).
    async fn until(&mut self, expected: i64) -> Value {
        loop {
            let event = self.next().await;
            if event["credits"]["remaining"] == expected {
                return event;
            }
        }
    }

    async fn next(&mut self) -> Value {
        let read = async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    if block.contains("event: credits") {
                        let data = block.lines().find_map(|line| line.strip_prefix("data: ")).unwrap();
                        return serde_json::from_str(data).unwrap();
                    }
                    continue;
                }
                let chunk = self.body.next().await.expect("stream open").unwrap();
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read).await.expect("an event within 5 s")
    }
}

async fn changes_on_any_instance_reach_the_stream(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let second = TestApp::spawn_on(first.service.db().url(), &[]).await;
    let user = unique("watcher");
    first.credits(&user).await;
    let mut events = Events::open(&first, &user).await;
    assert_eq!(events.next().await["credits"]["remaining"], 8, "the current figures first");
    // A spend through the other instance.
    let (status, _) = second.change(&user, json!({"action": "deduct", "amount": 3})).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    events.until(5).await;
    // An admin adjustment, and a webhook grant.
    second.change(ADMIN, json!({"action": "add", "amount": 10, "userId": user})).await;
    events.until(15).await;
    let mut order = crate::support::creem_fixture("checkout.completed.onetime.json");
    order["id"] = json!(unique("evt"));
    order["object"]["order"]["id"] = json!(unique("ord"));
    order["object"]["metadata"]["userId"] = json!(user);
    second.creem(&order).await;
    assert_eq!(events.until(130).await["credits"]["bonus"], 115);
    let anonymous = first.client.get(first.url("/api/credits/events")).send().await.unwrap();
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
}
both!(changes_on_any_instance_reach_the_stream);
