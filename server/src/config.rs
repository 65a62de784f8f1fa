//! Configuration in layers: built-in defaults, then the config file
//! (`CREDITS_CONFIG`, or `credits.toml` when present), then the environment for
//! addresses and secrets. Any bad value stops the process with a message that
//! names the setting.

use credits::auth::clerk::ClerkVerifier;
use credits::auth::Admins;
use credits::db::Backend;
use credits::plans::{Plan, Settings};
use credits::secret::Secret;
use credits::security::client_ip::TrustedProxies;
use credits::security::origin::Origin;
use credits::service::HoldSettings;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://credits.db";
pub const DEFAULT_SITE_ROOT: &str = "target/site";

/// A configuration error; the message names the offending setting.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Clerk session-token settings (`CLERK_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClerkConfig {
    pub jwt_key_pem: Option<String>,
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    pub authorized_parties: Option<Vec<String>>,
    /// The origin of Clerk's Frontend API, from which pages load Clerk's
    /// browser SDK (§5); pages allow scripts from it and nowhere else.
    pub frontend_api_origin: Option<String>,
}

impl ClerkConfig {
    /// Reads `CLERK_*` and checks that a configured key can verify tokens.
    fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let clerk = Self {
            jwt_key_pem: lookup("CLERK_JWT_KEY"),
            jwks_url: lookup("CLERK_JWKS_URL"),
            issuer: lookup("CLERK_ISSUER"),
            authorized_parties: lookup("CLERK_AUTHORIZED_PARTIES").map(|raw| {
                raw.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect()
            }),
            frontend_api_origin: clerk_frontend_api_origin(
                lookup("CLERK_PUBLISHABLE_KEY").as_deref(),
                lookup("CLERK_FRONTEND_API_URL").as_deref(),
            )?,
        };
        clerk.verifier()?;
        Ok(clerk)
    }

    /// The verifier, or `None` when no key is configured (sign-in disabled).
    pub fn verifier(&self) -> Result<Option<ClerkVerifier>, ConfigError> {
        let verifier = match (&self.jwt_key_pem, &self.jwks_url) {
            (Some(pem), _) => ClerkVerifier::from_pem(pem).map_err(ConfigError)?,
            (None, Some(url)) => ClerkVerifier::from_jwks_url(url).map_err(ConfigError)?,
            (None, None) => return Ok(None),
        };
        Ok(Some(
            verifier
                .with_issuer(self.issuer.clone())
                .with_authorized_parties(self.authorized_parties.clone()),
        ))
    }
}

/// The Frontend API origin: `CLERK_FRONTEND_API_URL` when set, else the host
/// a publishable key names (`pk_test_`/`pk_live_` + base64 of `{host}$`).
/// Either value ends up in the pages' Content-Security-Policy, so only a
/// plain `https://host[:port]` is accepted; anything else would let a setting
/// widen or break the policy.
pub fn clerk_frontend_api_origin(
    publishable_key: Option<&str>,
    frontend_api_url: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    if let Some(url) = frontend_api_url {
        let origin = url.trim_end_matches('/');
        return match origin.strip_prefix("https://") {
            Some(host) if is_plain_host(host) => Ok(Some(origin.to_string())),
            _ => Err(ConfigError("CLERK_FRONTEND_API_URL must be https://HOST[:PORT]".into())),
        };
    }
    let Some(key) = publishable_key else { return Ok(None) };
    use base64::Engine;
    let invalid = || ConfigError("CLERK_PUBLISHABLE_KEY is not a Clerk publishable key".into());
    let encoded =
        key.strip_prefix("pk_test_").or_else(|| key.strip_prefix("pk_live_")).ok_or_else(invalid)?;
    let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    match text.strip_suffix('$') {
        Some(host) if is_plain_host(host) => Ok(Some(format!("https://{host}"))),
        _ => Err(invalid()),
    }
}

