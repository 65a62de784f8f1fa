//! The reliability suite: races, replays, crashes and a soak, each against
//! release server processes (one or several on one database).

use crate::keys::Keys;
use crate::server::{Launch, Server, ADMIN};
use crate::{Backend, Common, CLERK_SECRET, CREEM_SECRET};
use futures_util::future::join_all;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The plans of the fixtures. The load generator is one client that posts
/// Creem's deliveries for every user, so the per-client webhook limit (a
/// guard against floods from the open internet) is lifted here.
pub const CONFIG: &str = "[rate_limits]\nwebhooks = { per_minute = 0 }\n\
[[plans]]\nname = \"starter\"\ncreem_product_id = \"prod_4b3gYBXSHcJ2pPtkT6Ylw3\"\n\
[[plans]]\nname = \"standard\"\ncreem_product_id = \"prod_7CIbZEZnRC5DWibmoOboOu\"\n\
[[plans]]\nname = \"premium\"\ncreem_product_id = \"prod_premium\"\n\
[holds]\nsweep_interval_ms = 200\n";
const CHECKOUT: &str = include_str!("../../fixtures/creem/checkout.completed.onetime.json");
const USER_CREATED: &str = include_str!("../../fixtures/clerk/user.created.json");
const STARTER_CREDITS: i64 = 115;
const INITIAL_CREDITS: i64 = 8;

/// The status of a request, 0 when it got no answer.
async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

struct Cluster {
    launch: Launch,
    servers: Vec<Server>,
    keys: Keys,
}

impl Cluster {
    async fn start(common: &Common, name: &str, instances: usize) -> Self {
        let keys = Keys::generate();
        let database_url = common.fresh_database(name).await;
        let launch = common.launch(&database_url, &keys, CONFIG);
        let mut servers = Vec::new();
        for instance in 0..instances {
            servers.push(launch.start(&format!("{name}-{instance}")).await);
        }
        Self { launch, servers, keys }
    }

    fn base(&self, index: usize) -> &str {
        &self.servers[index % self.servers.len()].base
    }

    fn check_clean(&self) -> Result<(), String> {
        let (code, out) = self.launch.cli(&["check"]);
        if code == 0 {
            Ok(())
        } else {
            Err(format!("credits check failed ({code}): {out}"))
        }
    }

    /// Creates `user` and sets its balance as the admin.
    async fn fund(&self, client: &reqwest::Client, user: &str, amount: i64) {
        let response = client
            .get(format!("{}/api/credits", self.base(0)))
            .bearer_auth(self.keys.token(user, 3600))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "creating {user}");
        let response = client
            .post(format!("{}/api/credits", self.base(0)))
            .bearer_auth(self.keys.token(ADMIN, 3600))
            .json(&json!({"action": "set", "amount": amount, "userId": user, "reason": "reliability"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "funding {user}");
    }

    async fn figures(&self, client: &reqwest::Client, user: &str) -> Value {
        let response = client
            .get(format!("{}/api/credits", self.base(0)))
            .bearer_auth(self.keys.token(user, 3600))
            .send()
            .await
            .unwrap();
        response.json::<Value>().await.unwrap()
    }
}

fn report(name: &str, summary: Value, failures: &[String]) -> i32 {
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({"suite": name, "summary": summary, "failures": failures}))
            .unwrap()
    );
    if failures.is_empty() {
        0
    } else {
        eprintln!("{name}: {} failure(s)", failures.len());
        1
    }
}

