//! Inbound webhooks: signature checks and parsing (pure), before anything is stored.

pub mod clerk;
pub mod creem;

/// Compares two byte strings in constant time (for signatures).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Why a delivery was refused, from a fixed set: refusals are counted per
/// provider and reason, so nothing an attacker sends becomes a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    NotConfigured,
    MissingSignature,
    BadSignature,
    BadTimestamp,
    StaleTimestamp,
    Unparseable,
}

impl Rejection {
    /// The reason as stored in `webhook_rejections.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::MissingSignature => "missing_signature",
            Self::BadSignature => "bad_signature",
            Self::BadTimestamp => "bad_timestamp",
            Self::StaleTimestamp => "stale_timestamp",
            Self::Unparseable => "unparseable",
        }
    }
}

impl From<&creem::SignatureError> for Rejection {
    fn from(error: &creem::SignatureError) -> Self {
        match error {
            creem::SignatureError::NotConfigured => Self::NotConfigured,
            creem::SignatureError::Missing => Self::MissingSignature,
            creem::SignatureError::Mismatch => Self::BadSignature,
        }
    }
}

impl From<&clerk::SignatureError> for Rejection {
    fn from(error: &clerk::SignatureError) -> Self {
        match error {
            clerk::SignatureError::NotConfigured => Self::NotConfigured,
            clerk::SignatureError::Missing(_) => Self::MissingSignature,
            clerk::SignatureError::BadTimestamp => Self::BadTimestamp,
            clerk::SignatureError::OutsideTolerance => Self::StaleTimestamp,
            clerk::SignatureError::Mismatch => Self::BadSignature,
        }
    }
}

/// At most `max_bytes` of `text`, cut at a character boundary.
pub fn truncate(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The first bytes of a refused body as text for the admin: at most
/// `max_bytes` of UTF-8 (invalid bytes and NULs shown as U+FFFD, which
/// PostgreSQL text cannot hold as NUL).
pub fn body_prefix(body: &[u8], max_bytes: usize) -> String {
    let head = &body[..body.len().min(max_bytes)];
    let text = String::from_utf8_lossy(head).replace('\0', "\u{FFFD}");
    truncate(&text, max_bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::{body_prefix, truncate};

    #[test]
    fn a_body_prefix_never_exceeds_its_bound() {
        assert_eq!(body_prefix(b"{\"id\":1}", 1024), "{\"id\":1}");
        assert_eq!(body_prefix(&[b'a'; 5000], 1024).len(), 1024);
        for body in [vec![0xFF; 5000], vec![0; 5000], "é".repeat(3000).into_bytes()] {
            let prefix = body_prefix(&body, 1024);
            assert!(prefix.len() <= 1024 && !prefix.contains('\0'), "{} bytes", prefix.len());
        }
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
