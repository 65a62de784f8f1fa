//! Request bodies at the boundary: arbitrary bytes → serde_json → the
//! `POST /api/credits` body (`ChangeRequest::parse`), the history page
//! (`parse_page`), amounts (`Credits::from_json`, as the hold bodies use it)
//! and `Idempotency-Key`. Never panics; whatever is accepted is within bounds.
#![no_main]

use credits::amount::MAX_AMOUNT_EXCLUSIVE;
use credits::idempotency::{IdempotencyKey, MAX_KEY_CHARS};
use credits::requests::{
    parse_page, Action, ChangeRequest, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_REASON_CHARS, MAX_USER_ID_BYTES,
};
use credits::Credits;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const FIELDS: [&str; 8] =
    ["action", "amount", "reason", "userId", "expiresAt", "effectiveAt", "category", "priority"];

fn check_change(body: &Map<String, Value>) {
    let Ok(request) = ChangeRequest::parse(body) else { return };
    assert!(body.keys().all(|key| FIELDS.contains(&key.as_str())), "an unknown field was accepted");
    let amount = request.amount.get();
    assert_eq!(Some(amount), body["amount"].as_i64(), "the amount is the one sent");
    match request.action {
        Action::Set => assert!((0..MAX_AMOUNT_EXCLUSIVE).contains(&amount), "set amount {amount}"),
        Action::Add | Action::Deduct => {
            assert!((1..MAX_AMOUNT_EXCLUSIVE).contains(&amount), "amount {amount}")
        }
    }
    assert_eq!(body["action"].as_str(), Some(request.action.as_str()));
    if let Some(reason) = &request.reason {
        assert!(reason.chars().count() <= MAX_REASON_CHARS);
    }
    if let Some(user_id) = &request.user_id {
        assert!(!user_id.is_empty() && user_id.len() <= MAX_USER_ID_BYTES, "userId of {} bytes", user_id.len());
    }
    let grant = &request.grant;
    assert!(grant.is_empty() || request.action == Action::Add, "grant terms without `add`");
    for (text, max) in [(&grant.expires_at, 64), (&grant.effective_at, 64), (&grant.category, 32)] {
        assert!(text.as_ref().map_or(true, |t| t.chars().count() <= max));
    }
    assert!(grant.category.as_deref().map_or(true, |c| ["free", "paid", "promotional"].contains(&c)));
    assert!(grant.priority.map_or(true, |p| (0..=100).contains(&p)));
}

fn check_page(limit: Option<i64>, before: Option<i64>) {
    let Ok((got_limit, got_before)) = parse_page(limit, before) else { return };
    assert!((1..=MAX_PAGE_SIZE).contains(&got_limit));
    assert_eq!(got_limit, limit.unwrap_or(DEFAULT_PAGE_SIZE));
    assert_eq!(got_before, before);
    assert!(got_before.map_or(true, |id| id >= 1));
}

fn check_amount(value: &Value) {
    for allow_zero in [false, true] {
        if let Ok(credits) = Credits::from_json(value, allow_zero) {
            let low = if allow_zero { 0 } else { 1 };
            assert!((low..MAX_AMOUNT_EXCLUSIVE).contains(&credits.get()));
            assert_eq!(Some(credits.get()), value.as_i64());
        }
    }
}

fn check_key(raw: &str) {
    let Ok(key) = IdempotencyKey::parse(raw) else { return };
    assert_eq!(key.as_str(), raw);
    assert!(!raw.is_empty() && raw.len() <= MAX_KEY_CHARS);
    assert!(raw.bytes().all(|b| b.is_ascii_graphic()));
}

fn int(bytes: &[u8]) -> i64 {
    let mut buffer = [0u8; 8];
    buffer[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
    i64::from_le_bytes(buffer)
}

fuzz_target!(|data: &[u8]| {
    // JSON bodies, as the routes read them.
    if let Ok(body) = serde_json::from_slice::<Map<String, Value>>(data) {
        check_change(&body);
        if let Some(amount) = body.get("amount") {
            check_amount(amount);
        }
        let field = |name: &str| body.get(name).and_then(Value::as_i64);
        check_page(field("limit"), field("before"));
    }
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        check_amount(&value);
    }

    // Query parameters from raw bytes: a flag byte, then two little-endian integers.
    if let Some((&flags, rest)) = data.split_first() {
        let (a, b) = rest.split_at(rest.len().min(8));
        let limit = (flags & 1 != 0).then(|| int(a));
        let before = (flags & 2 != 0).then(|| int(b));
        check_page(limit, before);
        check_page(limit.map(|l| l % 128), before.map(|b| b % 4));
    }

    // Idempotency-Key: the bytes as a header value.
    if let Ok(text) = std::str::from_utf8(data) {
        check_key(text);
    }
    check_key(&String::from_utf8_lossy(data));
});
