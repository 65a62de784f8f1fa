//! Clerk user webhooks, delivered by Svix (the Standard Webhooks scheme):
//! signed content `{id}.{timestamp}.{raw body}`, HMAC-SHA256 keyed with the
//! base64 part of `CLERK_WEBHOOK_SECRET` after `whsec_`, signatures listed as
//! `v1,<base64>` separated by spaces, timestamp within five minutes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// How far the delivery's timestamp may be from our clock.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("CLERK_WEBHOOK_SECRET is not configured")]
    NotConfigured,
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("the timestamp is not a number")]
    BadTimestamp,
    #[error("the timestamp is more than five minutes away")]
    OutsideTolerance,
    #[error("no signature matches")]
    Mismatch,
}

/// The signing key: the base64 part after `whsec_`.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(encoded).map_err(|_| "must be whsec_ followed by base64".to_string())
}

/// `v1,<base64>` for the given id, timestamp and body.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The three Svix headers (or their `webhook-*` twins).
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Verifies a delivery against `key` at `now_seconds`.
pub fn verify(
    key: Option<&[u8]>,
    headers: Headers<'_>,
    body: &[u8],
    now_seconds: i64,
) -> Result<(), SignatureError> {
    let key = key.ok_or(SignatureError::NotConfigured)?;
    let id = headers.id.ok_or(SignatureError::Missing("svix-id"))?;
    let timestamp = headers.timestamp.ok_or(SignatureError::Missing("svix-timestamp"))?;
    let signatures = headers.signature.ok_or(SignatureError::Missing("svix-signature"))?;
    let timestamp: i64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    // `abs_diff`: the timestamp is the sender's, and `now - i64::MIN` would overflow.
    if now_seconds.abs_diff(timestamp) > TOLERANCE_SECONDS as u64 {
        return Err(SignatureError::OutsideTolerance);
    }
    let expected = sign(key, id, timestamp, body);
    let matches = signatures
        .split(' ')
        .filter(|candidate| candidate.starts_with("v1,"))
        .any(|candidate| super::constant_time_eq(candidate.as_bytes(), expected.as_bytes()));
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// What a verified Clerk event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    UserUpserted {
        user_id: String,
        email: Option<String>,
        /// Clerk marks `email` verified (`verification.status`).
        email_verified: bool,
        name: Option<String>,
        created: bool,
    },
    UserDeleted {
        user_id: String,
    },
    Ignored,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    event_type: String,
    data: UserData,
}

