//! Clerk session tokens, verified locally: RS256 signature with the PEM key of
//! `CLERK_JWT_KEY` or a key from `CLERK_JWKS_URL` (cached), then `exp`, `nbf`
//! and `iat` with 5 seconds of clock skew, `iss` and `azp` when configured.
//!
//! The JWKS is fetched by one request at a time, and after a failed fetch not
//! again until a backoff (1 s, doubling to 60 s) has passed: when Clerk is
//! unreachable, requests use the keys they have or are refused at once
//! rather than each waiting on a fetch of its own.

use super::AuthError;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const SKEW_SECONDS: u64 = 5;
/// How long fetched JWKS keys are trusted before they are fetched again.
const JWKS_TTL: Duration = Duration::from_secs(600);
/// An unknown `kid` refetches the JWKS at most this often (key rotation without a stampede).
const JWKS_REFETCH_MIN: Duration = Duration::from_secs(10);
/// The wait after the first failed fetch; it doubles with each failure in a row.
const JWKS_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest wait between fetches while they keep failing.
const JWKS_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// One fetch of the JWKS gives up after this.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// At most this many verified tokens are remembered.
const MAX_VERIFIED: usize = 16_384;

/// Where the verifying keys come from.
pub enum KeySource {
    Pem(Box<DecodingKey>),
    Jwks(Arc<JwksSource>),
}

/// `CLERK_JWKS_URL` and the keys last fetched from it.
pub struct JwksSource {
    url: String,
    client: reqwest::Client,
    state: Mutex<JwksState>,
}

#[derive(Default)]
struct JwksState {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
    /// No fetch starts before this: the unknown-`kid` window after a fetch,
    /// or the backoff after a failed one.
    next_fetch_at: Option<Instant>,
    /// Fetches failed in a row.
    failures: u32,
    /// A fetch is running.
    fetching: bool,
}

/// What a request does about a key it needs.
enum KeyPlan {
    /// Use this key (one past `JWKS_TTL` too, while a fetch renews them or
    /// while fetches fail: Clerk's keys rotate rarely).
    Ready(DecodingKey),
    /// Wait for this fetch: nothing cached can verify the token.
    Wait(tokio::task::JoinHandle<()>),
    Refuse(AuthError),
}

/// What the server checks every session token against.
pub struct ClerkVerifier {
    keys: KeySource,
    issuer: Option<String>,
    authorized_parties: Option<Vec<String>>,
    verified: Verified,
}

/// Tokens that passed every check, by the SHA-256 of the token, until their
/// `exp`: a page (two server functions) or a run of requests with the same
/// session pays for one RSA verification. Within that window a full check
/// would pass too (its `nbf` and `iat` are behind it, `exp` ahead); the one
/// difference is that a signing key removed from the JWKS meanwhile still
/// covers its tokens until they expire (Clerk's last a minute).
#[derive(Default)]
struct Verified {
    entries: Mutex<HashMap<[u8; 32], SessionClaims>>,
}

impl Verified {
    fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The claims of a token verified before, if it has not expired by `now`.
    fn get(&self, token: &str, now: u64) -> Option<SessionClaims> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(&Self::key(token)).filter(|claims| now < claims.exp).cloned()
    }

    /// Remembers a verified token; when full, expired entries go first, then all.
    fn put(&self, token: &str, claims: SessionClaims, now: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_VERIFIED {
            entries.retain(|_, claims| now < claims.exp);
            if entries.len() >= MAX_VERIFIED {
                entries.clear();
            }
        }
        entries.insert(Self::key(token), claims);
    }
}

/// The claims Credits reads from a Clerk session token.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionClaims {
    pub sub: String,
    pub exp: u64,
    pub iat: Option<u64>,
    pub azp: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    n: Option<String>,
    e: Option<String>,
}