/// Bursts of 1,000 spends and 1,000 holds of 10 against a balance of 1,000:
/// exactly 100 succeed, over many HTTP/1.1 connections and as HTTP/2 streams
/// multiplexed on one connection per instance.
pub async fn races(common: &Common, rounds: usize, instances: usize, burst: usize) -> i32 {
    let cluster = Cluster::start(common, &format!("races{instances}"), instances).await;
    let many = reqwest::Client::builder().pool_max_idle_per_host(burst).build().unwrap();
    let multiplexed = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    let started = Instant::now();
    for round in 1..=rounds {
        for (transport, client) in [("http1", &many), ("http2", &multiplexed)] {
            for kind in ["spend", "hold"] {
                let user = format!("race_{round}_{transport}_{kind}_{}", random_id());
                cluster.fund(&many, &user, burst as i64).await;
                let token = cluster.keys.token(&user, 3600);
                let requests = (0..burst).map(|i| {
                    let (path, body) = match kind {
                        "spend" => ("/api/credits", json!({"action": "deduct", "amount": 10})),
                        _ => ("/api/holds", json!({"amount": 10})),
                    };
                    client.post(format!("{}{path}", cluster.base(i))).bearer_auth(&token).json(&body).send()
                });
                let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
                for response in join_all(requests).await {
                    let status = response.map(|r| r.status().as_u16()).unwrap_or(0);
                    *statuses.entry(status).or_default() += 1;
                }
                let ok = statuses.get(&200).copied().unwrap_or(0);
                let view = cluster.figures(&many, &user).await;
                let (remaining, used, held) = (
                    view["credits"]["remaining"].as_i64().unwrap_or(-1),
                    view["credits"]["used"].as_i64().unwrap_or(-1),
                    view["held"].as_i64().unwrap_or(-1),
                );
                let expected_ok = burst / 10;
                if ok != expected_ok || statuses.get(&402).copied().unwrap_or(0) != burst - expected_ok {
                    failures.push(format!("round {round} {transport} {kind}: statuses {statuses:?}"));
                }
                let moved = if kind == "spend" { used } else { held };
                if remaining != 0 || moved != burst as i64 {
                    failures.push(format!(
                        "round {round} {transport} {kind}: remaining {remaining}, used {used}, held {held}"
                    ));
                }
                rows.push(json!({"round": round, "transport": transport, "kind": kind, "ok": ok, "statuses": statuses, "remaining": remaining}));
            }
        }
        if let Err(error) = cluster.check_clean() {
            failures.push(format!("round {round}: {error}"));
        }
    }
    let succeeded_exactly = rows.iter().filter(|row| row["ok"] == json!(burst / 10)).count();
    let summary = json!({
        "backend": common.name(), "instances": instances, "rounds": rounds, "burst": burst,
        "bursts": rows.len(), "bursts_with_exactly_the_affordable_successes": succeeded_exactly,
        "negative_balances": rows.iter().filter(|row| row["remaining"].as_i64().unwrap_or(0) < 0).count(),
        "seconds": started.elapsed().as_secs_f64(),
    });
    report("races", summary, &failures)
}

fn creem_event(user: &str) -> (String, Vec<u8>) {
    let mut event: Value = serde_json::from_str(CHECKOUT).unwrap();
    let id = random_id();
    event["id"] = json!(format!("evt_{id}"));
    event["object"]["id"] = json!(format!("ch_{id}"));
    event["object"]["request_id"] = json!(format!("req_{id}"));
    event["object"]["order"]["id"] = json!(format!("ord_{id}"));
    event["object"]["metadata"]["userId"] = json!(user);
    event["object"]["customer"]["email"] = json!(format!("{user}@example.com"));
    (format!("evt_{id}"), serde_json::to_vec(&event).unwrap())
}