/// A host name with an optional port: letters, digits, `.`, `-` and `:` only.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty() && host.bytes().all(|byte| byte.is_ascii_alphanumeric() || b".-:".contains(&byte))
}

/// Creem settings: secrets from the environment, the rest from the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreemConfig {
    pub webhook_secret: Option<Secret>,
    pub api_key: Option<Secret>,
    pub api_base: String,
    pub timeout_ms: u64,
    pub success_url: String,
}

/// Everything the server reads at start.
#[derive(Debug, Clone)]
pub struct Config {
    pub alerts: credits::ledger::alerts::AlertSettings,
    /// `CREDITS_WEBHOOK_URL` and `CREDITS_WEBHOOK_SECRET` (both or neither).
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<Secret>,
    pub holds: HoldSettings,
    pub sweep_interval_ms: u64,
    pub time_zone: chrono_tz::Tz,
    pub rate_limits: crate::rate_limit::RateLimitConfig,
    pub creem: CreemConfig,
    /// `CLERK_WEBHOOK_SECRET` (`whsec_` + base64), checked at start.
    pub clerk_webhook_key: Option<Secret>,
    pub addr: SocketAddr,
    /// May carry a database password, so it never prints.
    pub database_url: Secret,
    pub site_root: String,
    /// `CREDITS_PUBLIC_URL`'s origin, when set: the one origin cookie
    /// requests may come from, and with https, Secure cookies and HSTS.
    pub public_origin: Option<Origin>,
    /// `CREDITS_TRUSTED_PROXIES`: peers whose `X-Forwarded-*` are believed.
    pub trusted_proxies: TrustedProxies,
    pub settings: Settings,
    pub clerk: ClerkConfig,
    pub admins: Admins,
    /// `CREDITS_METRICS_TOKEN`: when set, `/metrics` needs it as a bearer token.
    pub metrics_token: Option<Secret>,
}

/// The config file's shape; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    initial_credits: Option<i64>,
    cost_per_video: Option<i64>,
    plans: Option<Vec<FilePlan>>,
    creem: Option<FileCreem>,
    holds: Option<FileHolds>,
    /// Days the sign-up grant stays valid.
    initial_credits_valid_days: Option<i64>,
    subscriptions: Option<FileSubscriptions>,
    alerts: Option<FileAlerts>,
    /// IANA time zone for daily statistics, e.g. "Asia/Shanghai".
    time_zone: Option<String>,
    rate_limits: Option<crate::rate_limit::RateLimitConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHolds {
    default_ttl_seconds: Option<i64>,
    max_ttl_seconds: Option<i64>,
    /// How often each instance releases expired holds.
    sweep_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCreem {
    /// Time-out for calls to the Creem API.
    request_timeout_ms: Option<u64>,
    /// Where Creem sends the buyer after paying (default: `<public url>/?checkout=success`).
    success_url: Option<String>,
}

/// The parsed config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    pub settings: Settings,
    pub alerts: credits::ledger::alerts::AlertSettings,
    pub creem_timeout_ms: u64,
    pub creem_success_url: Option<String>,
    pub holds: HoldSettings,
    pub sweep_interval_ms: u64,
    pub time_zone: chrono_tz::Tz,
    pub rate_limits: crate::rate_limit::RateLimitConfig,
}

