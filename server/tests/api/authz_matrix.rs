//! The authorization matrix: every route × every kind of caller → the status it
//! must answer. `ROUTES` is the specification; the test runs every cell against a
//! live server, writes the table as Markdown to `target/authz-matrix.md`, and keeps
//! the committed copy, docs/authz-matrix.md, honest: with
//! `CREDITS_WRITE_AUTHZ_MATRIX=1` it writes that file, otherwise the copy must match.

use crate::both;
use crate::support::{now, sign, unique, Backend, TestApp, ADMIN, STANDARD_PRODUCT, STARTER_PRODUCT};
use axum::routing::post;
use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Clerk settings of the matrix server, so that wrong `iss` and `azp` mean something.
const ISSUER: &str = "https://clerk.matrix.example";
const PARTY: &str = "https://app.matrix.example";
const EVIL: &str = "https://evil.example";

const START: &str = "<!-- authz-matrix:start -->";
const END: &str = "<!-- authz-matrix:end -->";

/// The columns, in order.
const CALLERS: [&str; 10] = [
    "anonymous",
    "malformed token",
    "expired token",
    "wrong issuer",
    "wrong azp",
    "user",
    "other user",
    "admin",
    "API key",
    "revoked API key",
];

/// The column of the active worker key in `CALLERS`.
const API_KEY: usize = 8;

