//! `GET /api/credits/events`: server-sent events with the caller's figures on
//! every change, from any server instance.
//!
//! One watcher per process polls the ledger on the shared database for new
//! entries (every change of an account's figures writes one in its
//! transaction, on every instance and both engines) and fans the changed user
//! ids out to this process's streams. It reads entries by id, so a poll costs
//! what was written since the last one, and `EntryCursor` keeps track of ids
//! that commit out of order.

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
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often the watcher looks for changes (the bound on live-update delay).
const POLL: Duration = Duration::from_millis(50);
/// An entry id that has not appeared while a higher one has is waited for this
/// long (a transaction still committing), then given up (rolled back).
const LOOKBACK_MS: i64 = 3_000;
/// At most this many entries are read per poll.
const POLL_ROWS: i64 = 20_000;

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
            let mut cursor: Option<EntryCursor> = None;
            loop {
                tokio::time::sleep(POLL).await;
                if sender.receiver_count() == 0 {
                    cursor = None;
                    continue;
                }
                let now = credits::db::now_ms();
                let Some(current) = cursor.as_mut() else {
                    // Entries of the last LOOKBACK_MS are read once more: one of
                    // them may have committed after a stream read its figures.
                    // (Both lookups are index range scans of recent entries.)
                    let floor = sqlx::query_scalar::<_, i64>(
                        "SELECT COALESCE((SELECT MIN(id) FROM ledger_entries WHERE created_at >= $1) - 1, \
                         (SELECT MAX(id) FROM ledger_entries), 0)",
                    )
                    .bind(now - LOOKBACK_MS)
                    .fetch_one(&pool)
                    .await;
                    cursor = floor.ok().map(EntryCursor::new);
                    continue;
                };
                let rows =
                    sqlx::query("SELECT id, user_id FROM ledger_entries WHERE id > $1 ORDER BY id LIMIT $2")
                        .bind(current.floor)
                        .bind(POLL_ROWS)
                        .fetch_all(&pool)
                        .await;
                let Ok(rows) = rows else { continue };
                let rows = rows
                    .iter()
                    .filter_map(|row| Some((row.try_get("id").ok()?, row.try_get("user_id").ok()?)));
                for user in current.observe(rows, now) {
                    let _ = sender.send(user);
                }
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

/// Which ledger entries the watcher has reported, by id. Ids are handed out
/// when an entry is written, not when it commits: on PostgreSQL a batch may
/// commit before another that took lower ids. So an id that is missing below
/// the highest one seen is waited for, up to `LOOKBACK_MS` (it may still
/// commit), and then given up (its transaction rolled back; identity values
/// are not reused).
#[derive(Debug)]
struct EntryCursor {
    /// Every id up to here is reported or given up.
    floor: i64,
    /// Ids above `floor` already reported.
    seen: BTreeSet<i64>,
    /// Ids above `floor` and below a seen one that have not appeared, with when that was first noticed.
    missing: BTreeMap<i64, i64>,
}

impl EntryCursor {
    fn new(floor: i64) -> Self {
        Self { floor, seen: BTreeSet::new(), missing: BTreeMap::new() }
    }

    /// Takes a poll's `(id, user_id)` rows at `now`; returns each user with
    /// an entry not reported before, once.
    fn observe(&mut self, rows: impl IntoIterator<Item = (i64, String)>, now: i64) -> Vec<String> {
        let mut users = Vec::new();
        let mut fresh = HashSet::new();
        for (id, user) in rows {
            if id > self.floor && self.seen.insert(id) {
                self.missing.remove(&id);
                if fresh.insert(user.clone()) {
                    users.push(user);
                }
            }
        }
        if let Some(&top) = self.seen.last() {
            for id in self.floor + 1..top {
                if !self.seen.contains(&id) {
                    self.missing.entry(id).or_insert(now);
                }
            }
        }
        loop {
            let next = self.floor + 1;
            if self.missing.get(&next).is_some_and(|since| now - since >= LOOKBACK_MS) {
                self.missing.remove(&next);
            } else if !self.seen.remove(&next) {
                break;
            }
            self.floor = next;
        }
        users
    }
}

fn view_event(view: &credits::dto::CreditsView) -> Event {
    Event::default().event("credits").data(serde_json::to_string(view).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::{EntryCursor, LOOKBACK_MS};

    fn rows(ids: &[(i64, &str)]) -> Vec<(i64, String)> {
        ids.iter().map(|(id, user)| (*id, user.to_string())).collect()
    }

    #[test]
    fn each_entry_is_reported_once_and_each_user_once_per_poll() {
        let mut cursor = EntryCursor::new(10);
        assert_eq!(cursor.observe(rows(&[(11, "a"), (12, "b"), (13, "a")]), 0), ["a", "b"]);
        assert_eq!(cursor.floor, 13);
        assert!(cursor.observe(rows(&[(12, "b"), (13, "a")]), 1).is_empty(), "nothing new");
        assert_eq!(cursor.observe(rows(&[(14, "b")]), 2), ["b"]);
        assert!(cursor.observe(rows(&[(9, "old")]), 3).is_empty(), "below the floor");
    }

    #[test]
    fn an_entry_that_commits_after_a_higher_one_is_still_reported() {
        let mut cursor = EntryCursor::new(0);
        // A later batch (ids 4-5) commits before an earlier one (ids 1-3).
        assert_eq!(cursor.observe(rows(&[(4, "late"), (5, "late")]), 0), ["late"]);
        assert_eq!(cursor.floor, 0, "waits below the missing ids");
        assert_eq!(
            cursor.observe(rows(&[(1, "early"), (2, "x"), (3, "early"), (4, "late"), (5, "late")]), 50),
            ["early", "x"]
        );
        assert_eq!(cursor.floor, 5);
        assert!(cursor.missing.is_empty() && cursor.seen.is_empty());
    }

    #[test]
    fn an_id_that_never_commits_is_given_up_after_the_lookback() {
        let mut cursor = EntryCursor::new(0);
        assert_eq!(cursor.observe(rows(&[(2, "a")]), 1_000), ["a"]);
        assert!(cursor
            .observe(rows(&[(2, "a"), (3, "b")]), 1_000 + LOOKBACK_MS - 1)
            .contains(&"b".to_string()));
        assert_eq!(cursor.floor, 0, "id 1 may still commit");
        assert!(cursor.observe(rows(&[(2, "a"), (3, "b")]), 1_000 + LOOKBACK_MS).is_empty());
        assert_eq!(cursor.floor, 3, "id 1 rolled back: given up");
        // A gap noticed later is waited for from when it was noticed.
        assert_eq!(cursor.observe(rows(&[(6, "c")]), 10_000), ["c"]);
        assert_eq!(cursor.observe(rows(&[(5, "d"), (6, "c")]), 10_000 + LOOKBACK_MS - 1), ["d"]);
        assert_eq!(cursor.floor, 3);
        assert!(cursor.observe(rows(&[(5, "d"), (6, "c")]), 10_000 + LOOKBACK_MS).is_empty());
        assert_eq!(cursor.floor, 6);
    }
}