/// Bounds on the Creem time-out.
const CREEM_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 100..=60_000;
const DEFAULT_CREEM_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePlan {
    name: String,
    price_cents: Option<i64>,
    credits: Option<i64>,
    creem_product_id: Option<String>,
    /// Days the plan's credits stay valid.
    validity_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSubscriptions {
    /// "expire" (at the end of the paid period, the default) or "rollover".
    credits: Option<String>,
    /// With "rollover": unspent credits of earlier periods kept at most.
    rollover_cap: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAlerts {
    /// `credits.low` below this balance (default: the cost of one video).
    low_balance: Option<i64>,
    /// `credits.expiring` this many days ahead (default 3).
    expiring_within_days: Option<i64>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
    }

    /// Reads settings through `lookup`, so tests can pass their own environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let addr_text = lookup("CREDITS_ADDR").unwrap_or_else(|| DEFAULT_ADDR.into());
        let addr = parse_addr(&addr_text, "CREDITS_ADDR")?;
        let database_url = lookup("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        Backend::from_url(&database_url).map_err(ConfigError)?;
        let file = load_settings(lookup("CREDITS_CONFIG"))?;
        let public_url = lookup("CREDITS_PUBLIC_URL").unwrap_or_else(|| format!("http://{addr}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError("CREDITS_PUBLIC_URL must be an http(s) URL".into()));
        }
        let creem = CreemConfig {
            webhook_secret: lookup("CREEM_WEBHOOK_SECRET").map(Secret::new),
            api_key: lookup("CREEM_API_KEY").map(Secret::new),
            api_base: lookup("CREEM_API_BASE")
                .unwrap_or_else(|| credits::payments::creem_api::DEFAULT_API_BASE.into()),
            timeout_ms: file.creem_timeout_ms,
            success_url: file
                .creem_success_url
                .clone()
                .unwrap_or_else(|| format!("{}/?checkout=success", public_url.trim_end_matches('/'))),
        };
        creem_api(&creem)?;
        let clerk_webhook_key = lookup("CLERK_WEBHOOK_SECRET")
            .map(|secret| credits::webhooks::clerk::secret_key(&secret).map(|_| Secret::new(secret)))
            .transpose()
            .map_err(|why| ConfigError(format!("CLERK_WEBHOOK_SECRET {why}")))?;
        let (holds, sweep_interval_ms, time_zone) = (file.holds, file.sweep_interval_ms, file.time_zone);
        let alerts = file.alerts;
        let (webhook_url, webhook_secret) =
            (lookup("CREDITS_WEBHOOK_URL"), lookup("CREDITS_WEBHOOK_SECRET").map(Secret::new));
        if webhook_url.is_some() != webhook_secret.is_some() {
            return Err(ConfigError("CREDITS_WEBHOOK_URL and CREDITS_WEBHOOK_SECRET go together".into()));
        }
        let rate_limits = file.rate_limits.clone();
        let settings = file.settings;
        let clerk = ClerkConfig::from_lookup(&lookup)?;
        let config = Self {
            alerts,
            webhook_url,
            webhook_secret,
            holds,
            sweep_interval_ms,
            time_zone,
            rate_limits,
            creem,
            clerk_webhook_key,
            addr,
            database_url: Secret::new(database_url),
            site_root: lookup("LEPTOS_SITE_ROOT").unwrap_or_else(|| DEFAULT_SITE_ROOT.into()),
            public_origin: lookup("CREDITS_PUBLIC_URL").map(|url| public_origin(&url)).transpose()?,
            trusted_proxies: TrustedProxies::parse(&lookup("CREDITS_TRUSTED_PROXIES").unwrap_or_default())
                .map_err(|why| ConfigError(format!("CREDITS_TRUSTED_PROXIES: {why}")))?,
            settings,
            clerk,
            admins: Admins::parse(&lookup("CREDITS_ADMIN_USER_IDS").unwrap_or_default()),
            metrics_token: lookup("CREDITS_METRICS_TOKEN").map(Secret::new),
        };
        config.outbox_endpoint()?;
        Ok(config)
    }

    /// Where outbound webhooks go, if configured.
    pub fn outbox_endpoint(&self) -> Result<Option<credits::outbox::Endpoint>, ConfigError> {
        match (&self.webhook_url, &self.webhook_secret) {
            (Some(url), Some(secret)) => {
                credits::outbox::Endpoint::new(url, secret.expose()).map(Some).map_err(ConfigError)
            }
            _ => Ok(None),
        }
    }
}

/// The origin of `CREDITS_PUBLIC_URL` (scheme, host and port; a path is ignored).
fn public_origin(url: &str) -> Result<Origin, ConfigError> {
    Origin::parse(url).ok_or_else(|| {
        ConfigError(format!(
            "CREDITS_PUBLIC_URL must be an http(s) URL such as https://app.example.com (got `{url}`)"
        ))
    })
}

pub fn parse_addr(text: &str, setting: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|_| ConfigError(format!("{setting} must be HOST:PORT, e.g. {DEFAULT_ADDR} (got `{text}`)")))
}

/// The Creem API client the configuration describes.
pub fn creem_api(creem: &CreemConfig) -> Result<credits::payments::creem_api::CreemApi, ConfigError> {
    let timeout = std::time::Duration::from_millis(creem.timeout_ms);
    let api_key = creem.api_key.as_ref().map(|key| key.expose().to_string());
    credits::payments::creem_api::CreemApi::new(&creem.api_base, api_key, timeout).map_err(ConfigError)
}

/// Settings from `CREDITS_CONFIG` (which must exist), else `credits.toml` if present.
fn load_settings(config_path: Option<String>) -> Result<FileSettings, ConfigError> {
    let (path, required) = match config_path {
        Some(path) => (path, true),
        None => ("credits.toml".to_string(), false),
    };
    if !required && !Path::new(&path).exists() {
        return parse_settings("").map_err(ConfigError);
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|error| ConfigError(format!("CREDITS_CONFIG: cannot read {path}: {error}")))?;
    parse_settings(&text).map_err(|message| ConfigError(format!("CREDITS_CONFIG ({path}): {message}")))
}

/// Parses a config file over the built-in defaults.
pub fn parse_settings(text: &str) -> Result<FileSettings, String> {
    let file: FileConfig = toml::from_str(text).map_err(|error| error.to_string())?;
    let creem = file.creem.unwrap_or_default();
    let creem_timeout_ms = creem_timeout_ms(&creem)?;
    let mut settings = Settings::default();
    settings.initial_credits = file.initial_credits.unwrap_or(settings.initial_credits);
    settings.cost_per_video = file.cost_per_video.unwrap_or(settings.cost_per_video);
    for (index, plan) in file.plans.unwrap_or_default().into_iter().enumerate() {
        merge_plan(&mut settings.plans, index, plan)?;
    }
    settings.initial_valid_days = file.initial_credits_valid_days;
    settings.subscription_rollover_cap = rollover_cap(file.subscriptions.unwrap_or_default())?;
    settings.validate()?;
    let alerts = alert_settings(file.alerts.unwrap_or_default(), settings.cost_per_video)?;
    let (holds, sweep_interval_ms) = hold_settings(file.holds.unwrap_or_default())?;
    let time_zone = match file.time_zone {
        Some(name) => name
            .parse::<chrono_tz::Tz>()
            .map_err(|_| format!("time_zone `{name}` is not an IANA time zone"))?,
        None => chrono_tz::UTC,
    };
    let rate_limits = file.rate_limits.unwrap_or_default();
    rate_limits.validate()?;
    Ok(FileSettings {
        settings,
        alerts,
        creem_timeout_ms,
        creem_success_url: creem.success_url,
        holds,
        sweep_interval_ms,
        time_zone,
        rate_limits,
    })
}

/// The Creem time-out, once the `[creem]` table is checked.
fn creem_timeout_ms(creem: &FileCreem) -> Result<u64, String> {
    let timeout_ms = creem.request_timeout_ms.unwrap_or(DEFAULT_CREEM_TIMEOUT_MS);
    if !CREEM_TIMEOUT_MS.contains(&timeout_ms) {
        return Err(format!(
            "creem.request_timeout_ms must be {} to {}",
            CREEM_TIMEOUT_MS.start(),
            CREEM_TIMEOUT_MS.end()
        ));
    }
    if creem.success_url.as_ref().is_some_and(|url| !url.starts_with("http")) {
        return Err("creem.success_url must be an http(s) URL".into());
    }
    Ok(timeout_ms)
}

/// Puts the file's `plans[index]` over the built-in plan of the same name,
/// or adds it as a new plan, which then needs a price and credits.
fn merge_plan(plans: &mut Vec<Plan>, index: usize, plan: FilePlan) -> Result<(), String> {
    let position = plans.iter().position(|known| known.name == plan.name);
    let base = position.map(|at| plans[at].clone());
    let merged = Plan {
        price_cents: plan.price_cents.or(base.as_ref().map(|b| b.price_cents)).ok_or_else(|| {
            format!("plans[{index}].price_cents is required for the new plan `{}`", plan.name)
        })?,
        credits: plan
            .credits
            .or(base.as_ref().map(|b| b.credits))
            .ok_or_else(|| format!("plans[{index}].credits is required for the new plan `{}`", plan.name))?,
        creem_product_id: plan
            .creem_product_id
            .or(base.as_ref().map(|b| b.creem_product_id.clone()))
            .unwrap_or_default(),
        validity_days: plan.validity_days.or(base.and_then(|b| b.validity_days)),
        name: plan.name,
    };
    match position {
        Some(at) => plans[at] = merged,
        None => plans.push(merged),
    }
    Ok(())
}

/// How far a subscription's unused credits roll over: `None` when they expire.
fn rollover_cap(subscriptions: FileSubscriptions) -> Result<Option<i64>, String> {
    match subscriptions.credits.as_deref() {
        None | Some("expire") => Ok(None),
        Some("rollover") => Ok(Some(subscriptions.rollover_cap.unwrap_or(i64::from(i32::MAX)))),
        Some(other) => {
            Err(format!("subscriptions.credits must be \"expire\" or \"rollover\", not `{other}`"))
        }
    }
}

/// The `[alerts]` table; a low balance is by default one video's cost.
fn alert_settings(
    file: FileAlerts,
    cost_per_video: i64,
) -> Result<credits::ledger::alerts::AlertSettings, String> {
    let alerts = credits::ledger::alerts::AlertSettings {
        low_balance: file.low_balance.unwrap_or(cost_per_video),
        expiring_within_days: file.expiring_within_days.unwrap_or(3),
    };
    if !(0..1_000_000_000).contains(&alerts.low_balance) || !(0..=365).contains(&alerts.expiring_within_days)
    {
        return Err("alerts.low_balance must be 0..1000000000 and alerts.expiring_within_days 0..=365".into());
    }
    Ok(alerts)
}

/// The `[holds]` table: the hold time-outs and the expiry sweep's interval (ms).
fn hold_settings(file: FileHolds) -> Result<(HoldSettings, u64), String> {
    let defaults = HoldSettings::default();
    let holds = HoldSettings {
        default_ttl_seconds: file.default_ttl_seconds.unwrap_or(defaults.default_ttl_seconds),
        max_ttl_seconds: file.max_ttl_seconds.unwrap_or(defaults.max_ttl_seconds),
    };
    if !(1..=30 * 24 * 3600).contains(&holds.max_ttl_seconds) {
        return Err("holds.max_ttl_seconds must be 1 to 2592000".into());
    }
    if !(1..=holds.max_ttl_seconds).contains(&holds.default_ttl_seconds) {
        return Err("holds.default_ttl_seconds must be 1 to holds.max_ttl_seconds".into());
    }
    let sweep_interval_ms = file.sweep_interval_ms.unwrap_or(1000);
    if !(50..=60_000).contains(&sweep_interval_ms) {
        return Err("holds.sweep_interval_ms must be 50 to 60000".into());
    }
    Ok((holds, sweep_interval_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_need_nothing() {
        let config = config(&[]).unwrap();
        assert_eq!(config.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
        assert!(config.clerk.verifier().unwrap().is_none());
    }

    #[test]
    fn bad_settings_are_named() {
        let error = config(&[("CREDITS_ADDR", "nowhere")]).unwrap_err().to_string();
        assert!(error.contains("CREDITS_ADDR"), "{error}");
        let error = config(&[("DATABASE_URL", "mysql://x")]).unwrap_err().to_string();
        assert!(error.contains("DATABASE_URL"), "{error}");
        let error = config(&[("CLERK_JWT_KEY", "not a key")]).unwrap_err().to_string();
        assert!(error.contains("CLERK_JWT_KEY"), "{error}");
        let error = config(&[("CREDITS_CONFIG", "/nonexistent.toml")]).unwrap_err().to_string();
        assert!(error.contains("CREDITS_CONFIG"), "{error}");
    }

    #[test]
    fn the_config_file_overrides_defaults_and_refuses_unknown_keys() {
        let settings = parse_settings(
            "initial_credits = 5\n[[plans]]\nname = \"starter\"\ncreem_product_id = \"prod_1\"\n",
        )
        .unwrap()
        .settings;
        assert_eq!(settings.initial_credits, 5);
        assert_eq!(settings.cost_per_video, 10);
        let starter = settings.plan("starter").unwrap();
        assert_eq!((starter.credits, starter.creem_product_id.as_str()), (115, "prod_1"));
        assert!(parse_settings("initial_credit = 5").unwrap_err().contains("initial_credit"));
        assert!(parse_settings("[[plans]]\nname = \"gold\"\n").unwrap_err().contains("price_cents"));
        assert!(parse_settings("cost_per_video = 0").unwrap_err().contains("cost_per_video"));
    }

    #[test]
    fn the_clerk_frontend_api_comes_from_the_url_or_the_publishable_key() {
        use base64::Engine;
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let key = format!("pk_test_{}", encode("clerk.example.com$"));
        assert_eq!(
            clerk_frontend_api_origin(Some(&key), None).unwrap().as_deref(),
            Some("https://clerk.example.com")
        );
        let live = format!("pk_live_{}", encode("clerk.shop.example:8443$"));
        assert_eq!(
            clerk_frontend_api_origin(Some(&live), None).unwrap().as_deref(),
            Some("https://clerk.shop.example:8443")
        );
        let url = Some("https://fapi.example.com/");
        assert_eq!(
            clerk_frontend_api_origin(Some(&key), url).unwrap().as_deref(),
            Some("https://fapi.example.com")
        );
        assert_eq!(clerk_frontend_api_origin(None, None).unwrap(), None);
    }

    #[test]
    fn a_clerk_origin_that_could_widen_the_policy_is_refused() {
        use base64::Engine;
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        for key in [
            "sk_test_abc".to_string(),
            "pk_test_!!!".to_string(),
            format!("pk_test_{}", encode("clerk.example.com")),
            format!("pk_test_{}", encode("a.example 'unsafe-inline'$")),
            format!("pk_test_{}", encode("a.example; script-src *$")),
        ] {
            let error = clerk_frontend_api_origin(Some(&key), None).unwrap_err().to_string();
            assert!(error.contains("CLERK_PUBLISHABLE_KEY"), "{key}: {error}");
        }
        for url in ["http://fapi.example.com", "https://*", "https://a.example/x", "https://a b"] {
            let error = clerk_frontend_api_origin(None, Some(url)).unwrap_err().to_string();
            assert!(error.contains("CLERK_FRONTEND_API_URL"), "{url}: {error}");
        }
    }

    #[test]
    fn the_metrics_token_never_prints_with_the_configuration() {
        let config = config(&[("CREDITS_METRICS_TOKEN", "metrics-token-do-not-print")]).unwrap();
        assert!(config.metrics_token.as_ref().unwrap().matches(b"metrics-token-do-not-print"));
        assert!(!format!("{config:?}").contains("do-not-print"));
    }
}