async fn deliver_creem(client: &reqwest::Client, base: &str, body: &[u8]) -> u16 {
    let signature = credits::webhooks::creem::sign(CREEM_SECRET, body);
    client
        .post(format!("{base}/api/webhooks/creem"))
        .header("creem-signature", signature)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn deliver_clerk(client: &reqwest::Client, base: &str, message_id: &str, body: &[u8]) -> u16 {
    let key = credits::webhooks::clerk::secret_key(CLERK_SECRET).unwrap();
    let timestamp = crate::keys::now_secs();
    let signature = credits::webhooks::clerk::sign(&key, message_id, timestamp, body);
    client
        .post(format!("{base}/api/webhooks/clerk"))
        .header("svix-id", message_id)
        .header("svix-timestamp", timestamp.to_string())
        .header("svix-signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn kinds_in_history(
    cluster: &Cluster,
    client: &reqwest::Client,
    user: &str,
) -> BTreeMap<String, usize> {
    let page: Value = client
        .get(format!("{}/api/credits/history?limit=100", cluster.base(0)))
        .bearer_auth(cluster.keys.token(user, 3600))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut kinds = BTreeMap::new();
    for entry in page["entries"].as_array().cloned().unwrap_or_default() {
        *kinds.entry(entry["kind"].as_str().unwrap_or("").to_string()).or_default() += 1;
    }
    kinds
}

/// One Creem event delivered 100 times at once across the instances → one
/// grant; a Clerk user.created replayed 100 times (same and new message ids)
/// → one initial grant.
pub async fn replays(common: &Common, instances: usize, copies: usize) -> i32 {
    let cluster = Cluster::start(common, &format!("replays{instances}"), instances).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(copies).build().unwrap();
    let mut failures = Vec::new();

    let buyer = format!("replay_buyer_{}", random_id());
    cluster.fund(&client, &buyer, INITIAL_CREDITS).await;
    let (_, body) = creem_event(&buyer);
    let statuses: Vec<u16> =
        join_all((0..copies).map(|i| deliver_creem(&client, cluster.base(i), &body))).await;
    let creem_ok = statuses.iter().filter(|s| **s == 200).count();
    if creem_ok != copies {
        failures.push(format!("creem: {} of {copies} deliveries answered 200: {statuses:?}", creem_ok));
    }
    let view = cluster.figures(&client, &buyer).await;
    let purchases = kinds_in_history(&cluster, &client, &buyer).await.get("purchase").copied().unwrap_or(0);
    let remaining = view["credits"]["remaining"].as_i64().unwrap_or(-1);
    if purchases != 1 || remaining != INITIAL_CREDITS + STARTER_CREDITS {
        failures.push(format!("creem: {purchases} purchase entries, remaining {remaining}"));
    }

    let newcomer = format!("user_replay_{}", random_id());
    let mut event: Value = serde_json::from_str(USER_CREATED).unwrap();
    event["data"]["id"] = json!(newcomer);
    let body = serde_json::to_vec(&event).unwrap();
    let message = format!("msg_{}", random_id());
    let same_id =
        join_all((0..copies).map(|i| deliver_clerk(&client, cluster.base(i), &message, &body))).await;
    let fresh_ids: Vec<String> = (0..copies / 10).map(|_| format!("msg_{}", random_id())).collect();
    let new_ids = join_all(
        fresh_ids.iter().enumerate().map(|(i, id)| deliver_clerk(&client, cluster.base(i), id, &body)),
    )
    .await;
    let clerk_ok = same_id.iter().chain(&new_ids).filter(|s| **s == 200).count();
    if clerk_ok != same_id.len() + new_ids.len() {
        failures
            .push(format!("clerk: {clerk_ok} deliveries answered 200 of {}", same_id.len() + new_ids.len()));
    }
    let kinds = kinds_in_history(&cluster, &client, &newcomer).await;
    let view = cluster.figures(&client, &newcomer).await;
    if kinds.get("initial").copied().unwrap_or(0) != 1 || view["credits"]["initial"] != json!(INITIAL_CREDITS)
    {
        failures.push(format!("clerk: initial entries {kinds:?}, figures {}", view["credits"]));
    }
    if let Err(error) = cluster.check_clean() {
        failures.push(error);
    }
    let summary = json!({
        "backend": common.name(), "instances": instances,
        "creem": {"deliveries": copies, "answered_200": creem_ok, "purchase_entries": purchases, "remaining": remaining},
        "clerk": {"deliveries_same_id": same_id.len(), "deliveries_new_ids": new_ids.len(), "initial_entries": kinds.get("initial")},
    });
    report("replays", summary, &failures)
}

/// What the load saw acknowledged (2xx) before a crash.
#[derive(Default)]
struct Acked {
    spends: Vec<(String, String)>,
    holds: Vec<String>,
    captures: Vec<String>,
    payments: Vec<String>,
}

/// Kills the server with SIGKILL during a mixed load, `kills` times; after each
/// restart: `credits check` is clean, every acknowledged spend replays from its
/// Idempotency-Key (so it committed), every acknowledged hold, capture and
/// payment is in the database.
pub async fn crashes(common: &Common, kills: usize, workers: usize) -> i32 {
    let mut cluster = Cluster::start(common, "crashes", 1).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(workers)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let users: Vec<String> = (0..20).map(|i| format!("crash_user_{i}")).collect();
    for user in &users {
        cluster.fund(&client, user, 100_000_000).await;
    }
    let (code, out) = cluster.launch.cli(&["apikey", "create", "--name", "crash"]);
    assert_eq!(code, 0);
    let api_key = serde_json::from_str::<Value>(&out).unwrap()["key"].as_str().unwrap().to_string();
    let pool = {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&cluster.launch.database_url).await.unwrap()
    };
    let mut failures = Vec::new();
    let mut totals = json!({"spends": 0, "holds": 0, "captures": 0, "payments": 0});
    let mut restarts_ms = Vec::new();
    for kill in 1..=kills {
        let acked = Arc::new(Mutex::new(Acked::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let base = cluster.base(0).to_string();
        let tasks: Vec<_> = (0..workers)
            .map(|worker| {
                let (client, base, acked, stop) = (client.clone(), base.clone(), acked.clone(), stop.clone());
                let (users, api_key) = (users.clone(), api_key.clone());
                let tokens: Vec<String> = users.iter().map(|u| cluster.keys.token(u, 3600)).collect();
                tokio::spawn(async move {
                    let mut i = 0usize;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let u = (worker + i) % users.len();
                        match i % 3 {
                            0 => {
                                let key = format!("crash-{kill}-{worker}-{i}");
                                let sent = client
                                    .post(format!("{base}/api/credits"))
                                    .bearer_auth(&tokens[u])
                                    .header("Idempotency-Key", &key)
                                    .json(&json!({"action": "deduct", "amount": 1}))
                                    .send()
                                    .await;
                                if sent.is_ok_and(|r| r.status() == 200) {
                                    acked.lock().unwrap().spends.push((tokens[u].clone(), key));
                                }
                            }
                            1 => {
                                let sent = client
                                    .post(format!("{base}/api/holds"))
                                    .bearer_auth(&api_key)
                                    .json(&json!({"userId": users[u], "amount": 2}))
                                    .send()
                                    .await;
                                let Ok(response) = sent else {
                                    i += 1;
                                    continue;
                                };
                                if response.status() != 200 {
                                    i += 1;
                                    continue;
                                }
                                let Ok(view) = response.json::<Value>().await else {
                                    i += 1;
                                    continue;
                                };
                                let id = view["holdId"].as_str().unwrap_or_default().to_string();
                                acked.lock().unwrap().holds.push(id.clone());
                                let captured = client
                                    .post(format!("{base}/api/holds/{id}/capture"))
                                    .bearer_auth(&api_key)
                                    .json(&json!({}))
                                    .send()
                                    .await;
                                if captured.is_ok_and(|r| r.status() == 200) {
                                    acked.lock().unwrap().captures.push(id);
                                }
                            }
                            _ => {
                                let (event_id, body) = creem_event(&users[u]);
                                if deliver_creem(&client, &base, &body).await == 200 {
                                    acked.lock().unwrap().payments.push(event_id);
                                }
                            }
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300 + rand::random::<u64>() % 1200)).await;
        let server = cluster.servers.pop().unwrap();
        server.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        join_all(tasks).await;
        let restarted = cluster.launch.start(&format!("crashes-after-{kill}")).await;
        restarts_ms.push(restarted.startup.as_secs_f64() * 1000.0);
        cluster.servers.push(restarted);

        if let Err(error) = cluster.check_clean() {
            failures.push(format!("kill {kill}: {error}"));
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        // Every acknowledged spend committed: its key replays the stored answer.
        let replays = join_all(acked.spends.iter().map(|(token, key)| {
            client
                .post(format!("{}/api/credits", cluster.base(0)))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!({"action": "deduct", "amount": 1}))
                .send()
        }))
        .await;
        let lost_spends = replays
            .iter()
            .filter(|r| {
                !r.as_ref().is_ok_and(|r| {
                    r.status() == 200 && r.headers().get("idempotent-replayed").is_some_and(|v| v == "true")
                })
            })
            .count();
        let mut lost_holds = 0;
        for id in &acked.holds {
            let status: Option<String> = sqlx::query_scalar("SELECT status FROM holds WHERE id = $1")
                .bind(id)
                .fetch_optional(&pool)
                .await
                .unwrap();
            let captured = acked.captures.contains(id);
            if status.is_none() || (captured && status.as_deref() != Some("captured")) {
                lost_holds += 1;
            }
        }
        let mut lost_payments = 0;
        for event_id in &acked.payments {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments WHERE event_id = $1")
                .bind(event_id)
                .fetch_one(&pool)
                .await
                .unwrap();
            if n != 1 {
                lost_payments += 1;
            }
        }
        if lost_spends + lost_holds + lost_payments > 0 {
            failures.push(format!(
                "kill {kill}: acknowledged but missing: {lost_spends} spends, {lost_holds} holds/captures, {lost_payments} payments"
            ));
        }
        for (name, n) in [
            ("spends", acked.spends.len()),
            ("holds", acked.holds.len()),
            ("captures", acked.captures.len()),
            ("payments", acked.payments.len()),
        ] {
            totals[name] = json!(totals[name].as_u64().unwrap() + n as u64);
        }
        eprintln!("[crashes] kill {kill}: acknowledged {} spends, {} holds, {} captures, {} payments; all present: {}",
            acked.spends.len(), acked.holds.len(), acked.captures.len(), acked.payments.len(),
            lost_spends + lost_holds + lost_payments == 0);
    }
    let summary = json!({
        "backend": common.name(), "kills": kills, "workers": workers,
        "acknowledged_before_kills": totals, "restart_to_healthy_ms": restarts_ms,
    });
    report("crashes", summary, &failures)
}

/// Mixed load at a steady pace for `minutes`, with four live-update streams
/// open throughout, sampling the server's RSS and
/// open file descriptors every 10 s; growth is the last minute's average over
/// the second minute's (after warm-up).
/// What the server's memory is made of (its `/metrics` gauges
/// `process_malloc_bytes` and `sqlite_memory_bytes`, by part), in KiB: where
/// a soak's growth is, when it grows.
async fn memory_parts(client: &reqwest::Client, base: &str) -> Value {
    let text = match client.get(format!("{base}/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let mut parts = serde_json::Map::new();
    for line in text.lines() {
        for (metric, prefix) in [("process_malloc_bytes", "malloc_"), ("sqlite_memory_bytes", "sqlite_")] {
            let Some(rest) = line.strip_prefix(metric).and_then(|rest| rest.strip_prefix("{part=\"")) else {
                continue;
            };
            if let Some((part, value)) = rest.split_once("\"} ") {
                let kib = value.trim().parse::<f64>().unwrap_or(0.0) / 1024.0;
                parts.insert(format!("{prefix}{part}"), json!(kib.round()));
            }
        }
    }
    Value::Object(parts)
}

pub async fn soak(common: &Common, minutes: u64, workers: usize) -> i32 {
    let cluster = Cluster::start(common, "soak", 1).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(workers).build().unwrap();
    let users: Vec<String> = (0..200).map(|i| format!("soak_user_{i}")).collect();
    for user in &users {
        cluster.fund(&client, user, 500_000_000).await;
    }
    let (_, out) = cluster.launch.cli(&["apikey", "create", "--name", "soak"]);
    let api_key = serde_json::from_str::<Value>(&out).unwrap()["key"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(minutes * 60);
    let base = cluster.base(0).to_string();
    let counts = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (client, base, users, api_key, counts) =
                (client.clone(), base.clone(), users.clone(), api_key.clone(), counts.clone());
            let tokens: Vec<String> =
                users.iter().map(|u| cluster.keys.token(u, 7200 + minutes as i64 * 60)).collect();
            tokio::spawn(async move {
                let mut i = 0usize;
                while Instant::now() < deadline {
                    let u = (worker * 7 + i) % users.len();
                    let (name, status) = match i % 6 {
                        0 | 1 => (
                            "deduct",
                            status(
                                client
                                    .post(format!("{base}/api/credits"))
                                    .bearer_auth(&tokens[u])
                                    .json(&json!({"action": "deduct", "amount": 1})),
                            )
                            .await,
                        ),
                        2 => (
                            "get",
                            status(client.get(format!("{base}/api/credits")).bearer_auth(&tokens[u])).await,
                        ),
                        3 => {
                            let hold = client
                                .post(format!("{base}/api/holds"))
                                .bearer_auth(&api_key)
                                .json(&json!({"userId": users[u], "amount": 1}))
                                .send()
                                .await;
                            let id = match hold {
                                Ok(r) => r
                                    .json::<Value>()
                                    .await
                                    .ok()
                                    .and_then(|v| v["holdId"].as_str().map(String::from)),
                                Err(_) => None,
                            };
                            let status = match id {
                                Some(id) => client
                                    .post(format!("{base}/api/holds/{id}/release"))
                                    .bearer_auth(&api_key)
                                    .json(&json!({}))
                                    .send()
                                    .await
                                    .map(|r| r.status().as_u16())
                                    .unwrap_or(0),
                                None => 0,
                            };
                            ("hold+release", status)
                        }
                        4 => (
                            "history",
                            status(
                                client
                                    .get(format!("{base}/api/credits/history?limit=20"))
                                    .bearer_auth(&tokens[u]),
                            )
                            .await,
                        ),
                        _ => {
                            let (_, body) = creem_event(&users[u]);
                            ("webhook", deliver_creem(&client, &base, &body).await)
                        }
                    };
                    *counts.lock().unwrap().entry(format!("{name} {status}")).or_default() += 1;
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    // Open pages: a live-update stream per watched user for the whole soak,
    // so the server's change watcher works all along; each must stay open and
    // keep receiving the figures of its user's spends.
    let watchers: Vec<_> = users[..4]
        .iter()
        .map(|user| {
            let request = client
                .get(format!("{base}/api/credits/events"))
                .bearer_auth(cluster.keys.token(user, 7200 + minutes as i64 * 60));
            tokio::spawn(async move {
                let Ok(mut response) = request.send().await else { return (0u64, false) };
                let mut events = 0u64;
                loop {
                    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                        return (events, true);
                    };
                    match tokio::time::timeout(left, response.chunk()).await {
                        Err(_) => return (events, true),
                        Ok(Ok(Some(chunk))) => {
                            events += String::from_utf8_lossy(&chunk).matches("event: credits").count() as u64
                        }
                        Ok(_) => return (events, false),
                    }
                }
            })
        })
        .collect();
    let server = &cluster.servers[0];
    let mut samples = Vec::new();
    let started = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let mut sample = json!({"t": started.elapsed().as_secs(), "rss_kb": server.status_kb("VmRSS"), "fds": server.open_files()});
        sample["memory_kb"] = memory_parts(&client, &base).await;
        eprintln!("[soak] {sample}");
        samples.push(sample);
    }
    join_all(tasks).await;
    let streams: Vec<(u64, bool)> =
        join_all(watchers).await.into_iter().map(|r| r.unwrap_or((0, false))).collect();
    let average = |from: u64, to: u64, field: &str| {
        let values: Vec<f64> = samples
            .iter()
            .filter(|s| (from..to).contains(&s["t"].as_u64().unwrap()))
            .map(|s| s[field].as_f64().unwrap())
            .collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    };
    let total = minutes * 60;
    let mut failures = Vec::new();
    let mut growth = json!({});
    for field in ["rss_kb", "fds"] {
        let (early, late) = (average(60, 120, field), average(total - 60, total + 10, field));
        let ratio = late / early - 1.0;
        growth[field] = json!({"minute_2_average": early, "last_minute_average": late, "growth": ratio});
        if ratio > 0.10 {
            failures.push(format!("{field} grew {:.1}% (from {early:.0} to {late:.0})", ratio * 100.0));
        }
    }
    let errors: u64 =
        counts.lock().unwrap().iter().filter(|(k, _)| !k.ends_with(" 200")).map(|(_, v)| v).sum();
    if errors > 0 {
        failures.push(format!("{errors} requests did not answer 200: {:?}", counts.lock().unwrap()));
    }
    for (index, (events, open)) in streams.iter().enumerate() {
        // The first event is the figures at connect; the user spends every few seconds.
        if !open || *events < 2 {
            failures.push(format!("live stream {index}: {events} events, open to the end: {open}"));
        }
    }
    if let Err(error) = cluster.check_clean() {
        failures.push(error);
    }
    let summary = json!({
        "backend": common.name(), "minutes": minutes, "workers": workers,
        "requests": *counts.lock().unwrap(), "growth": growth, "samples": samples,
        "live_stream_events": streams.iter().map(|(events, _)| events).collect::<Vec<_>>(),
    });
    let _ = Backend::Sqlite;
    report("soak", summary, &failures)
}
