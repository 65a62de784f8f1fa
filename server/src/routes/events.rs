//! `GET /api/credits/events`: server-sent events with the caller's figures on
//! every change, from any server instance.
//!
//! One watcher per process polls the ledger on the shared database for new
//! entries (every change of an account's figures writes one in its
//! transaction, on every instance and both engines) and fans the changed user
//! ids out to this process's streams. It reads entries by id, so a poll costs
//! what was written since the last one, and `EntryCursor` keeps track of ids
//! that commit out of order.
//!
//! A stream lasts as long as the session that opened it: until a Clerk
//! token's `exp`, or while a local session exists. A user holds at most
//! `STREAMS_PER_USER` streams in this process. The browser reconnects an
//! ended stream with the session it has then.

use super::HttpError;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use credits::auth::{local, Principal, SessionEnd};
use credits::service::CreditsService;
use futures_util::stream::{self, StreamExt};
use sqlx::{AnyPool, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

/// How often the watcher looks for changes (the bound on live-update delay).
const POLL: Duration = Duration::from_millis(50);
/// An entry id that has not appeared while a higher one has is waited for this
/// long (a transaction still committing), then given up (rolled back).
const LOOKBACK_MS: i64 = 3_000;
/// At most this many entries are read per poll.
const POLL_ROWS: i64 = 20_000;
/// Live streams one user may hold open in this process; a new one past it
/// closes their oldest.
const STREAMS_PER_USER: usize = 8;
/// Live streams this process holds open in all; past it a new one is refused.
const STREAMS_PER_PROCESS: usize = 10_000;
/// How often a local session's stream checks that the session still exists.
const SESSION_RECHECK: Duration = Duration::from_secs(2);
/// How soon a browser reconnects once its stream ended (the SSE `retry` field).
const RECONNECT: Duration = Duration::from_secs(1);

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
    let state = EventsState { service, feed, streams: OpenStreams::default() };
    Router::new().route("/api/credits/events", get(events)).with_state(state)
}

#[derive(Clone)]
struct EventsState {
    service: CreditsService,
    feed: ChangeFeed,
    streams: OpenStreams,
}

