//! `Secret`: a configured secret (webhook secrets, API keys, tokens) that never
//! prints. `Debug` shows `Secret([redacted])` and there is no `Display`, so a
//! secret cannot reach a log line, an error message or a debug dump by
//! accident; the one way to read it is `expose`, named so a reviewer notices.

use std::fmt;
use std::sync::Arc;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The secret itself, for signing, verifying or sending it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares a presented value with the secret in time that does not
    /// depend on where they differ (a timing oracle would reveal a prefix).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        let mut difference = u8::from(expected.len() != presented.len());
        for (index, byte) in presented.iter().enumerate() {
            difference |= byte ^ expected.get(index).copied().unwrap_or(0);
        }
        difference == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let secret = Secret::new("whsec_do-not-print-me");
        let printed = format!("{secret:?} {:?} {:#?}", Some(secret.clone()), vec![secret.clone()]);
        assert!(!printed.contains("do-not-print-me"), "{printed}");
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn matches_only_the_exact_value() {
        let secret = Secret::new("token-123");
        assert!(secret.matches(b"token-123"));
        for wrong in [&b"token-12"[..], b"token-1234", b"", b"TOKEN-123", b"token-124"] {
            assert!(!secret.matches(wrong), "{wrong:?}");
        }
    }
}
