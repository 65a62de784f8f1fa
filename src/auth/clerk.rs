//! Clerk session tokens, verified locally: RS256 signature with the PEM key of
//! `CLERK_JWT_KEY` or a key from `CLERK_JWKS_URL` (cached), then `exp`, `nbf`
//! and `iat` with 5 seconds of clock skew, `iss` and `azp` when configured.

use super::AuthError;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const SKEW_SECONDS: u64 = 5;
/// How long fetched JWKS keys are trusted before they are fetched again.
const JWKS_TTL: Duration = Duration::from_secs(600);
/// An unknown `kid` refetches the JWKS at most this often (key rotation without a stampede).
const JWKS_REFETCH_MIN: Duration = Duration::from_secs(10);
/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// At most this many verified tokens are remembered.
const MAX_VERIFIED: usize = 16_384;

/// Where the verifying keys come from.
pub enum KeySource {
    Pem(Box<DecodingKey>),
    Jwks { url: String, client: reqwest::Client, cache: RwLock<JwksCache> },
}

#[derive(Default)]
pub struct JwksCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
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
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|error| format!("CLERK_JWKS_URL: {error}"))?;
        let cache = RwLock::new(JwksCache::default());
        Ok(Self {
            keys: KeySource::Jwks { url: url.to_string(), client, cache },
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
        let (url, client, cache) = match &self.keys {
            KeySource::Pem(key) => return Ok((**key).clone()),
            KeySource::Jwks { url, client, cache } => (url, client, cache),
        };
        let kid = kid.ok_or_else(|| AuthError::Invalid("token has no kid".into()))?;
        {
            let cached = cache.read().await;
            let fresh = cached.fetched_at.is_some_and(|at| at.elapsed() < JWKS_TTL);
            if let (true, Some(key)) = (fresh, cached.keys.get(kid)) {
                return Ok(key.clone());
            }
        }
        let mut cached = cache.write().await;
        let recently = cached.fetched_at.is_some_and(|at| at.elapsed() < JWKS_REFETCH_MIN);
        let stale = cached.fetched_at.is_none_or(|at| at.elapsed() >= JWKS_TTL);
        if stale || (!cached.keys.contains_key(kid) && !recently) {
            match fetch_jwks(client, url).await {
                Ok(keys) => {
                    cached.keys = keys;
                    cached.fetched_at = Some(Instant::now());
                }
                Err(error) => tracing::warn!(%error, "could not fetch CLERK_JWKS_URL"),
            }
        }
        cached.keys.get(kid).cloned().ok_or_else(|| AuthError::Invalid("unknown signing key".into()))
    }
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
}