impl ClerkVerifier {
    /// From `CLERK_JWT_KEY`: the PEM public key shown in Clerk's dashboard.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let key = DecodingKey::from_rsa_pem(pem.replace("\\n", "\n").as_bytes())
            .map_err(|error| format!("CLERK_JWT_KEY is not an RSA public key in PEM: {error}"))?;
        Ok(Self {
            keys: KeySource::Pem(Box::new(key)),
            issuer: None,
            authorized_parties: None,
            verified: Verified::default(),
        })
    }

    /// From `CLERK_JWKS_URL`; keys are fetched on first use and cached.
    pub fn from_jwks_url(url: &str) -> Result<Self, String> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err("CLERK_JWKS_URL must be an http(s) URL".into());
        }
        let client = reqwest::Client::builder()
            .timeout(JWKS_FETCH_TIMEOUT)
            .build()
            .map_err(|error| format!("CLERK_JWKS_URL: {error}"))?;
        let source = JwksSource { url: url.to_string(), client, state: Mutex::new(JwksState::default()) };
        Ok(Self {
            keys: KeySource::Jwks(Arc::new(source)),
            issuer: None,
            authorized_parties: None,
            verified: Verified::default(),
        })
    }

    /// `CLERK_ISSUER`: tokens must carry exactly this `iss`.
    pub fn with_issuer(mut self, issuer: Option<String>) -> Self {
        self.issuer = issuer;
        self
    }

    /// `CLERK_AUTHORIZED_PARTIES`: tokens must carry one of these `azp`.
    pub fn with_authorized_parties(mut self, parties: Option<Vec<String>>) -> Self {
        self.authorized_parties = parties;
        self
    }

    /// Verifies a token and returns its claims; any failure is `AuthError::Invalid`.
    pub async fn verify(&self, token: &str) -> Result<SessionClaims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid("token too long".into()));
        }
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(claims) = self.verified.get(token, now) {
            return Ok(claims);
        }
        let claims = self.verify_fully(token).await?;
        self.verified.put(token, claims.clone(), now);
        Ok(claims)
    }

    /// Every check, with no memory of earlier tokens.
    async fn verify_fully(&self, token: &str) -> Result<SessionClaims, AuthError> {
        let invalid = |why: &str| AuthError::Invalid(why.to_string());
        let header = decode_header(token).map_err(|_| invalid("malformed token"))?;
        if header.alg != Algorithm::RS256 {
            return Err(invalid("token must be signed with RS256"));
        }
        let key = self.key_for(header.kid.as_deref()).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = SKEW_SECONDS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        let claims = decode::<SessionClaims>(token, &key, &validation)
            .map_err(|error| AuthError::Invalid(error.to_string()))?
            .claims;
        let now = jsonwebtoken::get_current_timestamp();
        match claims.iat {
            Some(iat) if iat > now + SKEW_SECONDS => return Err(invalid("token issued in the future")),
            None => return Err(invalid("token has no iat")),
            _ => {}
        }
        if let Some(parties) = &self.authorized_parties {
            let azp = claims.azp.as_deref().ok_or_else(|| invalid("token has no azp"))?;
            if !parties.iter().any(|party| party == azp) {
                return Err(invalid("token azp is not an authorized party"));
            }
        }
        if claims.sub.is_empty() || claims.sub.len() > 255 {
            return Err(invalid("token sub must be 1 to 255 characters"));
        }
        Ok(claims)
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        match &self.keys {
            KeySource::Pem(key) => Ok((**key).clone()),
            KeySource::Jwks(source) => {
                source.key(kid.ok_or_else(|| AuthError::Invalid("token has no kid".into()))?).await
            }
        }
    }
}

impl JwksSource {
    fn lock(&self) -> std::sync::MutexGuard<'_, JwksState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The key `kid` names. Only a request that nothing cached can serve
    /// waits, and only for a fetch it may start; the fetch runs in a task of
    /// its own, so a request that goes away does not cancel it.
    async fn key(self: &Arc<Self>, kid: &str) -> Result<DecodingKey, AuthError> {
        match self.plan(kid, Instant::now()) {
            KeyPlan::Ready(key) => Ok(key),
            KeyPlan::Refuse(error) => Err(error),
            KeyPlan::Wait(fetch) => {
                // A fetch task only ends by finishing (or with the runtime).
                let _ = fetch.await;
                let state = self.lock();
                state.keys.get(kid).cloned().ok_or_else(|| state.missing_key())
            }
        }
    }