/// A request body; `{user}` in it is replaced by the user's id.
#[derive(Clone, Copy)]
enum Body {
    None,
    Json(&'static str),
    /// A CSV body (`text/csv`), as the admin page sends a batch.
    Csv(&'static str),
    Form(&'static [(&'static str, &'static str)]),
}

/// One row: `"METHOD /path"` (with `{user}`, `{hold}`, `{worker_hold}`,
/// `{grant}` filled in per cell), its body, and the expected status for each
/// caller of `CALLERS`.
struct Route {
    request: &'static str,
    body: Body,
    expect: [u16; 10],
}

const fn row(request: &'static str, body: Body, expect: [u16; 10]) -> Route {
    Route { request, body, expect }
}

const NONE: Body = Body::None;
const DEDUCT: Body = Body::Json(r#"{"action":"deduct","amount":1,"userId":"{user}"}"#);
const ADD: Body = Body::Json(r#"{"action":"add","amount":1,"userId":"{user}"}"#);
const SET: Body = Body::Json(r#"{"action":"set","amount":500,"userId":"{user}"}"#);
const CHECKOUT: Body = Body::Json(r#"{"plan":"starter"}"#);
const HOLD: Body = Body::Json(r#"{"userId":"{user}","amount":1}"#);
const EMPTY: Body = Body::Json("{}");
const ADJUST: Body =
    Body::Json(r#"{"adjustments":[{"userId":"{user}","action":"add","amount":1,"reason":"matrix"}]}"#);
const VOID: Body = Body::Json(r#"{"reason":"matrix"}"#);
const CREEM_EVENT: Body = Body::Json(
    r#"{"id":"evt_matrix","eventType":"checkout.completed","created_at":1700000000000,"object":{}}"#,
);
const CLERK_EVENT: Body = Body::Json(r#"{"type":"user.created","data":{"id":"user_matrix"}}"#);
const CREDENTIALS: Body = Body::Json(r#"{"email":"matrix@example.com","password":"correct horse battery"}"#);
const LANGUAGE: Body = Body::Form(&[("lang", "en")]);
const PLAN: Body = Body::Form(&[("plan", "starter")]);
const CSV: Body = Body::Csv("userId,action,amount,reason\n{user},add,1,matrix\n");

/// Every route of the service. Columns: anonymous, malformed token, expired token,
/// wrong issuer, wrong azp, user, other user, admin, API key, revoked API key.
#[rustfmt::skip]
const ROUTES: &[Route] = &[
    // The contract's user routes (§3).
    row("GET /api/credits?userId={user}",     NONE,     [401, 401, 401, 401, 401, 200, 403, 200, 200, 401]),
    row("POST /api/credits",                  DEDUCT,   [401, 401, 401, 401, 401, 200, 403, 200, 403, 401]),
    row("POST /api/credits",                  ADD,      [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    row("POST /api/credits",                  SET,      [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    row("GET /api/credits/history",           NONE,     [401, 401, 401, 401, 401, 200, 200, 200, 403, 401]),
    row("GET /api/credits/events",            NONE,     [401, 401, 401, 401, 401, 200, 200, 200, 403, 401]),
    row("GET /api/user/sync",                 NONE,     [401, 401, 401, 401, 401, 200, 200, 200, 403, 401]),
    row("POST /api/user/sync",                NONE,     [401, 401, 401, 401, 401, 200, 200, 200, 403, 401]),
    row("POST /api/checkout",                 CHECKOUT, [401, 401, 401, 401, 401, 200, 200, 200, 403, 401]),
    // Holds: users for themselves, API keys and admins for anyone; a hold a
    // worker made is resolved by API keys and admins only, never by its user.
    row("POST /api/holds",                    HOLD,     [401, 401, 401, 401, 401, 200, 403, 200, 200, 401]),
    row("POST /api/holds/{hold}/capture",     EMPTY,    [401, 401, 401, 401, 401, 200, 404, 200, 200, 401]),
    row("POST /api/holds/{hold}/release",     EMPTY,    [401, 401, 401, 401, 401, 200, 404, 200, 200, 401]),
    row("POST /api/holds/{worker_hold}/capture", EMPTY, [401, 401, 401, 401, 401, 403, 404, 200, 200, 401]),
    row("POST /api/holds/{worker_hold}/release", EMPTY, [401, 401, 401, 401, 401, 403, 404, 200, 200, 401]),
    row("POST /api/holds/hold_none/capture",  EMPTY,    [401, 401, 401, 401, 401, 404, 404, 404, 404, 401]),
    // Admins only.
    row("GET /api/admin/users?q={user}",      NONE,     [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    row("GET /api/admin/users/{user}",        NONE,     [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    row("POST /api/admin/adjust",             ADJUST,   [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    row("POST /api/admin/adjust",             CSV,      [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    row("GET /api/admin/audit?userId={user}", NONE,     [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    row("GET /api/admin/stats?from=2024-01-01&to=2024-01-31",
                                              NONE,     [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    row("GET /api/admin/check",               NONE,     [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    row("GET /api/admin/webhooks",            NONE,     [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    row("GET /api/admin/payments",            NONE,     [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    row("POST /api/admin/grants/{grant}/void", VOID,    [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    row("GET /api/test-creem",                NONE,     [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    // Authenticated by their signatures, never by the caller: unsigned is 401 for all.
    row("POST /api/webhooks/creem",           CREEM_EVENT, [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
    row("POST /api/webhooks/clerk",           CLERK_EVENT, [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
    // Public.
    row("GET /healthz",                       NONE,     [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET /metrics",                       NONE,     [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET /api/openapi.json",              NONE,     [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    // Local accounts are off while Clerk is configured; signing out is harmless.
    row("POST /api/auth/sign-up",             CREDENTIALS, [404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
    row("POST /api/auth/sign-in",             CREDENTIALS, [404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
    row("POST /api/auth/sign-out",            NONE,     [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    // Pages render for everyone; what they show comes from the API above.
    row("GET /",                              NONE,     [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET /history",                       NONE,     [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET /test-credits",                  NONE,     [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET /admin",                         NONE,     [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    // The pages' own server functions.
    row("GET /api/ui/session",                NONE,     [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("POST /api/ui/language",              LANGUAGE, [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("POST /api/ui/generate-video",        NONE,     [401, 401, 401, 401, 401, 200, 200, 200, 400, 401]),
    row("POST /api/ui/test-webhook",          PLAN,     [401, 401, 401, 401, 401, 403, 403, 200, 403, 401]),
    // The admin page calls `/api/admin/*` itself: the old `/api/ui/admin-*` twins are gone.
    row("GET /api/ui/admin-users?q={user}",   NONE,     [404, 404, 404, 404, 404, 404, 404, 404, 404, 404]),
];

const LEGEND: &str = "\
_Generated by `server/tests/api/authz_matrix.rs`, which asserts every cell against a live server \
on SQLite and PostgreSQL; do not edit by hand. Regenerate with \
`CREDITS_WRITE_AUTHZ_MATRIX=1 cargo test -p credits-server --features credits/ssr --test api authz_matrix`._

The server signs in with Clerk (`CLERK_JWT_KEY`, `CLERK_ISSUER`, `CLERK_AUTHORIZED_PARTIES`), so \
local accounts are off. Callers: **anonymous** sends no credentials; **malformed token** a bearer \
that is not a JWT; **expired token**, **wrong issuer** and **wrong azp** a correctly signed token for \
`{user}` that is expired, from another `iss`, or for another `azp`; **user** is `{user}` with a valid \
token; **other user** is another signed-in user sending the same request (on routes without a target \
user it acts on its own account); **admin** is listed in `CREDITS_ADMIN_USER_IDS`; **API key** is an \
active worker key, **revoked API key** one that was revoked. `{hold}` is a fresh open hold `{user}` \
made, `{worker_hold}` a fresh open hold of `{user}` that the API key made, and `{grant}` a fresh grant \
of `{user}`, one per cell. Webhook deliveries carry no signature. \
Rate limits are off for this table so that no cell reads 429.
";

/// A config file with the suite's products and no rate limits (once per process).
fn config_file() -> String {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join("credits-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("authz-config-{}.toml", std::process::id()));
        let text = format!(
            "[[plans]]\nname = \"starter\"\ncreem_product_id = \"{STARTER_PRODUCT}\"\n\
             [[plans]]\nname = \"standard\"\ncreem_product_id = \"{STANDARD_PRODUCT}\"\n\
             [[plans]]\nname = \"premium\"\ncreem_product_id = \"prod_premium\"\n\
             [creem]\nrequest_timeout_ms = 2000\n\
             [rate_limits]\nsign_in = {{ per_minute = 0 }}\nsign_up = {{ per_minute = 0 }}\n\
             checkout = {{ per_minute = 0 }}\nwebhooks = {{ per_minute = 0 }}\n"
        );
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    })
    .clone()
}

/// A Creem API that creates every checkout, so an allowed checkout is a 200.
async fn fake_creem() -> String {
    let app = axum::Router::new().route(
        "/v1/checkouts",
        post(|axum::Json(body): axum::Json<Value>| async move {
            let request = body["request_id"].as_str().unwrap_or("req").to_string();
            axum::Json(
                json!({"id": "ch_matrix", "checkout_url": format!("https://checkout.example/{request}")}),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// A Clerk session token for `sub` with the given `iss`, `azp` and lifetime.
fn clerk_token(sub: &str, iss: &str, azp: &str, exp_in: i64) -> String {
    let t = now();
    sign(
        0,
        None,
        json!({"sub": sub, "iss": iss, "azp": azp, "iat": t - 900, "nbf": t - 900, "exp": t + exp_in}),
    )
}

/// The running server, its users, and the credentials of every column.
struct World {
    app: TestApp,
    client: reqwest::Client,
    user: String,
    user_token: String,
    admin_token: String,
    bearers: Vec<Option<String>>,
}

impl World {
    async fn start(backend: Backend) -> Self {
        let extra = [
            ("CLERK_ISSUER", ISSUER.to_string()),
            ("CLERK_AUTHORIZED_PARTIES", PARTY.to_string()),
            ("CREDITS_CONFIG", config_file()),
            ("CREEM_API_BASE", fake_creem().await),
        ];
        let app = TestApp::spawn_with(backend, &extra).await;
        let (user, other) = (unique("matrix_user"), unique("matrix_other"));
        let pool = &app.service.db().pool;
        let (_, key) = credits::auth::api_keys::create(pool, "matrix worker").await.unwrap();
        let (revoked_id, revoked) = credits::auth::api_keys::create(pool, "retired worker").await.unwrap();
        assert!(credits::auth::api_keys::revoke(pool, &revoked_id).await.unwrap());
        let valid = |sub: &str| clerk_token(sub, ISSUER, PARTY, 900);
        let bearers = vec![
            None,
            Some("not.a.token".to_string()),
            Some(clerk_token(&user, ISSUER, PARTY, -60)),
            Some(clerk_token(&user, EVIL, PARTY, 900)),
            Some(clerk_token(&user, ISSUER, EVIL, 900)),
            Some(valid(&user)),
            Some(valid(&other)),
            Some(valid(ADMIN)),
            Some(key),
            Some(revoked),
        ];
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // As `TestApp`'s client: a request that hangs fails the test, yet
            // a page rendered on a loaded CI machine has time.
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .unwrap();
        let world = Self {
            app,
            client,
            user: user.clone(),
            user_token: valid(&user),
            admin_token: valid(ADMIN),
            bearers,
        };
        // Enough credits everywhere that no allowed cell is a 402.
        for who in [&user, &other, &ADMIN.to_string()] {
            let created = world.call("GET", "/api/credits", Some(&valid(who)), NONE).await;
            assert_eq!(created.0, 200, "{}", created.1);
            let body = json!({"action": "set", "amount": 100_000, "userId": who}).to_string();
            let set = world
                .send(
                    "POST",
                    "/api/credits",
                    Some(&world.admin_token),
                    Some(("application/json", body)),
                    None,
                )
                .await;
            assert_eq!(set.0, 200, "{}", set.1);
        }
        world
    }

    /// Sends one request; the status and the body.
    async fn send(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        text: Option<(&'static str, String)>,
        form: Option<Vec<(String, String)>>,
    ) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let request = || {
            let mut request = self.client.request(method.clone(), self.app.url(path));
            if let Some(bearer) = bearer {
                request = request.bearer_auth(bearer);
            }
            if let Some((content_type, text)) = &text {
                request = request.header(CONTENT_TYPE, *content_type).body(text.clone());
            }
            if let Some(form) = &form {
                request = request.form(form);
            }
            request
        };
        // A GET whose kept-alive connection failed before any answer is sent
        // once more, as browsers do with idempotent requests (RFC 9110,
        // 9.2.2): the matrix is about statuses, not about the transport. A
        // timeout or a second failure fails the test, with the whole cause.
        let response = match request().send().await {
            Err(error) if method == reqwest::Method::GET && !error.is_timeout() => {
                eprintln!("{path}: {error:?}; sending it once more");
                request().send().await
            }
            sent => sent,
        };
        let response = response.unwrap_or_else(|error| panic!("{path}: {error:?}"));
        let status = response.status().as_u16();
        let streaming = response
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|value| value.to_str().unwrap_or("").starts_with("text/event-stream"));
        if streaming {
            return (status, "(event stream)".into());
        }
        (status, response.text().await.unwrap_or_default())
    }

    /// Sends `request` ("METHOD /path") with `body`, placeholders filled in.
    async fn call(&self, method: &str, path: &str, bearer: Option<&str>, body: Body) -> (u16, String) {
        let fill = |text: &str| text.replace("{user}", &self.user);
        let (text, form) = match body {
            Body::None => (None, None),
            Body::Json(text) => (Some(("application/json", fill(text))), None),
            Body::Csv(text) => (Some(("text/csv", fill(text))), None),
            Body::Form(pairs) => (None, Some(pairs.iter().map(|(k, v)| (k.to_string(), fill(v))).collect())),
        };
        self.send(method, &fill(path), bearer, text, form).await
    }

    /// A new open hold of the user.
    async fn fresh_hold(&self) -> String {
        let body = Some(("application/json", json!({"amount": 1, "ttlSeconds": 3600}).to_string()));
        let (status, text) = self.send("POST", "/api/holds", Some(&self.user_token), body, None).await;
        assert_eq!(status, 200, "{text}");
        let hold: Value = serde_json::from_str(&text).unwrap();
        hold["holdId"].as_str().unwrap().to_string()
    }

    /// A new open hold of the user, made by the worker's API key.
    async fn fresh_worker_hold(&self) -> String {
        let body = Some((
            "application/json",
            json!({"userId": self.user, "amount": 1, "ttlSeconds": 3600}).to_string(),
        ));
        let (status, text) =
            self.send("POST", "/api/holds", self.bearers[API_KEY].as_deref(), body, None).await;
        assert_eq!(status, 200, "{text}");
        let hold: Value = serde_json::from_str(&text).unwrap();
        hold["holdId"].as_str().unwrap().to_string()
    }

    /// A new live grant of the user (an admin's add), by id.
    async fn fresh_grant(&self) -> String {
        let body = json!({"action": "add", "amount": 2, "userId": self.user, "reason": "matrix grant"});
        let response = self
            .app
            .client
            .post(self.app.url("/api/credits"))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let view: Value = response.json().await.unwrap();
        let ids = view["grants"].as_array().unwrap().iter().filter_map(|grant| grant["id"].as_i64());
        ids.max().expect("the add made a grant").to_string()
    }

    /// Runs one cell with fresh resources where the route consumes them.
    async fn cell(&self, route: &Route, caller: usize) -> (u16, String) {
        let (method, path) = route.request.split_once(' ').unwrap();
        let mut path = path.to_string();
        if path.contains("{hold}") {
            path = path.replace("{hold}", &self.fresh_hold().await);
        }
        if path.contains("{worker_hold}") {
            path = path.replace("{worker_hold}", &self.fresh_worker_hold().await);
        }
        if path.contains("{grant}") {
            path = path.replace("{grant}", &self.fresh_grant().await);
        }
        self.call(method, &path, self.bearers[caller].as_deref(), route.body).await
    }
}

fn body_text(body: Body) -> String {
    match body {
        Body::None => String::new(),
        Body::Json(text) => format!("`{text}`"),
        Body::Csv(text) => format!("`{}` (CSV)", text.replace('\n', "\\n")),
        Body::Form(pairs) => {
            let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("`{}` (form)", pairs.join("&").replace('\n', "\\n"))
        }
    }
}

/// The table as Markdown: one row per route, one column per caller.
fn markdown(cells: &[[String; 10]]) -> String {
    let mut out = String::from("| Request | Body |");
    for caller in CALLERS {
        out.push_str(&format!(" {caller} |"));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---:|".repeat(CALLERS.len()));
    out.push('\n');
    for (route, row) in ROUTES.iter().zip(cells) {
        out.push_str(&format!("| `{}` | {} |", route.request, body_text(route.body)));
        for cell in row {
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out
}

fn as_cells(statuses: impl Iterator<Item = [u16; 10]>) -> Vec<[String; 10]> {
    statuses.map(|row| row.map(|status| status.to_string())).collect()
}

/// The generated section between the markers.
fn section(table: &str) -> String {
    format!("{LEGEND}\n{table}")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Writes `target/authz-matrix.md`, and docs/authz-matrix.md when asked to;
/// otherwise the committed copy in docs/authz-matrix.md, if there is one, must
/// equal the table.
fn publish(section: &str) {
    let root = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("authz-matrix.md"), format!("# Authorization matrix\n\n{section}")).unwrap();

    let path = root.join("docs").join("authz-matrix.md");
    if std::env::var("CREDITS_WRITE_AUTHZ_MATRIX").is_ok_and(|value| value == "1") {
        let text = format!("# Authorization matrix\n\n{START}\n{section}{END}\n");
        std::fs::write(&path, text).unwrap();
    } else if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some((start, end)) = markers(&text) {
            assert_eq!(
                text[start + START.len()..end].trim(),
                section.trim(),
                "docs/authz-matrix.md differs from the test's matrix; regenerate it with \
                 CREDITS_WRITE_AUTHZ_MATRIX=1 cargo test -p credits-server --features credits/ssr --test api authz_matrix"
            );
        }
    }
}

/// Byte offsets of the start and end markers, in order.
fn markers(text: &str) -> Option<(usize, usize)> {
    let start = text.find(START)?;
    let end = start + text[start..].find(END)?;
    Some((start, end))
}

async fn every_route_answers_every_caller_as_the_matrix_says(backend: Backend) {
    for route in ROUTES {
        assert!(
            matches!(route.request.split_once(' '), Some(("GET" | "POST", path)) if path.starts_with('/'))
        );
    }
    let world = World::start(backend).await;
    let mut actual = Vec::new();
    let mut mismatches = Vec::new();
    for route in ROUTES {
        let mut row = [0u16; 10];
        for (caller, status) in row.iter_mut().enumerate() {
            let (got, body) = world.cell(route, caller).await;
            *status = got;
            if got != route.expect[caller] {
                mismatches.push(format!(
                    "{} {} as {}: expected {}, got {got}: {}",
                    route.request,
                    body_text(route.body),
                    CALLERS[caller],
                    route.expect[caller],
                    body.chars().take(300).collect::<String>()
                ));
            }
        }
        actual.push(row);
    }
    let actual_table = markdown(&as_cells(actual.iter().copied()));
    if !mismatches.is_empty() {
        let expected_table = markdown(&as_cells(ROUTES.iter().map(|route| route.expect)));
        let marked: Vec<[String; 10]> = ROUTES
            .iter()
            .zip(&actual)
            .map(|(route, got)| {
                std::array::from_fn(|i| {
                    if got[i] == route.expect[i] {
                        got[i].to_string()
                    } else {
                        format!("**{}≠{}**", got[i], route.expect[i])
                    }
                })
            })
            .collect();
        panic!(
            "{} cell(s) differ from the authorization matrix on {backend:?}:\n{}\n\n\
             EXPECTED:\n{expected_table}\nACTUAL:\n{actual_table}\nACTUAL≠EXPECTED marked:\n{}",
            mismatches.len(),
            mismatches.join("\n"),
            markdown(&marked)
        );
    }
    if backend == Backend::Sqlite {
        publish(&section(&actual_table));
    }
}
both!(every_route_answers_every_caller_as_the_matrix_says);

/// The `name=value` of a Set-Cookie header called `name`.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    let prefix = format!("{name}=");
    let header = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {name} cookie"));
    header.split(';').next().unwrap().to_string()
}

/// Local accounts (no Clerk): a session cookie alone changes nothing, on the
/// admin routes as everywhere else; with the CSRF token the same request passes.
async fn cookie_sessions_need_the_csrf_token_on_every_admin_write(backend: Backend) {
    let local = [("CLERK_JWT_KEY", String::new())];
    let first = TestApp::spawn_with(backend, &local).await;
    let email = format!("{}@example.com", unique("matrix_admin"));
    let credentials = json!({"email": email, "password": "correct horse battery"});
    let signed_up = first.post_json("/api/auth/sign-up", None, &credentials, None).await;
    assert_eq!(signed_up.status(), 200);
    let session = set_cookie(&signed_up, "credits_session");
    let csrf = set_cookie(&signed_up, "credits_csrf").split_once('=').unwrap().1.to_string();
    let admin: Value = signed_up.json().await.unwrap();
    let admin = admin["userId"].as_str().unwrap().to_string();
    // A second server on the same database lists the account as an admin.
    let app = TestApp::spawn_on(
        first.service.db().url(),
        &[("CLERK_JWT_KEY", String::new()), ("CREDITS_ADMIN_USER_IDS", admin.clone())],
    )
    .await;
    let view: Value = app
        .client
        .get(app.url("/api/credits"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grant = view["grants"][0]["id"].as_i64().expect("the initial grant");
    // The matrix's bodies, for the admin's own account.
    let fill = |text: &str| text.replace("{user}", &admin);
    let cases = [
        ("/api/admin/adjust".to_string(), ADJUST),
        ("/api/credits".to_string(), ADD),
        (format!("/api/admin/grants/{grant}/void"), VOID),
        ("/api/admin/adjust".to_string(), CSV),
        ("/api/ui/test-webhook".to_string(), PLAN),
    ];
    for (path, body) in cases {
        let mut statuses = Vec::new();
        for with_token in [false, true] {
            let mut request = app.client.post(app.url(&path)).header("cookie", &session);
            if with_token {
                request = request.header("x-csrf-token", &csrf);
            }
            request = match body {
                Body::None => request,
                Body::Json(text) => request.header(CONTENT_TYPE, "application/json").body(fill(text)),
                Body::Csv(text) => request.header(CONTENT_TYPE, "text/csv").body(fill(text)),
                Body::Form(pairs) => {
                    let pairs: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (*k, fill(v))).collect();
                    request.form(&pairs)
                }
            };
            statuses.push(request.send().await.unwrap().status().as_u16());
        }
        assert_eq!(statuses, [403, 200], "{path}: without, then with the CSRF token");
    }
}
both!(cookie_sessions_need_the_csrf_token_on_every_admin_write);

/// Contract §8: every change a browser could be made to send from another
/// site with the user's `__session` cookie is refused with 403 before any
/// handler runs, on every route of the matrix, and nothing changes.
async fn cookie_changes_from_another_site_are_refused_on_every_route(backend: Backend) {
    let world = World::start(backend).await;
    let cookie = format!("__session={}", world.user_token);
    let before = world.call("GET", "/api/credits", Some(&world.user_token), NONE).await;
    let fill = |text: &str| {
        text.replace("{user}", &world.user).replace("{hold}", "hold_none").replace("{grant}", "1")
    };
    for route in ROUTES.iter().filter(|route| route.request.starts_with("POST ")) {
        let path = fill(route.request.trim_start_matches("POST "));
        for stated in [("origin", EVIL), ("referer", "https://evil.example/page")] {
            let mut request =
                world.client.post(world.app.url(&path)).header("cookie", &cookie).header(stated.0, stated.1);
            request = match route.body {
                Body::None => request,
                Body::Json(text) => request.header(CONTENT_TYPE, "application/json").body(fill(text)),
                Body::Csv(text) => request.header(CONTENT_TYPE, "text/csv").body(fill(text)),
                Body::Form(pairs) => {
                    let pairs: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (*k, fill(v))).collect();
                    request.form(&pairs)
                }
            };
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 403, "{path} with {stated:?}");
            assert!(response.headers().get("set-cookie").is_none(), "{path} set a cookie");
        }
    }
    let after = world.call("GET", "/api/credits", Some(&world.user_token), NONE).await;
    let figures = |text: &str| serde_json::from_str::<Value>(text).unwrap()["credits"].clone();
    assert_eq!(figures(&after.1), figures(&before.1), "nothing changed");
    world.app.assert_consistent().await;
}
both!(cookie_changes_from_another_site_are_refused_on_every_route);
