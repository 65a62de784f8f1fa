//! Attacks on live event streams (`GET /api/credits/events`): holding many
//! open, and keeping one open after its session ended.

use crate::both;
use crate::support::{now, sign, token, unique, Backend, TestApp};
use futures::StreamExt;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// One open stream, read as an attacker's client reads it.
struct OpenStream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl OpenStream {
    /// Opens a stream and reads its first event (the current figures).
    async fn open(request: RequestBuilder) -> Self {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut stream = Self { body: Box::pin(response.bytes_stream()), buffer: String::new() };
        stream.next().await.expect("the current figures first");
        stream
    }

    /// The next `credits` event, or `None` once the server ended the stream.
    async fn next(&mut self) -> Option<Value> {
        let read = async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    if let Some(data) = block.lines().find_map(|line| line.strip_prefix("data: ")) {
                        return Some(serde_json::from_str(data).unwrap());
                    }
                    continue;
                }
                match self.body.next().await {
                    Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                    Some(Err(_)) | None => return None,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read).await.expect("an event or the end within 10 s")
    }

    /// Reads until the server ends the stream.
    async fn assert_ends(&mut self, what: &str) {
        for _ in 0..100 {
            if self.next().await.is_none() {
                return;
            }
        }
        panic!("{what}: the stream kept sending events");
    }

    /// An event with these `remaining` credits must come: the stream is still
    /// open. (Repeats of unchanged figures are skipped.)
    async fn assert_open_with(&mut self, remaining: i64, what: &str) {
        loop {
            let event = self.next().await.unwrap_or_else(|| panic!("{what}: the stream ended"));
            if event["credits"]["remaining"] == remaining {
                return;
            }
        }
    }
}

fn events_request(app: &TestApp, bearer: &str) -> RequestBuilder {
    app.client.get(app.url("/api/credits/events")).bearer_auth(bearer)
}

async fn a_ninth_stream_closes_the_oldest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (user, neighbour) = (unique("hoarder"), unique("neighbour"));
    app.credits(&user).await;
    app.credits(&neighbour).await;
    let mut streams = Vec::new();
    for _ in 0..8 {
        streams.push(OpenStream::open(events_request(&app, &token(&user))).await);
    }
    let mut neighbours = OpenStream::open(events_request(&app, &token(&neighbour))).await;
    streams.push(OpenStream::open(events_request(&app, &token(&user))).await);
    let mut oldest = streams.remove(0);
    oldest.assert_ends("the oldest of nine").await;

    let (status, _) = app.change(&user, json!({"action": "deduct", "amount": 1})).await;
    assert_eq!(status, StatusCode::OK);
    for (index, stream) in streams.iter_mut().enumerate() {
        stream.assert_open_with(7, &format!("stream {} of the eight newest", index + 2)).await;
    }
    app.change(&neighbour, json!({"action": "deduct", "amount": 2})).await;
    neighbours.assert_open_with(6, "another user's stream").await;
    app.assert_consistent().await;
}
both!(a_ninth_stream_closes_the_oldest);

async fn a_stream_ends_when_its_token_expires(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("lingerer");
    app.credits(&user).await;
    let short = sign(0, None, json!({"sub": user, "iat": now(), "nbf": now(), "exp": now() + 3}));
    let opened = Instant::now();
    let mut stream = OpenStream::open(events_request(&app, &short)).await;
    stream.assert_ends("a stream past its token's exp").await;
    let lasted = opened.elapsed();
    assert!(lasted >= Duration::from_secs(1) && lasted <= Duration::from_secs(6), "lasted {lasted:?}");

    let expired = app.client.get(app.url("/api/credits/events")).bearer_auth(&short);
    let expired = tokio::time::timeout(Duration::from_secs(10), async {
        // The token is accepted within its 5 s of skew; after that, never again.
        loop {
            let response = expired.try_clone().unwrap().send().await.unwrap();
            if response.status() != StatusCode::OK {
                return response.status();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(expired, StatusCode::UNAUTHORIZED);
    // The browser reconnects with a fresh token and follows changes again.
    let mut fresh = OpenStream::open(events_request(&app, &token(&user))).await;
    app.change(&user, json!({"action": "deduct", "amount": 1})).await;
    fresh.assert_open_with(7, "a stream with a fresh token").await;
}
both!(a_stream_ends_when_its_token_expires);

/// Signs up a local account; returns the `Cookie` header and the CSRF token.
async fn local_session(app: &TestApp) -> (String, String) {
    let email = format!("{}@example.com", unique("streamer"));
    let response = app
        .client
        .post(app.url("/api/auth/sign-up"))
        .header("origin", &app.base)
        .json(&json!({"email": email, "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = |name: &str| {
        let prefix = format!("{name}=");
        let values = response.headers().get_all("set-cookie");
        let set = values.iter().map(|v| v.to_str().unwrap()).find(|c| c.starts_with(&prefix)).unwrap();
        set[prefix.len()..].split(';').next().unwrap().to_string()
    };
    let (session, csrf) = (cookie("credits_session"), cookie("credits_csrf"));
    (format!("credits_session={session}; credits_csrf={csrf}"), csrf)
}

async fn signing_out_ends_the_sessions_streams(backend: Backend) {
    let local = [("CLERK_JWT_KEY", String::new())];
    let app = TestApp::spawn_with(backend, &local).await;
    let other_instance = TestApp::spawn_on(app.service.db().url(), &local).await;
    let (cookie, csrf) = local_session(&app).await;
    let events = || app.client.get(app.url("/api/credits/events")).header("cookie", &cookie);
    let mut first = OpenStream::open(events()).await;
    let mut second = OpenStream::open(events()).await;

    let signed_out = other_instance
        .client
        .post(other_instance.url("/api/auth/sign-out"))
        .header("cookie", &cookie)
        .header("origin", &other_instance.base)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::OK);
    let started = Instant::now();
    first.assert_ends("a stream of a signed-out session").await;
    second.assert_ends("another stream of that session").await;
    assert!(started.elapsed() < Duration::from_secs(6), "ended after {:?}", started.elapsed());
    let again = events().send().await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "the ended session opens no new stream");
}
both!(signing_out_ends_the_sessions_streams);
