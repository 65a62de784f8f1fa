//! Clerk webhooks (Svix / Standard Webhooks). The input is
//! `svix-id \n svix-timestamp \n svix-signature \n body`: those headers are
//! verified as given, then the body is signed correctly and must verify;
//! the body is parsed as a Clerk event. Never panics.
#![no_main]

use credits::webhooks::clerk::{self, Event, Headers, SignatureError, TOLERANCE_SECONDS};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW: i64 = 1_764_064_700;

fn check_parsed(body: &[u8]) {
    let Ok((_kind, event)) = clerk::parse(body) else { return };
    let bounded = |id: &str| !id.is_empty() && id.len() <= 255;
    match event {
        Event::UserUpserted { user_id, email, name, .. } => {
            assert!(bounded(&user_id), "user id out of bounds");
            if let Some(email) = email {
                assert_eq!(email, email.to_lowercase(), "emails are stored lowercase");
            }
            assert!(name.map_or(true, |name| !name.is_empty()));
        }
        Event::UserDeleted { user_id } => assert!(bounded(&user_id), "user id out of bounds"),
        Event::Ignored => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let key = clerk::secret_key(SECRET).expect("the fixed secret is valid");
    let mut parts = data.splitn(4, |&b| b == b'\n');
    let mut field = || parts.next().and_then(|part| std::str::from_utf8(part).ok());
    let (id, timestamp, signature) = (field(), field(), field());
    let body = data.splitn(4, |&b| b == b'\n').nth(3).unwrap_or(&[]);

    // Any secret string: refused or decoded, never a panic.
    if let Some(id) = id {
        let _ = clerk::secret_key(id);
    }

    // The headers as given, from the input.
    let given = Headers { id, timestamp, signature };
    assert_eq!(clerk::verify(None, given, body, NOW), Err(SignatureError::NotConfigured));
    for now in [NOW, 0] {
        if clerk::verify(Some(&key), given, body, now).is_ok() {
            let ts: i64 = timestamp.unwrap().trim().parse().unwrap();
            let expected = clerk::sign(&key, id.unwrap(), ts, body);
            assert!(signature.unwrap().split(' ').any(|candidate| candidate == expected));
        }
    }

    // Correctly signed: always verifies within five minutes, never outside, never for another id.
    let id = id.unwrap_or("msg_fuzz");
    let (ts, ts_header) = match timestamp.and_then(|t| t.trim().parse::<i64>().ok().map(|ts| (ts, t))) {
        Some((ts, header)) => (ts, header.to_string()),
        None => (NOW, NOW.to_string()),
    };
    let expected = clerk::sign(&key, id, ts, body);
    let several = match signature {
        Some(other) => format!("{other} {expected}"),
        None => expected.clone(),
    };
    let skew = (data.len() as i64 % (2 * TOLERANCE_SECONDS + 1)) - TOLERANCE_SECONDS;
    if let Some(now) = ts.checked_add(skew) {
        let signed = Headers { id: Some(id), timestamp: Some(&ts_header), signature: Some(&several) };
        assert_eq!(clerk::verify(Some(&key), signed, body, now), Ok(()), "a signed delivery must verify");
        let other_id = format!("{id}x");
        let wrong = Headers { id: Some(&other_id), ..signed };
        // `several` may hold a signature the input chose for the other id; only the result for ours is certain.
        if !several.split(' ').any(|c| c == clerk::sign(&key, &other_id, ts, body)) {
            assert_eq!(clerk::verify(Some(&key), wrong, body, now), Err(SignatureError::Mismatch));
        }
    }
    if let Some(late) = ts.checked_add(TOLERANCE_SECONDS + 1) {
        let signed = Headers { id: Some(id), timestamp: Some(&ts_header), signature: Some(&expected) };
        assert_eq!(clerk::verify(Some(&key), signed, body, late), Err(SignatureError::OutsideTolerance));
    }

    check_parsed(body);
    check_parsed(data);
});
