//! Rate limits per caller and per IP, configured under `[rate_limits]`.
//!
//! A token bucket per (route class, key) in this process. On by default for
//! sign-in and sign-up (password guessing, per client and per account),
//! checkout creation (each one calls Creem) and the webhook endpoints (each
//! forged delivery costs a signature check); off by default for spending
//! routes, whose atomic debits, not a limiter, protect balances. An operator
//! sets any class with `per_minute` (0 = off).

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Routes limited together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    SignIn,
    /// Failed sign-ins per account, from any client.
    SignInAccount,
    SignUp,
    Spend,
    Checkout,
    Webhook,
}

/// One class's limit: `per_minute` requests per key, bursting up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub per_minute: u32,
    #[serde(default)]
    pub burst: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub sign_in: Limit,
    /// Wrong passwords per account: guessing one account's password from
    /// many addresses is refused without locking other clients out.
    pub sign_in_account: Limit,
    pub sign_up: Limit,
    /// `POST /api/credits`, `/api/holds*`.
    pub spend: Limit,
    /// `POST /api/checkout`, per client and per user.
    pub checkout: Limit,
    pub webhooks: Limit,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            sign_in: Limit { per_minute: 10, burst: Some(5) },
            sign_in_account: Limit { per_minute: 1, burst: Some(10) },
            sign_up: Limit { per_minute: 5, burst: Some(3) },
            spend: Limit { per_minute: 0, burst: None },
            checkout: Limit { per_minute: 20, burst: Some(10) },
            webhooks: Limit { per_minute: 600, burst: Some(300) },
        }
    }
}

impl RateLimitConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, limit) in [
            ("sign_in", self.sign_in),
            ("sign_in_account", self.sign_in_account),
            ("sign_up", self.sign_up),
            ("spend", self.spend),
            ("checkout", self.checkout),
            ("webhooks", self.webhooks),
        ] {
            if limit.per_minute > 1_000_000 || limit.burst.is_some_and(|b| b == 0 || b > 1_000_000) {
                return Err(format!("rate_limits.{name}: per_minute 0..=1000000 and burst 1..=1000000"));
            }
        }
        Ok(())
    }

    fn limit(&self, class: RouteClass) -> Limit {
        match class {
            RouteClass::SignIn => self.sign_in,
            RouteClass::SignInAccount => self.sign_in_account,
            RouteClass::SignUp => self.sign_up,
            RouteClass::Spend => self.spend,
            RouteClass::Checkout => self.checkout,
            RouteClass::Webhook => self.webhooks,
        }
    }
}

/// Keys kept before old buckets are dropped (a bound on memory).
const MAX_BUCKETS: usize = 100_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: Mutex<HashMap<(RouteClass, String), Bucket>>,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self { config, buckets: Mutex::new(HashMap::new()) }
    }

    pub fn enabled(&self, class: RouteClass) -> bool {
        self.config.limit(class).per_minute > 0
    }

    /// Takes one token for `key`; `Err(retry_after)` when the bucket is empty.
    pub fn check(&self, class: RouteClass, key: &str) -> Result<(), Duration> {
        let limit = self.config.limit(class);
        if limit.per_minute == 0 {
            return Ok(());
        }
        let rate = f64::from(limit.per_minute) / 60.0;
        let capacity = f64::from(limit.burst.unwrap_or(limit.per_minute).max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, bucket| now.duration_since(bucket.at) < Duration::from_secs(120));
        }
        let bucket = buckets.entry((class, key.to_string())).or_insert(Bucket { tokens: capacity, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((1.0 - bucket.tokens) / rate).ceil().max(1.0)))
        }
    }

    /// Gives back the token `check` took, for an attempt that turned out not
    /// to count (a correct password).
    pub fn refund(&self, class: RouteClass, key: &str) {
        let limit = self.config.limit(class);
        let capacity = f64::from(limit.burst.unwrap_or(limit.per_minute).max(1));
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if let Some(bucket) = buckets.get_mut(&(class, key.to_string())) {
            bucket.tokens = (bucket.tokens + 1.0).min(capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refunded_attempt_does_not_count() {
        let limiter = RateLimiter::new(RateLimitConfig::default());
        for _ in 0..100 {
            assert!(limiter.check(RouteClass::SignInAccount, "a@example.com").is_ok());
            limiter.refund(RouteClass::SignInAccount, "a@example.com");
        }
        for _ in 0..10 {
            assert!(limiter.check(RouteClass::SignInAccount, "a@example.com").is_ok());
        }
        assert!(limiter.check(RouteClass::SignInAccount, "a@example.com").is_err());
    }

    #[test]
    fn checkout_and_webhooks_are_limited_by_default() {
        let limiter = RateLimiter::new(RateLimitConfig::default());
        assert!((0..10).all(|_| limiter.check(RouteClass::Checkout, "c").is_ok()));
        assert!(limiter.check(RouteClass::Checkout, "c").is_err());
        assert!((0..300).all(|_| limiter.check(RouteClass::Webhook, "w").is_ok()));
        assert!(limiter.check(RouteClass::Webhook, "w").is_err());
    }

    #[test]
    fn spending_is_unlimited_by_default_and_sign_in_is_limited() {
        let limiter = RateLimiter::new(RateLimitConfig::default());
        for _ in 0..1000 {
            assert!(limiter.check(RouteClass::Spend, "user").is_ok());
        }
        for _ in 0..5 {
            assert!(limiter.check(RouteClass::SignIn, "1.2.3.4").is_ok());
        }
        let retry = limiter.check(RouteClass::SignIn, "1.2.3.4").unwrap_err();
        assert!(retry >= Duration::from_secs(1));
        assert!(limiter.check(RouteClass::SignIn, "5.6.7.8").is_ok(), "keys are separate");
    }
}
