//! The benchmark run: several rounds of (database ceiling, our server over
//! HTTP, the in-process ledger API) back to back, so every ratio compares
//! runs made under the same machine load; then latency at a fixed rate,
//! server-rendered pages, memory, start-up and the first-load size.

use crate::ceiling::{self, Ceiling};
use crate::keys::Keys;
use crate::load::{self, closed_loop, closed_loop_with, Http1, LoadResult, Outcome};
use crate::server::{Server, ADMIN};
use crate::{Backend, Common};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const BALANCE: i64 = 900_000_000;

pub async fn run(common: &Common, rounds: usize, load: &crate::Load) -> i32 {
    let crate::Load { secs, users, conns } = *load;
    let duration = Duration::from_secs(secs);
    let keys = Keys::generate();
    let database_url = common.fresh_database("perf").await;
    let launch = common.launch(&database_url, &keys, "");
    let first = launch.start("perf-first").await;
    let first_startup = first.startup;
    first.stop();
    let server = launch.start("perf").await;
    eprintln!(
        "[{}] server healthy after {:?} (fresh database: {:?})",
        common.name(),
        server.startup,
        first_startup
    );

    let Funded { client, user_ids, hot_user, tokens, hot_token, api_key } =
        Funded::new(&launch, &server, &keys, users, conns).await;

    let ceiling_db = common.fresh_database("ceiling").await;
    let work = common.work_dir.clone();
    let mut table: Vec<Value> = Vec::new();
    let mut hot_spent = 0u64;
    for round in 1..=rounds {
        eprintln!("[{}] round {round}/{rounds}", common.name());
        // Each phase announces itself on stderr once its VACUUM is done, so
        // a profiler started on cue records the load alone.
        let phase = |name: &str| eprintln!("  phase {name}");
        phase("ceiling-spread");
        let spread_db = ceiling_rate(common, &ceiling_db, &work, users as i64, conns, duration);
        vacuum(common, &database_url);
        phase("http-spread");
        let spread_http = deduct(&server, tokens.clone(), conns, duration).await;
        phase("ceiling-hot");
        let hot_db = ceiling_rate(common, &ceiling_db, &work, 1, conns, duration);
        vacuum(common, &database_url);
        phase("http-hot");
        let hot_http = deduct(&server, Arc::new(vec![hot_token.clone()]), conns, duration).await;
        hot_spent += hot_http.ok;
        vacuum(common, &database_url);
        phase("hold-capture");
        let holds = hold_capture(&server, &api_key, &user_ids, conns, duration).await;
        for (name, result) in [("deduct", &spread_http), ("deduct-hot", &hot_http), ("hold+capture", &holds)]
        {
            assert_eq!(result.errors, 0, "{name}: {} errors", result.errors);
        }
        let row = json!({
            "round": round,
            "ceiling_spread": spread_db.rate(), "http_spread": spread_http.rate(),
            "ceiling_hot": hot_db.rate(), "http_hot": hot_http.rate(),
            "hold_capture": holds.rate(),
            "http_spread_p99_ms": spread_http.percentile_ms(0.99),
            "http_hot_p99_ms": hot_http.percentile_ms(0.99),
        });
        eprintln!("  {row}");
        table.push(row);
    }

    // Zero overdraft on the hot account: every acknowledged spend is in its
    // figures and nothing went below zero.
    let view: Value = client
        .get(format!("{}/api/credits", server.base))
        .bearer_auth(&hot_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let used = view["credits"]["used"].as_i64().unwrap();
    let remaining = view["credits"]["remaining"].as_i64().unwrap();
    assert_eq!(used as u64, hot_spent, "hot account: used must equal the acknowledged spends");
    assert!(remaining >= 0, "hot account overdrawn");

    vacuum(common, &database_url);
    let get_p99 = oha_fixed_rate(&server, &tokens[0], 2000, secs);
    let pages = oha_pages(&server, &tokens[1], conns, secs);
    let peak_rss_kb = server.status_kb("VmHWM");
    let first_load = first_load_bytes(&server, &tokens[2]).await;
    server.stop();

    // In-process: the same ledger API without HTTP, after the server stopped.
    vacuum(common, &database_url);
    let (inproc_spread, inproc_hot) =
        in_process(&database_url, &keys, &user_ids, &hot_user, conns, duration).await;

    let (check_code, check_out) = launch.cli(&["check"]);
    assert_eq!(check_code, 0, "credits check after the benchmark: {check_out}");

    let result = json!({
        "backend": common.name(),
        "machine": machine(),
        "settings": {"rounds": rounds, "secs": secs, "users": users, "conns": conns},
        "rounds": table,
        "in_process": {"spread": inproc_spread, "hot": inproc_hot},
        "hot_account": {"acknowledged_spends": hot_spent, "used": used, "remaining": remaining},
        "get_credits_fixed_rate": get_p99,
        "ssr_pages": pages,
        "peak_rss_mb": peak_rss_kb as f64 / 1024.0,
        "startup_ms": {"existing_database": server_startup_ms(&launch).await, "fresh_database": first_startup.as_secs_f64() * 1000.0},
        "first_load_bytes": first_load,
        "check_clean": true,
    });
    let out = common.work_dir.join(format!("perf-{}.json", common.name()));
    std::fs::write(&out, serde_json::to_string_pretty(&result).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    eprintln!("results written to {}", out.display());
    0
}

/// PostgreSQL: `VACUUM ANALYZE` of our database before a measurement, as
/// autovacuum would have done by then (`SHOW autovacuum` is `off` on some
/// machines this runs on). Without it, every phase ran on the dead row
/// versions of all phases before it (131,071 in `accounts` for 1,001 live rows
/// after a run), while pgbench's ceiling gets freshly created tables each
/// time. Not done for SQLite, which keeps no dead row versions.
fn vacuum(common: &Common, database_url: &str) {
    if let Backend::Postgres = common.backend {
        let status = std::process::Command::new("psql")
            .args(["-q", "-v", "ON_ERROR_STOP=1", database_url, "-c", "VACUUM ANALYZE"])
            .status()
            .expect("psql");
        assert!(status.success(), "VACUUM ANALYZE of {database_url} failed");
    }
}

fn ceiling_rate(
    common: &Common,
    database_url: &str,
    work: &std::path::Path,
    accounts: i64,
    conns: usize,
    duration: Duration,
) -> Ceiling {
    match common.backend {
        Backend::Sqlite => {
            // The better of one client (no lock waits) and `conns` clients.
            let path = work.join("ceiling.db");
            let many = ceiling::sqlite(&path, accounts, conns, duration / 2);
            let one = ceiling::sqlite(&path, accounts, 1, duration / 2);
            if many.rate() > one.rate() {
                many
            } else {
                one
            }
        }
        Backend::Postgres => {
            ceiling::pg_prepare(database_url, accounts);
            ceiling::pgbench(database_url, work, accounts, conns, duration)
        }
    }
}

/// What every spend measurement starts from: `users` funded users and a hot
/// one with their session tokens, and an API key (for hold+capture).
struct Funded {
    client: reqwest::Client,
    user_ids: Vec<String>,
    hot_user: String,
    tokens: Arc<Vec<String>>,
    hot_token: String,
    api_key: String,
}

impl Funded {
    async fn new(
        launch: &crate::server::Launch,
        server: &Server,
        keys: &Keys,
        users: usize,
        conns: usize,
    ) -> Self {
        let client = load::client(conns);
        let user_ids: Vec<String> = (0..users).map(|i| format!("bench_user_{i}")).collect();
        let hot_user = "bench_hot".to_string();
        let tokens: Arc<Vec<String>> = Arc::new(user_ids.iter().map(|id| keys.token(id, 7200)).collect());
        let hot_token = keys.token(&hot_user, 7200);
        let admin_token = keys.token(ADMIN, 7200);
        fund(&client, server, &tokens, &user_ids, &admin_token).await;
        fund(
            &client,
            server,
            std::slice::from_ref(&hot_token),
            std::slice::from_ref(&hot_user),
            &admin_token,
        )
        .await;
        let (code, out) = launch.cli(&["apikey", "create", "--name", "bench"]);
        assert_eq!(code, 0, "apikey create");
        let api_key = serde_json::from_str::<Value>(&out).unwrap()["key"].as_str().unwrap().to_string();
        Self { client, user_ids, hot_user, tokens, hot_token, api_key }
    }
}

/// Creates each user (first GET) and sets a large balance as the admin.
async fn fund(client: &reqwest::Client, server: &Server, tokens: &[String], users: &[String], admin: &str) {
    let base = server.base.clone();
    futures_util::future::join_all(tokens.chunks(32).zip(users.chunks(32)).map(|(tokens, users)| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            for (token, user) in tokens.iter().zip(users) {
                let response =
                    client.get(format!("{base}/api/credits")).bearer_auth(token).send().await.unwrap();
                assert_eq!(response.status(), 200);
                let response = client
                    .post(format!("{base}/api/credits"))
                    .bearer_auth(admin)
                    .json(&json!({"action": "set", "amount": BALANCE, "userId": user, "reason": "bench"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
            }
        }
    }))
    .await;
}

async fn deduct(server: &Server, tokens: Arc<Vec<String>>, conns: usize, duration: Duration) -> LoadResult {
    let host = format!("127.0.0.1:{}", server.port);
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        tokens
            .iter()
            .map(|token| load::post_bytes(&host, "/api/credits", token, r#"{"action":"deduct","amount":1}"#))
            .collect(),
    );
    let addr = host.parse().expect("address");
    closed_loop_with(
        conns,
        duration,
        |_| Http1::new(addr),
        move |mut connection, worker, iteration| {
            let requests = requests.clone();
            async move {
                let index = (worker + iteration as usize * conns) % requests.len();
                let answer = connection.send(&requests[index]).await;
                (connection, load::outcome_of_answer(&answer))
            }
        },
    )
    .await
}

async fn hold_capture(
    server: &Server,
    api_key: &str,
    users: &[String],
    conns: usize,
    duration: Duration,
) -> LoadResult {
    let host = format!("127.0.0.1:{}", server.port);
    let holds: Arc<Vec<Vec<u8>>> = Arc::new(
        users
            .iter()
            .map(|user| {
                load::post_bytes(
                    &host,
                    "/api/holds",
                    api_key,
                    &json!({"userId": user, "amount": 1}).to_string(),
                )
            })
            .collect(),
    );
    let (addr, key) = (host.parse().expect("address"), api_key.to_string());
    closed_loop_with(
        conns,
        duration,
        |_| Http1::new(addr),
        move |mut connection, worker, iteration| {
            let (holds, host, key) = (holds.clone(), host.clone(), key.clone());
            async move {
                let index = (worker + iteration as usize * conns) % holds.len();
                let hold = connection.send(&holds[index]).await;
                let outcome = load::outcome_of_answer(&hold);
                let Ok((_, body)) = hold else { return (connection, outcome) };
                if outcome != Outcome::Ok {
                    return (connection, outcome);
                }
                let id = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["holdId"].as_str().map(String::from));
                let Some(id) = id else { return (connection, Outcome::Error) };
                let capture = load::post_bytes(&host, &format!("/api/holds/{id}/capture"), &key, "{}");
                let answer = connection.send(&capture).await;
                (connection, load::outcome_of_answer(&answer))
            }
        },
    )
    .await
}

async fn in_process(
    database_url: &str,
    keys: &Keys,
    users: &[String],
    hot_user: &str,
    conns: usize,
    duration: Duration,
) -> (Value, Value) {
    let service = in_process_service(database_url, keys).await;
    let body: serde_json::Map<String, Value> =
        serde_json::from_str(r#"{"action":"deduct","amount":1}"#).unwrap();
    let mut out = Vec::new();
    for set in [users.to_vec(), vec![hot_user.to_string()]] {
        let principals: Arc<Vec<credits::auth::Principal>> =
            Arc::new(set.iter().map(|id| credits::auth::Principal::user(id, None, None, false)).collect());
        let (service, body) = (service.clone(), Arc::new(body.clone()));
        let cpu = crate::server::cpu_secs("self");
        let result = closed_loop(conns, duration, move |worker, iteration| {
            let principal = principals[(worker + iteration as usize * conns) % principals.len()].clone();
            let (service, body) = (service.clone(), body.clone());
            async move {
                match service.change_credits(&principal, &body, None).await {
                    Ok(_) => Outcome::Ok,
                    Err(credits::service::ServiceError::Insufficient { .. }) => Outcome::Refused,
                    Err(error) => {
                        eprintln!("in-process error: {error:?}");
                        Outcome::Error
                    }
                }
            }
        })
        .await;
        let cpu_us = (crate::server::cpu_secs("self") - cpu) * 1e6 / result.ok.max(1) as f64;
        out.push(
            json!({"rate": result.rate(), "p99_ms": result.percentile_ms(0.99), "errors": result.errors,
                        "cpu_us_per_spend": cpu_us}),
        );
    }
    (out[0].clone(), out[1].clone())
}

async fn in_process_service(database_url: &str, keys: &Keys) -> credits::service::CreditsService {
    let vars = [
        ("DATABASE_URL", database_url.to_string()),
        ("CLERK_JWT_KEY", keys.public_pem.clone()),
        ("CREDITS_ADDR", "127.0.0.1:0".to_string()),
    ];
    let config = credits_server::config::Config::from_lookup(|name| {
        vars.iter().find(|(key, _)| *key == name).map(|(_, value)| value.clone())
    })
    .expect("config");
    let db = credits_server::open_database(&config).await.expect("database");
    credits_server::build_service(&config, db).expect("service")
}

/// `credits-bench spend`: funds the users, then runs the spread and hot
/// phases once (and hold+capture over HTTP), for profiling between full runs.
pub async fn spend(common: &Common, load: &crate::Load, http: bool) -> i32 {
    if http {
        return spend_http(common, load).await;
    }
    let crate::Load { secs, users, conns } = *load;
    let keys = Keys::generate();
    let database_url = common.fresh_database("spend").await;
    let service = in_process_service(&database_url, &keys).await;
    let user_ids: Vec<String> = (0..users).map(|i| format!("bench_user_{i}")).collect();
    let admin = credits::auth::Principal::user(ADMIN, None, None, true);
    for user in user_ids.iter().chain(std::iter::once(&"bench_hot".to_string())) {
        let body = json!({"action": "set", "amount": BALANCE, "userId": user, "reason": "bench"});
        let own = credits::auth::Principal::user(user, None, None, false);
        service.credits_view(&own, None).await.expect("create");
        service.change_credits(&admin, body.as_object().unwrap(), None).await.expect("fund");
    }
    let (spread, hot) =
        in_process(&database_url, &keys, &user_ids, "bench_hot", conns, Duration::from_secs(secs)).await;
    println!("{}", json!({"backend": common.name(), "spread": spread, "hot": hot}));
    0
}

async fn spend_http(common: &Common, load: &crate::Load) -> i32 {
    let crate::Load { secs, users, conns } = *load;
    let duration = Duration::from_secs(secs);
    let keys = Keys::generate();
    let database_url = common.fresh_database("spend").await;
    let launch = common.launch(&database_url, &keys, "");
    let server = launch.start("spend").await;
    let Funded { user_ids, tokens, hot_token, api_key, .. } =
        Funded::new(&launch, &server, &keys, users, conns).await;
    let mut figures = serde_json::Map::new();
    for phase in ["spread", "hot", "hold+capture"] {
        vacuum(common, &database_url);
        eprintln!("  phase {phase}");
        let (cpu, own_cpu) = (server.cpu_secs(), crate::server::cpu_secs("self"));
        let batches = group_commit_stats(&server).await;
        let result = match phase {
            "spread" => deduct(&server, tokens.clone(), conns, duration).await,
            "hot" => deduct(&server, Arc::new(vec![hot_token.clone()]), conns, duration).await,
            _ => hold_capture(&server, &api_key, &user_ids, conns, duration).await,
        };
        let after = group_commit_stats(&server).await;
        figures.insert(
            phase.into(),
            json!({"rate": result.rate(), "p99_ms": result.percentile_ms(0.99), "errors": result.errors,
                   "server_cpu_us_per_spend": (server.cpu_secs() - cpu) * 1e6 / result.ok.max(1) as f64,
                   "client_cpu_us_per_spend":
                       (crate::server::cpu_secs("self") - own_cpu) * 1e6 / result.ok.max(1) as f64,
                   "mean_batch": mean_batch(batches, after),
                   "batch_phase_ms": mean_phases_ms(batches, after)}),
        );
        eprintln!("    {}", figures[phase]);
    }
    vacuum(common, &database_url);
    eprintln!("  phase GET /api/credits at 2,000/s");
    figures.insert("get_credits_fixed_rate".into(), oha_fixed_rate(&server, &tokens[0], 2000, secs));
    let peak_rss_mb = server.status_kb("VmHWM") as f64 / 1024.0;
    server.stop();
    println!("{}", json!({"backend": common.name(), "http": figures, "peak_rss_mb": peak_rss_mb}));
    0
}

/// The group committer's histograms so far, from `/metrics`: the batch
/// sizes' (sum, count) and, per phase, the seconds its transactions spent
/// in it and how many there were.
#[derive(Debug, Clone, Copy, Default)]
struct Batches {
    jobs: f64,
    batches: f64,
    /// Seconds and transactions of `begin`, `work`, `commit`
    /// (`group_commit_phase_seconds`: batches and jobs alone).
    phases: [(f64, f64); 3],
}

const PHASES: [&str; 3] = ["begin", "work", "commit"];

async fn group_commit_stats(server: &Server) -> Batches {
    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    let value = |name: &str| -> f64 {
        text.lines().find_map(|line| line.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
    };
    Batches {
        jobs: value("group_commit_batch_size_sum"),
        batches: value("group_commit_batch_size_count"),
        phases: PHASES.map(|phase| {
            let labels = format!("{{phase=\"{phase}\"}}");
            (
                value(&format!("group_commit_phase_seconds_sum{labels}")),
                value(&format!("group_commit_phase_seconds_count{labels}")),
            )
        }),
    }
}

/// Jobs per batch of more than one between two `group_commit_stats` readings.
fn mean_batch(before: Batches, after: Batches) -> f64 {
    (after.jobs - before.jobs) / (after.batches - before.batches).max(1.0)
}

/// The mean milliseconds of each phase of a transaction between two readings.
fn mean_phases_ms(before: Batches, after: Batches) -> Value {
    let mut phases = serde_json::Map::new();
    for (index, phase) in PHASES.iter().enumerate() {
        let ((sum_before, count_before), (sum_after, count_after)) =
            (before.phases[index], after.phases[index]);
        let ms = (sum_after - sum_before) * 1000.0 / (count_after - count_before).max(1.0);
        phases.insert((*phase).into(), json!((ms * 1000.0).round() / 1000.0));
    }
    Value::Object(phases)
}

/// Start-up to healthy on an existing database, the median of five starts.
async fn server_startup_ms(launch: &crate::server::Launch) -> f64 {
    let mut times = Vec::new();
    for attempt in 0..5 {
        let server = launch.start(&format!("startup-{attempt}")).await;
        times.push(server.startup.as_secs_f64() * 1000.0);
        server.stop();
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[2]
}

fn oha(args: &[String]) -> Value {
    let output = std::process::Command::new("oha")
        .args(["--no-tui", "--output-format", "json"])
        .args(args)
        .output()
        .expect("oha (cargo install oha)");
    assert!(output.status.success(), "oha failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("oha json")
}

/// `GET /api/credits` at a fixed rate: latency percentiles.
fn oha_fixed_rate(server: &Server, token: &str, rate: u32, secs: u64) -> Value {
    let report = oha(&[
        "-z".into(),
        format!("{secs}s"),
        "-q".into(),
        rate.to_string(),
        "-c".into(),
        "64".into(),
        "-H".into(),
        format!("Authorization: Bearer {token}"),
        format!("{}/api/credits", server.base),
    ]);
    summarize(&report)
}

/// Server-rendered `/` for a signed-in user, as fast as it goes.
fn oha_pages(server: &Server, token: &str, conns: usize, secs: u64) -> Value {
    let report = oha(&[
        "-z".into(),
        format!("{secs}s"),
        "-c".into(),
        conns.to_string(),
        "-H".into(),
        format!("Cookie: __session={token}"),
        format!("{}/", server.base),
    ]);
    summarize(&report)
}

fn summarize(report: &Value) -> Value {
    let ms = |name: &str| report["latencyPercentiles"][name].as_f64().unwrap_or(f64::NAN) * 1000.0;
    json!({
        "requests_per_sec": report["summary"]["requestsPerSec"],
        "success_rate": report["summary"]["successRate"],
        "p50_ms": ms("p50"), "p99_ms": ms("p99"), "p99.9_ms": ms("p99.9"),
        "status_codes": report["statusCodeDistribution"],
    })
}

/// Compressed bytes of the first load of `/`: the HTML and every file under
/// `/pkg/` it loads — each one the page names (stylesheet, preloads, the
/// hydration script's JS and WASM), and each JS module those import (the
/// WASM-split loader) — as the server sends it with `Accept-Encoding: br, gzip`.
/// Lazily loaded page chunks that `/` neither names nor preloads are not part
/// of it.
async fn first_load_bytes(server: &Server, token: &str) -> Value {
    let client = reqwest::Client::builder().no_gzip().no_brotli().no_deflate().build().unwrap();
    let fetch = |path: String, encoding: &'static str| {
        let client = client.clone();
        let url = format!("{}{path}", server.base);
        let token = token.to_string();
        async move {
            let response = client
                .get(url)
                .header("accept-encoding", encoding)
                .header("cookie", format!("__session={token}"))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{path}: {}", response.status());
            let encoding = response
                .headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("identity")
                .to_string();
            (response.bytes().await.unwrap().to_vec(), encoding)
        }
    };
    let (html, _) = fetch("/".into(), "identity").await;
    let html = String::from_utf8_lossy(&html).into_owned();
    let mut queue: Vec<String> = pkg_references(&html);
    // The hydration script imports credits.js and instantiates credits.wasm.
    for asset in ["/pkg/credits.css", "/pkg/credits.js", "/pkg/credits.wasm"] {
        assert!(
            html.contains(asset.trim_start_matches('/')) || asset.ends_with(".wasm"),
            "{asset} not in the page"
        );
        queue.push(asset.to_string());
    }
    let mut parts = vec![("/".to_string(), fetch("/".into(), "br, gzip").await)];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(asset) = queue.pop() {
        if !seen.insert(asset.clone()) {
            continue;
        }
        if asset.ends_with(".js") {
            let (plain, _) = fetch(asset.clone(), "identity").await;
            queue.extend(
                js_imports(&String::from_utf8_lossy(&plain)).into_iter().map(|name| format!("/pkg/{name}")),
            );
        }
        parts.push((asset.clone(), fetch(asset, "br, gzip").await));
    }
    let total: usize = parts.iter().map(|(_, (bytes, _))| bytes.len()).sum();
    json!({
        "total": total,
        "parts": parts.iter().map(|(path, (bytes, encoding))| json!({"path": path, "bytes": bytes.len(), "encoding": encoding})).collect::<Vec<_>>(),
    })
}

/// The sibling modules a (minified) JS module imports: `from"./x.js"`,
/// `from "./x.js"` and `import("./x.js")`.
fn js_imports(js: &str) -> Vec<String> {
    let mut found = Vec::new();
    for opener in ["from\"./", "from \"./", "import(\"./"] {
        let mut rest = js;
        while let Some(at) = rest.find(opener) {
            rest = &rest[at + opener.len()..];
            let name = &rest[..rest.find('"').unwrap_or(rest.len())];
            if name.ends_with(".js") {
                found.push(name.to_string());
            }
        }
    }
    found
}

/// Every quoted reference in `html` that starts with `/pkg/` and names a
/// `.js`, `.css` or `.wasm` file.
fn pkg_references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for quote in ['"', '\'', '`'] {
        let needle = format!("{quote}/pkg/");
        let mut rest = html;
        while let Some(at) = rest.find(&needle) {
            rest = &rest[at + 1..];
            let end = rest.find(quote).unwrap_or(rest.len());
            let name = &rest[..end];
            if [".js", ".css", ".wasm"].iter().any(|ext| name.ends_with(ext)) {
                found.push(name.to_string());
            }
        }
    }
    found
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("model name"))
        .map(|line| line.split(':').nth(1).unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    json!({"cpu": cpu, "cores": cores})
}