    fn plan(self: &Arc<Self>, kid: &str, now: Instant) -> KeyPlan {
        let mut state = self.lock();
        let cached = state.keys.get(kid).cloned();
        let fresh = state.fetched_at.is_some_and(|at| now.duration_since(at) < JWKS_TTL);
        let may_fetch = !state.fetching && state.next_fetch_at.is_none_or(|at| now >= at);
        match (cached, fresh, may_fetch) {
            (Some(key), true, _) | (Some(key), false, false) => KeyPlan::Ready(key),
            (None, _, false) => KeyPlan::Refuse(state.missing_key()),
            (cached, _, true) => {
                state.fetching = true;
                let fetch = tokio::spawn(Arc::clone(self).refresh());
                match cached {
                    Some(key) => KeyPlan::Ready(key),
                    None => KeyPlan::Wait(fetch),
                }
            }
        }
    }

    /// Fetches the JWKS once and records the outcome.
    async fn refresh(self: Arc<Self>) {
        let fetched = fetch_jwks(&self.client, &self.url).await;
        let now = Instant::now();
        let mut state = self.lock();
        state.fetching = false;
        match fetched {
            Ok(keys) => {
                state.keys = keys;
                state.fetched_at = Some(now);
                state.failures = 0;
                state.next_fetch_at = Some(now + JWKS_REFETCH_MIN);
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                let wait = backoff(state.failures);
                state.next_fetch_at = Some(now + wait);
                tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "could not fetch CLERK_JWKS_URL");
            }
        }
    }
}

impl JwksState {
    /// Why a key is not at hand: Clerk cannot be reached, or the key is unknown.
    fn missing_key(&self) -> AuthError {
        if self.fetching || self.failures > 0 {
            AuthError::KeysUnavailable
        } else {
            AuthError::Invalid("unknown signing key".into())
        }
    }
}

/// The wait before the next fetch after `failures` failed in a row.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    JWKS_BACKOFF_MIN.saturating_mul(1 << doublings).min(JWKS_BACKOFF_MAX)
}

