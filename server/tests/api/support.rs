//! The test harness: the real server on port 0 against a fresh database (a
//! SQLite file, or a new PostgreSQL database per test), and Clerk-style
//! session tokens signed with an RSA key generated at test start.

use credits::db::Db;
use credits::service::CreditsService;
use credits_server::config::Config;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Response, StatusCode};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const ADMIN: &str = "user_admin";
pub const CREEM_SECRET: &str = "creem_test_secret_0123456789";
/// `whsec_` + base64 of "clerk-test-signing-key-32-bytes!".
pub const CLERK_SECRET: &str = "whsec_Y2xlcmstdGVzdC1zaWduaW5nLWtleS0zMi1ieXRlcyE=";
pub const STARTER_PRODUCT: &str = "prod_4b3gYBXSHcJ2pPtkT6Ylw3";
pub const STANDARD_PRODUCT: &str = "prod_7CIbZEZnRC5DWibmoOboOu";

/// The config file every test server reads: the fixtures' product ids.
fn config_file() -> String {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join("credits-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("config-{}.toml", std::process::id()));
        let text = format!(
            "[[plans]]\nname = \"starter\"\ncreem_product_id = \"{STARTER_PRODUCT}\"\n\
             [[plans]]\nname = \"standard\"\ncreem_product_id = \"{STANDARD_PRODUCT}\"\n\
             [[plans]]\nname = \"premium\"\ncreem_product_id = \"prod_premium\"\n\
             [creem]\nrequest_timeout_ms = 500\n\
             [holds]\nsweep_interval_ms = 100\n"
        );
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    })
    .clone()
}

/// A Creem example delivery from `fixtures/creem`, as JSON to adjust.
pub fn creem_fixture(name: &str) -> Value {
    let path = format!("{}/../fixtures/creem/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// A Clerk example delivery from `fixtures/clerk`.
pub fn clerk_fixture(name: &str) -> Value {
    let path = format!("{}/../fixtures/clerk/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs one test body on each backend: `both!(name);` for `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await
            }
        }
    };
}

/// An RSA key pair, as Clerk holds one; generated once per test binary.
pub struct SigningKey {
    pub private_pem: String,
    pub public_pem: String,
    pub n: String,
    pub e: String,
}

pub fn key(index: usize) -> &'static SigningKey {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    &KEYS.get_or_init(|| (0..2).map(|_| generate_key()).collect())[index]
}

fn generate_key() -> SigningKey {
    use base64::Engine;
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa key");
    let public = private.to_public_key();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    SigningKey {
        private_pem: private.to_pkcs1_pem(LineEnding::LF).unwrap().to_string(),
        public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
        n: b64.encode(public.n().to_bytes_be()),
        e: b64.encode(public.e().to_bytes_be()),
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A session token for `sub` with the usual Clerk claims, valid for a minute.
pub fn token(sub: &str) -> String {
    sign(0, None, json!({"sub": sub, "iat": now(), "nbf": now(), "exp": now() + 60}))
}

/// Signs arbitrary claims with key `index` (and `kid`, if given).
pub fn sign(index: usize, kid: Option<&str>, claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(String::from);
    let key = EncodingKey::from_rsa_pem(key(index).private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), now())
}

/// The PostgreSQL server the suite requires; a missing server fails the test.
pub fn postgres_admin_url() -> String {
    std::env::var("CREDITS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Drops test databases left by earlier runs (their process id is not ours),
/// once per test binary, so repeated runs do not fill the disk.
async fn drop_stale_databases(admin: &mut sqlx::PgConnection) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        use sqlx::Row;
        let ours = format!("credits_test_{}_%", std::process::id());
        let stale = sqlx::query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'credits\\_test\\_%' AND datname NOT LIKE $1",
        )
        .bind(&ours)
        .fetch_all(&mut *admin)
        .await
        .unwrap_or_default();
        for row in stale {
            let name: String = row.get(0);
            // Another suite may still be using it: then it stays for a later run.
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut *admin).await;
        }
    })
    .await;
}

