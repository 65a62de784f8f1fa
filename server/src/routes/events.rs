//! `GET /api/credits/events`: server-sent events with the caller's figures on
//! every change, from any server instance.
//!
//! One watcher per process polls `accounts.updated_at` on the shared database
//! (every balance change updates it in its transaction, on every instance and
//! both engines) and fans changed user ids out to this process's streams.

use super::{api_error, caller};
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use credits::service::CreditsService;
use futures_util::stream::{self, StreamExt};
use sqlx::Row;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often the watcher looks for changes (the bound on live-update delay).
const POLL: Duration = Duration::from_millis(50);
/// Changes committed late (long transactions) are still seen within this window.
const LOOKBACK_MS: i64 = 3_000;

#[derive(Clone)]
pub struct ChangeFeed {
    sender: broadcast::Sender<String>,
}

impl ChangeFeed {
    /// Starts the watcher for this process.
    pub fn start(service: CreditsService) -> Self {
        let (sender, _) = broadcast::channel(4096);
        let feed = Self { sender: sender.clone() };
        tokio::spawn(async move {
            let pool = service.db().pool.clone();
            let mut seen: HashMap<String, i64> = HashMap::new();
            let mut since = credits::db::now_ms();
            loop {
                tokio::time::sleep(POLL).await;
                if sender.receiver_count() == 0 {
                    since = credits::db::now_ms();
                    seen.clear();
                    continue;
                }
                let rows = sqlx::query("SELECT user_id, updated_at FROM accounts WHERE updated_at >= $1")
                    .bind(since - LOOKBACK_MS)
                    .fetch_all(&pool)
                    .await;
                let Ok(rows) = rows else { continue };
                for row in rows {
                    let (Ok(user), Ok(at)) =
                        (row.try_get::<String, _>("user_id"), row.try_get::<i64, _>("updated_at"))
                    else {
                        continue;
                    };
                    if seen.get(&user).is_none_or(|last| *last < at) {
                        seen.insert(user.clone(), at);
                        since = since.max(at);
                        let _ = sender.send(user);
                    }
                }
                let horizon = since - 2 * LOOKBACK_MS;
                seen.retain(|_, at| *at >= horizon);
            }
        });
        feed
    }
}

pub fn router<S>(service: CreditsService, feed: ChangeFeed) -> Router<S> {
    Router::new().route("/api/credits/events", get(events)).with_state((service, feed))
}

async fn events(State((service, feed)): State<(CreditsService, ChangeFeed)>, headers: HeaderMap) -> Response {
    let caller = match caller(&service, &Method::GET, &headers).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    if caller.api_key.is_some() {
        return api_error(credits::service::ServiceError::Forbidden("events are for signed-in users".into()));
    }
    let user_id = caller.user_id.clone();
    let receiver = feed.sender.subscribe();
    // The current figures first, then one event per change.
    let first = service.credits_view(&caller, None).await;
    let initial = stream::iter(first.ok().map(|view| view_event(&view)));
    let changes = stream::unfold((receiver, service, caller), move |(mut receiver, service, caller)| {
        let user_id = user_id.clone();
        async move {
            loop {
                match receiver.recv().await {
                    Ok(changed) if changed == user_id => {
                        let event =
                            service.credits_view(&caller, None).await.ok().map(|view| view_event(&view));
                        if let Some(event) = event {
                            return Some((event, (receiver, service, caller)));
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    let stream = initial.chain(changes).map(Ok::<_, Infallible>);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

fn view_event(view: &credits::dto::CreditsView) -> Event {
    Event::default().event("credits").data(serde_json::to_string(view).unwrap_or_default())
}
