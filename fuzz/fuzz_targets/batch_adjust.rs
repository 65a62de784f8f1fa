//! The batch-adjust parser (`parse_batch`, JSON and CSV). The input is
//! `content-type \n body`. Never panics; an accepted batch has 1 to 1000
//! lines, and a line that passes the per-line checks `adjust_line` makes
//! (reason, then `ChangeRequest::parse`) is within the bounds.
#![no_main]

use credits::amount::MAX_AMOUNT_EXCLUSIVE;
use credits::requests::{Action, ChangeRequest, MAX_REASON_CHARS, MAX_USER_ID_BYTES};
use credits::service::{parse_batch, AdjustLine};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// Lines one batch may carry (`service::admin::MAX_BATCH_LINES`, not exported).
const MAX_BATCH_LINES: usize = 1000;

/// The pure part of `CreditsService::adjust_line`, step for step.
fn check_line(line: &AdjustLine, csv: bool) {
    if csv {
        // CSV fields are trimmed and the first three cannot hold a comma.
        for field in [&line.user_id, &line.action, &line.reason] {
            assert_eq!(field.trim(), field.as_str());
        }
        assert!(!line.user_id.contains(',') && !line.action.contains(','));
        assert!(line.amount.is_i64() || line.amount.is_string(), "CSV amount {:?}", line.amount);
    }
    let reason = line.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return;
    }
    let mut body = Map::new();
    body.insert("action".into(), Value::String(line.action.clone()));
    body.insert("amount".into(), line.amount.clone());
    body.insert("reason".into(), Value::String(reason.to_string()));
    body.insert("userId".into(), Value::String(line.user_id.clone()));
    let Ok(request) = ChangeRequest::parse(&body) else { return };
    let amount = request.amount.get();
    let low = if request.action == Action::Set { 0 } else { 1 };
    assert!((low..MAX_AMOUNT_EXCLUSIVE).contains(&amount), "amount {amount} for {:?}", request.action);
    assert_eq!(request.action.as_str(), line.action);
    assert_eq!(request.user_id.as_deref(), Some(line.user_id.as_str()));
    assert!(!line.user_id.is_empty() && line.user_id.len() <= MAX_USER_ID_BYTES);
    assert_eq!(request.reason.as_deref(), Some(reason));
    assert!(request.grant.is_empty());
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let content_type = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or(&[]);
    for content_type in [content_type.as_ref(), "text/csv", "application/json"] {
        let Ok(lines) = parse_batch(content_type, body) else { continue };
        assert!((1..=MAX_BATCH_LINES).contains(&lines.len()), "{} lines accepted", lines.len());
        let csv = content_type.starts_with("text/csv");
        if csv {
            assert!(lines.len() <= body.iter().filter(|&&b| b == b'\n').count() + 1);
        }
        for line in &lines {
            check_line(line, csv);
        }
    }
});