/// A fresh, empty database URL for one test.
pub async fn fresh_database_url(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join("credits-tests");
            std::fs::create_dir_all(&dir).unwrap();
            format!("sqlite://{}", dir.join(format!("{}.db", unique("t"))).display())
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let admin_url = postgres_admin_url();
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|error| {
                panic!("PostgreSQL is required for this suite ({admin_url}): {error}")
            });
            drop_stale_databases(&mut admin).await;
            let name = unique("credits_test");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
            let base = admin_url.rsplit_once('/').unwrap().0;
            format!("{base}/{name}")
        }
    }
}

/// Builds the server's configuration from test variables.
pub fn config(database_url: &str, extra: &[(&str, String)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), database_url.to_string()),
        ("CREDITS_ADDR".into(), "127.0.0.1:0".into()),
        ("CLERK_JWT_KEY".into(), key(0).public_pem.clone()),
        ("CREDITS_ADMIN_USER_IDS".into(), ADMIN.into()),
        ("CREDITS_CONFIG".into(), config_file()),
        ("CREEM_WEBHOOK_SECRET".into(), CREEM_SECRET.into()),
        ("CLERK_WEBHOOK_SECRET".into(), CLERK_SECRET.into()),
        ("CREEM_API_KEY".into(), "creem_test_key".into()),
        // Nothing listens on the discard port: checkouts fail unless a test serves a fake Creem.
        ("CREEM_API_BASE".into(), "http://127.0.0.1:9".into()),
    ]);
    for (name, value) in extra {
        vars.insert(name.to_string(), value.clone());
    }
    vars.retain(|_, value| !value.is_empty());
    Config::from_lookup(|name| vars.get(name).cloned()).expect("test configuration")
}