#[derive(Deserialize)]
struct UserData {
    id: Option<String>,
    #[serde(default)]
    email_addresses: Vec<EmailAddress>,
    primary_email_address_id: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct EmailAddress {
    id: String,
    email_address: String,
    verification: Option<Verification>,
}

#[derive(Deserialize)]
struct Verification {
    status: Option<String>,
}

impl EmailAddress {
    fn verified(&self) -> bool {
        self.verification.as_ref().and_then(|v| v.status.as_deref()) == Some("verified")
    }
}

/// Parses a verified body; returns the event type too (for the delivery log).
pub fn parse(body: &[u8]) -> Result<(String, Event), String> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| format!("malformed Clerk event: {e}"))?;
    let data = envelope.data;
    let user_id = || {
        data.id
            .clone()
            .filter(|id| !id.is_empty() && id.len() <= 255)
            .ok_or("`data.id` is missing".to_string())
    };
    let event = match envelope.event_type.as_str() {
        kind @ ("user.created" | "user.updated") => {
            let primary = data.primary_email_address_id.as_deref();
            let address = data
                .email_addresses
                .iter()
                .find(|address| Some(address.id.as_str()) == primary)
                .or(data.email_addresses.first());
            let email = address.map(|address| address.email_address.to_lowercase());
            let name = [data.first_name.as_deref(), data.last_name.as_deref()]
                .into_iter()
                .flatten()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            Event::UserUpserted {
                user_id: user_id()?,
                email,
                email_verified: address.is_some_and(EmailAddress::verified),
                name: (!name.is_empty()).then_some(name),
                created: kind == "user.created",
            }
        }
        "user.deleted" => Event::UserDeleted { user_id: user_id()? },
        _ => Event::Ignored,
    };
    Ok((envelope.event_type, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_parser_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512),
                                   kind in "user\\.(created|updated|deleted)|.{0,12}",
                                   id in proptest::option::of(".{0,300}")) {
            let _ = parse(&body);
            let event = serde_json::json!({"type": kind, "data": {"id": id, "email_addresses": [{"id": 1}]}});
            let _ = parse(event.to_string().as_bytes());
        }

        #[test]
        fn verification_never_panics(signature in ".{0,200}", timestamp in ".{0,30}", body in ".{0,100}") {
            let headers = Headers { id: Some("msg"), timestamp: Some(&timestamp), signature: Some(&signature) };
            let _ = verify(Some(b"key"), headers, body.as_bytes(), 0);
        }
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/fixtures/clerk/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn headers<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> Headers<'a> {
        Headers { id: Some(id), timestamp: Some(timestamp), signature: Some(signature) }
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        let key = secret_key(SECRET).unwrap();
        let body = fixture("user.created.json");
        let now = 1_764_064_700;
        let good = sign(&key, "msg_1", now, &body);
        let ts = now.to_string();
        assert!(verify(Some(&key), headers("msg_1", &ts, &good), &body, now).is_ok());
        let several = format!("v1,bm90IGl0 {good}");
        assert!(verify(Some(&key), headers("msg_1", &ts, &several), &body, now + 299).is_ok());
        assert_eq!(
            verify(Some(&key), headers("msg_1", &ts, &good), &body, now + 301),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(Some(&key), headers("msg_1", &ts, &good), &body, now - 301),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(Some(&key), headers("msg_2", &ts, &good), &body, now),
            Err(SignatureError::Mismatch)
        );
        let other = secret_key("whsec_b3RoZXIgc2VjcmV0").unwrap();
        assert_eq!(
            verify(Some(&other), headers("msg_1", &ts, &good), &body, now),
            Err(SignatureError::Mismatch)
        );
        let missing = Headers { signature: None, ..headers("msg_1", &ts, &good) };
        assert_eq!(verify(Some(&key), missing, &body, now), Err(SignatureError::Missing("svix-signature")));
        assert_eq!(
            verify(None, headers("msg_1", &ts, &good), &body, now),
            Err(SignatureError::NotConfigured)
        );
    }

    /// Found by `cargo fuzz run clerk_webhook`: `now - timestamp` overflowed
    /// (a panic with overflow checks) for a timestamp header near `i64::MIN`.
    #[test]
    fn extreme_timestamps_are_outside_the_tolerance() {
        let key = secret_key(SECRET).unwrap();
        for timestamp in ["-9223372036854775808", "9223372036854775807", "-9223372036854775000"] {
            for now in [1_764_064_700, 0, -1, i64::MAX, i64::MIN] {
                let result = verify(Some(&key), headers("msg", timestamp, "v1,x"), b"{}", now);
                let expected = if timestamp.parse::<i64>().unwrap().abs_diff(now) <= 300 {
                    SignatureError::Mismatch
                } else {
                    SignatureError::OutsideTolerance
                };
                assert_eq!(result, Err(expected), "{timestamp} at {now}");
            }
        }
    }

    #[test]
    fn user_events_parse() {
        let (kind, event) = parse(&fixture("user.created.json")).unwrap();
        assert_eq!(kind, "user.created");
        assert_eq!(
            event,
            Event::UserUpserted {
                user_id: "user_2NNEqL2nrIRdJ194ndJqAHwEfxC".into(),
                email: Some("mei@example.com".into()),
                email_verified: false,
                name: Some("Mei Lin".into()),
                created: true,
            }
        );
        let (_, event) = parse(&fixture("user.deleted.json")).unwrap();
        assert_eq!(event, Event::UserDeleted { user_id: "user_2NNEqL2nrIRdJ194ndJqAHwEfxC".into() });
        assert!(parse(b"{}").is_err());
        let (_, ignored) = parse(br#"{"type":"session.created","data":{}}"#).unwrap();
        assert_eq!(ignored, Event::Ignored);
    }

    #[test]
    fn only_an_address_clerk_marks_verified_is_verified() {
        let event = |status: &str| {
            let body = serde_json::json!({"type": "user.updated", "data": {"id": "user_1",
                "primary_email_address_id": "idn_1", "email_addresses": [{"id": "idn_1",
                "email_address": "Mei@Example.com", "verification": {"status": status}}]}});
            parse(body.to_string().as_bytes()).unwrap().1
        };
        for (status, verified) in [("verified", true), ("unverified", false), ("expired", false)] {
            let Event::UserUpserted { email, email_verified, .. } = event(status) else { panic!() };
            assert_eq!((email.as_deref(), email_verified), (Some("mei@example.com"), verified), "{status}");
        }
    }
}
