//! Who is calling: a verified principal from the session token, or nobody.

pub mod api_keys;
pub mod clerk;
pub mod local;

use std::collections::HashSet;

/// A signed-in caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub is_admin: bool,
    /// Set when the caller is a worker API key (then `user_id` is `apikey:<id>`).
    pub api_key: Option<String>,
    /// Clerk vouches for `email` (the session token's `email` claim). A local
    /// account's email is never verified, so no payment goes to it by email.
    pub email_verified: bool,
}

impl Principal {
    /// A signed-in user whose email, if any, nobody vouches for.
    pub fn user(user_id: &str, email: Option<String>, name: Option<String>, is_admin: bool) -> Self {
        Self { user_id: user_id.into(), email, name, is_admin, api_key: None, email_verified: false }
    }

    /// The same user, its email vouched for by the session token that carried it.
    pub fn with_verified_email(self) -> Self {
        Self { email_verified: self.email.is_some(), ..self }
    }

    /// The email with whether it is verified, as an account stores it.
    pub fn email_claim(&self) -> Option<crate::ledger::store::EmailClaim<'_>> {
        let verified = self.email_verified;
        self.email.as_deref().map(|address| crate::ledger::store::EmailClaim { address, verified })
    }

    /// May act on any user's holds and read any user's figures.
    pub fn acts_for_others(&self) -> bool {
        self.is_admin || self.api_key.is_some()
    }
}

/// What ends a signed-in user's session: work that outlives one request (a
/// live event stream) stops there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// A Clerk session token, which expires at its `exp` (Unix seconds).
    Expires { exp_seconds: u64 },
    /// A local session, live while `local::session` still finds its token
    /// (sign-out or expiry removes it, on whichever instance).
    Local { token: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("sign in first: no session token was sent")]
    Missing,
    #[error("the session token is invalid: {0}")]
    Invalid(String),
    #[error("sign-in is not configured on this server (set CLERK_JWT_KEY or CLERK_JWKS_URL)")]
    NotConfigured,
    /// The token names a key that is not cached, and Clerk's JWKS cannot be fetched now.
    #[error("the signing keys cannot be fetched right now; try again shortly")]
    KeysUnavailable,
}

/// The user ids of `CREDITS_ADMIN_USER_IDS`.
#[derive(Debug, Clone, Default)]
pub struct Admins(HashSet<String>);

impl Admins {
    /// Parses the comma-separated list; blanks around ids are ignored.
    pub fn parse(raw: &str) -> Self {
        Self(raw.split(',').map(str::trim).filter(|id| !id.is_empty()).map(String::from).collect())
    }

    pub fn contains(&self, user_id: &str) -> bool {
        self.0.contains(user_id)
    }
}

/// The value of one cookie.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Finds the session token: `Authorization: Bearer …` first, then the `__session` cookie.
pub fn session_token(headers: &http::HeaderMap) -> Option<String> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty());
    if let Some(token) = bearer {
        return Some(token.to_string());
    }
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "__session")
        .map(|(_, token)| token.to_string())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn bearer_wins_over_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_static("a=1; __session=cookie-token"));
        assert_eq!(session_token(&headers).as_deref(), Some("cookie-token"));
        headers.insert("authorization", HeaderValue::from_static("Bearer header-token"));
        assert_eq!(session_token(&headers).as_deref(), Some("header-token"));
    }

    #[test]
    fn admin_ids_are_trimmed() {
        let admins = Admins::parse(" user_a, ,user_b ");
        assert!(admins.contains("user_a") && admins.contains("user_b"));
        assert!(!admins.contains(""));
    }
}