/// A running server and a client for it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub service: CreditsService,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts the server with extra (or, with "", removed) variables.
    pub async fn spawn_with(backend: Backend, extra: &[(&str, String)]) -> Self {
        let database_url = fresh_database_url(backend).await;
        Self::spawn_on(&database_url, extra).await
    }

    /// Starts another server on an existing database.
    pub async fn spawn_on(database_url: &str, extra: &[(&str, String)]) -> Self {
        let config = config(database_url, extra);
        let db: Db = credits_server::open_database(&config).await.expect("database");
        let service = credits_server::build_service(&config, db).unwrap();
        let app = credits_server::router(&config, service.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(credits_server::serve(listener, app));
        let outbox = config.outbox_endpoint().expect("outbox endpoint");
        let interval = std::time::Duration::from_millis(config.sweep_interval_ms);
        credits_server::spawn_background(service.clone(), interval, outbox);
        // A request that hangs fails its test instead of stalling the whole suite.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .unwrap();
        Self { base, client, service }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
        key: Option<&str>,
    ) -> Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    /// `GET /api/credits` for `user`, asserting 200.
    pub async fn credits(&self, user: &str) -> Value {
        let response = self.get("/api/credits", Some(&token(user))).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// `POST /api/credits` as `caller`.
    pub async fn change(&self, caller: &str, body: Value) -> (StatusCode, Value) {
        let response = self.post_json("/api/credits", Some(&token(caller)), &body, None).await;
        (response.status(), response.json().await.unwrap())
    }

    /// Sets a user's balance as the admin (creating the account first).
    pub async fn set_balance(&self, user: &str, amount: i64) {
        self.credits(user).await;
        let (status, body) = self.change(ADMIN, json!({"action":"set","amount":amount,"userId":user})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Every entry of `user`, newest first, walking all history pages.
    pub async fn all_entries(&self, user: &str) -> Vec<Value> {
        let mut entries = Vec::new();
        let mut before: Option<i64> = None;
        loop {
            let path = match before {
                Some(id) => format!("/api/credits/history?limit=100&before={id}"),
                None => "/api/credits/history?limit=100".to_string(),
            };
            let page: Value = self.get(&path, Some(&token(user))).await.json().await.unwrap();
            entries.extend(page["entries"].as_array().unwrap().iter().cloned());
            match page["nextBefore"].as_i64() {
                Some(id) => before = Some(id),
                None => return entries,
            }
        }
    }

    /// Delivers a Creem event signed as Creem signs it; returns status and body.
    pub async fn creem(&self, event: &Value) -> (StatusCode, Value) {
        let body = serde_json::to_vec(event).unwrap();
        let signature = credits::webhooks::creem::sign(CREEM_SECRET, &body);
        let response = self
            .client
            .post(self.url("/api/webhooks/creem"))
            .header("creem-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// Delivers a Clerk event signed as Svix signs it, at `timestamp` (seconds).
    pub async fn clerk(&self, message_id: &str, event: &Value, timestamp: i64) -> (StatusCode, Value) {
        let body = serde_json::to_vec(event).unwrap();
        let key = credits::webhooks::clerk::secret_key(CLERK_SECRET).unwrap();
        let signature = credits::webhooks::clerk::sign(&key, message_id, timestamp, &body);
        let response = self
            .client
            .post(self.url("/api/webhooks/clerk"))
            .header("svix-id", message_id)
            .header("svix-timestamp", timestamp.to_string())
            .header("svix-signature", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// Rows in a table (for "nothing was stored" checks).
    pub async fn count(&self, table: &str) -> i64 {
        use sqlx::Row;
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        sqlx::query(&sql).fetch_one(&self.service.db().pool).await.unwrap().try_get("n").unwrap()
    }

    /// `credits check` on this app's database must be clean.
    pub async fn assert_consistent(&self) {
        let report = self.service.check().await.unwrap();
        assert!(report.ok, "credits check found discrepancies: {report:?}");
    }
}

/// The `credits` figures of a GET/POST answer.
pub fn figures(view: &Value) -> (i64, i64, i64, i64, i64) {
    let c = &view["credits"];
    let get = |name: &str| c[name].as_i64().unwrap_or_else(|| panic!("credits.{name} in {view}"));
    (get("remaining"), get("total"), get("used"), get("bonus"), get("initial"))
}

/// The Set-Cookie headers of a response.
pub fn set_cookies(response: &Response) -> Vec<String> {
    response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

/// A cookie's value among Set-Cookie headers.
pub fn set_cookie_value(cookies: &[String], name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    let cookie = cookies.iter().find(|c| c.starts_with(&prefix))?;
    Some(cookie[prefix.len()..].split(';').next().unwrap().to_string())
}

/// A browser's local session: its `Cookie` header and CSRF token.
pub struct LocalBrowser {
    pub cookie: String,
    pub csrf: String,
}

impl TestApp {
    /// A server with local accounts (no Clerk key) and extra variables.
    pub async fn spawn_local(backend: Backend, extra: &[(&str, String)]) -> Self {
        let mut vars = vec![("CLERK_JWT_KEY", String::new())];
        vars.extend(extra.iter().cloned());
        Self::spawn_with(backend, &vars).await
    }

    /// Signs up a local account with `password`; the browser it leaves.
    pub async fn sign_up_local(&self, email: &str, password: &str) -> LocalBrowser {
        let response = self
            .post_json("/api/auth/sign-up", None, &json!({"email": email, "password": password}), None)
            .await;
        assert_eq!(response.status(), StatusCode::OK, "sign-up of {email}");
        let set = set_cookies(&response);
        let session = set_cookie_value(&set, "credits_session").unwrap();
        let csrf = set_cookie_value(&set, "credits_csrf").unwrap();
        LocalBrowser { cookie: format!("credits_session={session}; credits_csrf={csrf}"), csrf }
    }

    /// `GET /api/credits` with a cookie; the status and body.
    pub async fn credits_by_cookie(&self, cookie: &str) -> (StatusCode, Value) {
        let response =
            self.client.get(self.url("/api/credits")).header("cookie", cookie).send().await.unwrap();
        (response.status(), response.json().await.unwrap_or(Value::Null))
    }
}