async fn events(State(state): State<EventsState>, headers: HeaderMap) -> Response {
    let (caller, session_end) = match state.service.authenticate_stream(&headers).await {
        Ok(authenticated) => authenticated,
        Err(error) => return HttpError::from(error).into_response(),
    };
    let Some((slot, replaced)) = state.streams.open(&caller.user_id) else {
        let message = "too many live streams; retry later";
        return HttpError::Busy { message, retry_after: Duration::from_secs(5) }.into_response();
    };
    let receiver = state.feed.sender.subscribe();
    // The current figures first, with how soon to reconnect once the stream
    // ends (its session expired or a newer stream replaced it).
    let first = state.service.credits_view(&caller, None).await;
    let initial = stream::iter(first.ok().map(|view| view_event(&view).retry(RECONNECT)));
    let session = SessionWatch::new(session_end, state.service.db().pool.clone());
    let live = LiveStream { service: state.service, caller, receiver, replaced, session, _slot: slot };
    let changes =
        stream::unfold(live, |mut live| async move { live.next_event().await.map(|event| (event, live)) });
    let stream = initial.chain(changes).map(Ok::<_, Infallible>);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// One open stream: an event per change of the caller's figures, until the
/// caller's session ends or a newer stream of theirs replaces this one.
struct LiveStream {
    service: CreditsService,
    caller: Principal,
    receiver: broadcast::Receiver<String>,
    /// Resolves when `OpenStreams` drops this stream's place for a newer one.
    replaced: oneshot::Receiver<()>,
    session: SessionWatch,
    _slot: StreamSlot,
}

impl LiveStream {
    /// The next event, or `None` when the stream ends.
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            tokio::select! {
                _ = &mut self.replaced => return None,
                _ = self.session.ended() => return None,
                changed = self.receiver.recv() => match changed {
                    Ok(user) if user != self.caller.user_id => continue,
                    // A lagged receiver may have missed this user's change.
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
            if let Ok(view) = self.service.credits_view(&self.caller, None).await {
                return Some(view_event(&view));
            }
        }
    }
}

/// Watches for the end of a stream's session.
enum SessionWatch {
    /// A Clerk token: its `exp`.
    Expires(Pin<Box<tokio::time::Sleep>>),
    /// A local session: looked up every `SESSION_RECHECK`, so a sign-out or
    /// expiry on any instance ends the stream within that.
    Local { pool: AnyPool, token: String, every: tokio::time::Interval },
}

impl SessionWatch {
    fn new(end: SessionEnd, pool: AnyPool) -> Self {
        match end {
            SessionEnd::Expires { exp_seconds } => {
                let left = exp_seconds.saturating_sub(unix_seconds());
                Self::Expires(Box::pin(tokio::time::sleep(Duration::from_secs(left))))
            }
            SessionEnd::Local { token } => {
                let start = tokio::time::Instant::now() + SESSION_RECHECK;
                let mut every = tokio::time::interval_at(start, SESSION_RECHECK);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                Self::Local { pool, token, every }
            }
        }
    }

    /// Resolves once the session has ended. A failed lookup (the database
    /// unreachable for a moment) is not an end: the next one decides.
    async fn ended(&mut self) {
        match self {
            Self::Expires(at) => at.as_mut().await,
            Self::Local { pool, token, every } => loop {
                every.tick().await;
                if matches!(local::session_is_live(pool, token).await, Ok(false)) {
                    return;
                }
            },
        }
    }
}

/// The current Unix time in seconds.
fn unix_seconds() -> u64 {
    u64::try_from(credits::db::now_ms() / 1000).unwrap_or(0)
}

/// The live streams of this process, by user. A user's streams past
/// `STREAMS_PER_USER` close their oldest; past `STREAMS_PER_PROCESS` in all,
/// a new stream is refused. A stream's place is freed when it ends.
#[derive(Clone, Default)]
struct OpenStreams {
    inner: Arc<Mutex<Streams>>,
}

#[derive(Default)]
struct Streams {
    /// Each user's streams, oldest first: an id and the sender whose drop ends it.
    by_user: HashMap<String, VecDeque<(u64, oneshot::Sender<()>)>>,
    total: usize,
    next_id: u64,
}

/// A stream's place in `OpenStreams`; dropping it (the stream ended) frees the place.
struct StreamSlot {
    streams: OpenStreams,
    user_id: String,
    id: u64,
}

impl OpenStreams {
    fn lock(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for a new stream of `user_id` and the signal that a newer one
    /// replaced it; `None` when the process holds as many streams as it may.
    fn open(&self, user_id: &str) -> Option<(StreamSlot, oneshot::Receiver<()>)> {
        let mut streams = self.lock();
        let user_full = streams.by_user.get(user_id).is_some_and(|queue| queue.len() >= STREAMS_PER_USER);
        if streams.total >= STREAMS_PER_PROCESS && !user_full {
            return None;
        }
        let id = streams.next_id;
        streams.next_id += 1;
        let (sender, receiver) = oneshot::channel();
        let queue = streams.by_user.entry(user_id.to_string()).or_default();
        // Dropping the oldest sender ends that stream.
        let replaced = if queue.len() >= STREAMS_PER_USER { queue.pop_front() } else { None };
        queue.push_back((id, sender));
        if replaced.is_none() {
            streams.total += 1;
        }
        drop(streams);
        Some((StreamSlot { streams: self.clone(), user_id: user_id.to_string(), id }, receiver))
    }

    /// Frees a stream's place (a no-op when a newer stream took it already).
    fn close(&self, user_id: &str, id: u64) {
        let mut streams = self.lock();
        let Some(queue) = streams.by_user.get_mut(user_id) else { return };
        let Some(at) = queue.iter().position(|(open, _)| *open == id) else { return };
        queue.remove(at);
        if queue.is_empty() {
            streams.by_user.remove(user_id);
        }
        streams.total -= 1;
    }

    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let streams = self.lock();
        (streams.by_user.len(), streams.total)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.streams.close(&self.user_id, self.id);
    }
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
    use super::{EntryCursor, OpenStreams, LOOKBACK_MS, STREAMS_PER_PROCESS, STREAMS_PER_USER};

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

    #[test]
    fn a_new_stream_past_the_limit_replaces_the_oldest() {
        let streams = OpenStreams::default();
        let mut opened: Vec<_> = (0..STREAMS_PER_USER).map(|_| streams.open("a").unwrap()).collect();
        let (_other, _) = streams.open("b").unwrap();
        assert_eq!(streams.counts(), (2, STREAMS_PER_USER + 1));
        let (_newest, _) = streams.open("a").unwrap();
        assert_eq!(streams.counts(), (2, STREAMS_PER_USER + 1), "one replaced, one added");
        let (oldest_slot, mut oldest) = opened.remove(0);
        assert!(oldest.try_recv().is_err_and(|e| e == tokio::sync::oneshot::error::TryRecvError::Closed));
        assert!(opened.iter_mut().all(|(_, replaced)| replaced
            .try_recv()
            .is_err_and(|e| e == tokio::sync::oneshot::error::TryRecvError::Empty)));
        drop(oldest_slot);
        assert_eq!(streams.counts(), (2, STREAMS_PER_USER + 1), "a replaced stream holds no place");
    }

    #[test]
    fn places_are_freed_when_streams_end() {
        let streams = OpenStreams::default();
        let opened: Vec<_> = (0..3).map(|_| streams.open("a").unwrap()).collect();
        assert_eq!(streams.counts(), (1, 3));
        drop(opened);
        assert_eq!(streams.counts(), (0, 0), "no entry is left for a user without streams");
    }

    #[test]
    fn past_the_process_bound_only_a_full_user_may_open_one_more() {
        let streams = OpenStreams::default();
        let held: Vec<_> = (0..STREAMS_PER_PROCESS)
            .map(|i| streams.open(&format!("user-{}", i / STREAMS_PER_USER)).unwrap())
            .collect();
        assert!(streams.open("newcomer").is_none(), "the process is full");
        let replacing = streams.open("user-0");
        assert!(replacing.is_some(), "a full user's new stream replaces their oldest");
        assert_eq!(streams.counts().1, STREAMS_PER_PROCESS);
        drop(held);
        assert!(streams.open("newcomer").is_some());
    }
}