async fn fetch_jwks(client: &reqwest::Client, url: &str) -> Result<HashMap<String, DecodingKey>, String> {
    let response = client.get(url).send().await.map_err(|error| error.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let jwks: Jwks = response.json().await.map_err(|error| error.to_string())?;
    Ok(jwks
        .keys
        .into_iter()
        .filter(|jwk| jwk.kty == "RSA")
        .filter_map(|jwk| {
            let key = DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?;
            Some((jwk.kid?, key))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, exp: u64) -> SessionClaims {
        SessionClaims { sub: sub.into(), exp, iat: Some(exp - 60), azp: None, email: None, name: None }
    }

    #[test]
    fn verified_tokens_are_remembered_until_they_expire() {
        let verified = Verified::default();
        verified.put("token-a", claims("user_a", 1_000), 950);
        assert_eq!(verified.get("token-a", 950).map(|c| c.sub), Some("user_a".into()));
        assert_eq!(verified.get("token-a", 999).map(|c| c.sub), Some("user_a".into()));
        assert!(verified.get("token-a", 1_000).is_none(), "remembered at its exp");
        assert!(verified.get("token-b", 950).is_none(), "another token");
        assert!(verified.get("token-a ", 950).is_none(), "a token differing by one byte");
    }

    #[test]
    fn the_memory_is_bounded() {
        let verified = Verified::default();
        for i in 0..MAX_VERIFIED + 10 {
            let exp = if i % 2 == 0 { 100 } else { 10_000 };
            verified.put(&format!("token-{i}"), claims("user", exp), 200);
        }
        let last = format!("token-{}", MAX_VERIFIED + 9);
        assert!(verified.get(&last, 200).is_some(), "the newest token is remembered");
        assert!(verified.get("token-1", 200).is_some(), "unexpired tokens outlive the pruning");
        let entries = verified.entries.lock().unwrap();
        // Full once: the expired half went, everything since was added.
        assert_eq!(entries.len(), MAX_VERIFIED / 2 + 10, "{} entries", entries.len());
    }

    /// What the fake JWKS endpoint does with a request.
    #[derive(Clone)]
    enum Answer {
        /// Accepts and never answers: Clerk unreachable.
        Hang,
        /// 503 at once.
        Fail,
        /// 200 with this JWKS.
        Serve(String),
    }

    /// A JWKS endpoint on 127.0.0.1 that counts the requests it gets.
    struct FakeJwks {
        url: String,
        requests: Arc<std::sync::atomic::AtomicUsize>,
        answer: Arc<Mutex<Answer>>,
    }

    impl FakeJwks {
        fn start(answer: Answer) -> Self {
            use std::io::{Read, Write};
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
            let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let answer = Arc::new(Mutex::new(answer));
            let (counter, current) = (requests.clone(), answer.clone());
            std::thread::spawn(move || {
                let mut held = Vec::new();
                for mut stream in listener.incoming().map_while(Result::ok) {
                    let _ = stream.read(&mut [0u8; 4096]);
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let reply = match current.lock().unwrap().clone() {
                        Answer::Hang => {
                            held.push(stream);
                            continue;
                        }
                        Answer::Fail => {
                            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                                .to_string()
                        }
                        Answer::Serve(body) => format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                             connection: close\r\n\r\n{body}",
                            body.len()
                        ),
                    };
                    let _ = stream.write_all(reply.as_bytes());
                }
            });
            Self { url, requests, answer }
        }

        fn requests(&self) -> usize {
            self.requests.load(std::sync::atomic::Ordering::SeqCst)
        }

        fn answer(&self, answer: Answer) {
            *self.answer.lock().unwrap() = answer;
        }
    }

    /// A token whose header names `kid`; its signature is never reached
    /// before the key is found.
    fn token_with_kid(kid: &str) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{kid}"}}"#));
        let claims = b64.encode(r#"{"sub":"user_a","exp":4102444800,"iat":1700000000}"#);
        format!("{header}.{claims}.c2lnbmF0dXJl")
    }

    /// A JWKS with one RSA key `kid` (any modulus: these tokens fail their signature check).
    fn jwks_with(kid: &str) -> String {
        format!(
            r#"{{"keys":[{{"kid":"{kid}","kty":"RSA","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}}]}}"#
        )
    }

    #[test]
    fn the_backoff_doubles_from_one_second_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|failures| backoff(failures).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), JWKS_BACKOFF_MAX);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn while_clerk_hangs_one_request_fetches_and_the_rest_are_refused_at_once() {
        let jwks = FakeJwks::start(Answer::Hang);
        let verifier = Arc::new(ClerkVerifier::from_jwks_url(&jwks.url).unwrap());
        let started = Instant::now();
        let calls: Vec<_> = (0..50)
            .map(|_| {
                let verifier = verifier.clone();
                tokio::spawn(async move { verifier.verify(&token_with_kid("kid_a")).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (done, waiting): (Vec<_>, Vec<_>) = calls.into_iter().partition(|call| call.is_finished());
        assert_eq!(waiting.len(), 1, "only the request that started the fetch waits for it");
        for call in done {
            assert_eq!(call.await.unwrap().unwrap_err(), AuthError::KeysUnavailable);
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(jwks.requests(), 1, "one fetch in flight");
        waiting.into_iter().for_each(|call| call.abort());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_fetches_back_off_and_an_unknown_kid_refetches_once_per_window() {
        let jwks = FakeJwks::start(Answer::Fail);
        let verifier = ClerkVerifier::from_jwks_url(&jwks.url).unwrap();
        for _ in 0..20 {
            assert_eq!(
                verifier.verify(&token_with_kid("kid_a")).await.unwrap_err(),
                AuthError::KeysUnavailable
            );
        }
        assert_eq!(jwks.requests(), 1, "no fetch during the backoff");
        jwks.answer(Answer::Serve(jwks_with("kid_a")));
        tokio::time::sleep(JWKS_BACKOFF_MIN + Duration::from_millis(100)).await;
        let refused = verifier.verify(&token_with_kid("kid_a")).await.unwrap_err();
        assert!(
            matches!(refused, AuthError::Invalid(_)),
            "the key is found, the signature is wrong: {refused:?}"
        );
        assert_eq!(jwks.requests(), 2, "one fetch once the backoff passed");
        for _ in 0..20 {
            let refused = verifier.verify(&token_with_kid("kid_unknown")).await.unwrap_err();
            assert_eq!(refused, AuthError::Invalid("unknown signing key".into()));
        }
        assert_eq!(jwks.requests(), 2, "an unknown kid waits for the refetch window");
    }
}
