//! Cross-site request checks (contract §8): a cookie-authenticated change is
//! accepted only when its `Origin` (or, when absent, `Referer`) names one of
//! the site's own origins. Browsers attach cookies to cross-site requests,
//! so the cookie alone proves nothing about who built the request.

/// A normalised origin: `scheme://host[:port]`, lowercase, default ports
/// dropped, so that `https://App.example.com:443` equals `https://app.example.com`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

/// The longest origin or referer text looked at; longer is refused unread.
pub const MAX_ORIGIN_BYTES: usize = 2048;

impl Origin {
    /// Parses the origin part of an absolute http(s) URL (an `Origin` header
    /// value, a `Referer`, or a configured URL). `None` for anything else,
    /// including the literal `null` that sandboxed and privacy-mode pages send.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() > MAX_ORIGIN_BYTES || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return None;
        }
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => "80",
            "https" => "443",
            _ => return None,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let (host, port) = split_port(authority)?;
        if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c)) {
            return None;
        }
        let host = host.to_ascii_lowercase();
        Some(match port {
            Some(port) if port != default_port => Self(format!("{scheme}://{host}:{port}")),
            _ => Self(format!("{scheme}://{host}")),
        })
    }

    /// The origin a request's `Host` header names, with the scheme the
    /// request arrived with.
    pub fn from_host(scheme: &str, host: &str) -> Option<Self> {
        Self::parse(&format!("{scheme}://{host}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

/// Splits `host[:port]`, `[v6]` or `[v6]:port`; the port must be digits.
fn split_port(authority: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (&authority[..inside.len() + 2], port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    match port {
        Some(port) if !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() => None,
        _ => Some((host, port)),
    }
}

/// What a request says about where it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance<'a> {
    /// Neither `Origin` nor `Referer`: not a browser's cross-site request
    /// (browsers send `Origin` on every cross-origin POST).
    Unstated,
    /// The `Origin`, or the `Referer` when `Origin` is absent.
    Stated(&'a str),
}

impl<'a> Provenance<'a> {
    pub fn of(origin: Option<&'a str>, referer: Option<&'a str>) -> Self {
        match origin.or(referer) {
            Some(text) => Self::Stated(text),
            None => Self::Unstated,
        }
    }
}

/// Whether a stated origin is one of `allowed`. Unparseable text (`null`,
/// garbage, another scheme) is never allowed.
pub fn is_allowed(stated: &str, allowed: &[Origin]) -> bool {
    Origin::parse(stated).is_some_and(|origin| allowed.contains(&origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> String {
        Origin::parse(text).map(|o| o.0).unwrap_or_else(|| "NONE".into())
    }

    #[test]
    fn origins_are_normalised() {
        assert_eq!(origin("https://App.Example.com:443"), "https://app.example.com");
        assert_eq!(origin("http://127.0.0.1:3000/history?x=1#y"), "http://127.0.0.1:3000");
        assert_eq!(origin("http://localhost:80"), "http://localhost");
        assert_eq!(origin("https://[::1]:8443/"), "https://[::1]:8443");
        assert_eq!(origin("HTTPS://a.b"), "https://a.b");
    }

    #[test]
    fn anything_but_an_http_origin_is_refused() {
        for text in [
            "null",
            "",
            "evil.example",
            "ftp://a.b",
            "https://",
            "https://user@a.b",
            "https://a.b:99999",
            "https://a.b:",
            "https://a b",
            "https://a.b\r\nX: y",
            "javascript://a.b",
        ] {
            assert_eq!(origin(text), "NONE", "{text:?}");
        }
        assert_eq!(origin(&format!("https://{}", "a".repeat(MAX_ORIGIN_BYTES))), "NONE");
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let allowed = [Origin::parse("https://app.example.com").unwrap()];
        assert!(is_allowed("https://app.example.com", &allowed));
        assert!(is_allowed("https://app.example.com/page", &allowed));
        for text in [
            "https://evil.example",
            "http://app.example.com",
            "https://app.example.com.evil.example",
            "https://app.example.com:8443",
            "null",
        ] {
            assert!(!is_allowed(text, &allowed), "{text}");
        }
    }

    #[test]
    fn origin_wins_over_referer() {
        assert_eq!(Provenance::of(Some("https://a"), Some("https://b/x")), Provenance::Stated("https://a"));
        assert_eq!(Provenance::of(None, Some("https://b/x")), Provenance::Stated("https://b/x"));
        assert_eq!(Provenance::of(None, None), Provenance::Unstated);
    }
}
