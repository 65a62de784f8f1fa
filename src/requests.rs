//! Parsing request bodies at the boundary: unknown fields, wrong types and
//! out-of-range values are refused with a message that names the field.

use crate::amount::Credits;
use serde_json::{Map, Value};

/// Longest `reason` accepted, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Longest user id accepted, in bytes.
pub const MAX_USER_ID_BYTES: usize = 255;
/// History page size: default and bound.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Deduct,
    Set,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Deduct => "deduct",
            Self::Set => "set",
        }
    }
}

/// `POST /api/credits`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequest {
    pub action: Action,
    pub amount: Credits,
    pub reason: Option<String>,
    pub user_id: Option<String>,
    /// Terms of the grant an `add` makes (only with `add`).
    pub grant: GrantTerms,
}

/// `expiresAt`, `effectiveAt` (RFC 3339, checked by the server), `category`, `priority`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantTerms {
    pub expires_at: Option<String>,
    pub effective_at: Option<String>,
    pub category: Option<String>,
    pub priority: Option<i64>,
}

impl GrantTerms {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

const CHANGE_FIELDS: [&str; 8] =
    ["action", "amount", "reason", "userId", "expiresAt", "effectiveAt", "category", "priority"];

impl ChangeRequest {
    pub fn parse(body: &Map<String, Value>) -> Result<Self, String> {
        if let Some(unknown) = body.keys().find(|key| !CHANGE_FIELDS.contains(&key.as_str())) {
            return Err(format!("unknown field `{unknown}`"));
        }
        let action = match body.get("action").and_then(Value::as_str) {
            Some("add") => Action::Add,
            Some("deduct") => Action::Deduct,
            Some("set") => Action::Set,
            _ => return Err("`action` must be \"add\", \"deduct\" or \"set\"".into()),
        };
        let amount = body.get("amount").ok_or("`amount` is required")?;
        let amount = Credits::from_json(amount, action == Action::Set)
            .map_err(|error| format!("`amount`: {error}"))?;
        let grant = GrantTerms {
            expires_at: optional_text(body, "expiresAt", 64)?,
            effective_at: optional_text(body, "effectiveAt", 64)?,
            category: optional_text(body, "category", 32)?,
            priority: match body.get("priority") {
                None | Some(Value::Null) => None,
                Some(value) => match value.as_i64() {
                    Some(priority @ 0..=100) => Some(priority),
                    _ => return Err("`priority` must be an integer from 0 to 100".into()),
                },
            },
        };
        if grant.category.as_deref().is_some_and(|c| !["free", "paid", "promotional"].contains(&c)) {
            return Err("`category` must be \"free\", \"paid\" or \"promotional\"".into());
        }
        if !grant.is_empty() && action != Action::Add {
            return Err("`expiresAt`, `effectiveAt`, `category` and `priority` only go with `add`".into());
        }
        Ok(Self {
            action,
            amount,
            reason: optional_text(body, "reason", MAX_REASON_CHARS)?,
            user_id: parse_user_id_field(body)?,
            grant,
        })
    }
}

fn parse_user_id_field(body: &Map<String, Value>) -> Result<Option<String>, String> {
    let user_id = optional_text(body, "userId", MAX_USER_ID_BYTES)?;
    match user_id {
        Some(id) if id.is_empty() || id.len() > MAX_USER_ID_BYTES => {
            Err(format!("`userId` must be 1 to {MAX_USER_ID_BYTES} bytes"))
        }
        other => Ok(other),
    }
}

fn optional_text(body: &Map<String, Value>, field: &str, max_chars: usize) -> Result<Option<String>, String> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.chars().count() <= max_chars => Ok(Some(text.clone())),
        Some(Value::String(_)) => Err(format!("`{field}` must be at most {max_chars} characters")),
        Some(_) => Err(format!("`{field}` must be a string")),
    }
}

/// `GET /api/credits/history?limit=&before=`, parsed.
pub fn parse_page(limit: Option<i64>, before: Option<i64>) -> Result<(i64, Option<i64>), String> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(format!("`limit` must be 1 to {MAX_PAGE_SIZE}"));
    }
    if before.is_some_and(|id| id < 1) {
        return Err("`before` must be an entry id from `nextBefore`".into());
    }
    Ok((limit, before))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<ChangeRequest, String> {
        ChangeRequest::parse(value.as_object().unwrap())
    }

    #[test]
    fn a_deduct_parses() {
        let request = parse(json!({"action":"deduct","amount":10,"reason":"video"})).unwrap();
        assert_eq!(request.action, Action::Deduct);
        assert_eq!(request.amount.get(), 10);
        assert_eq!(request.reason.as_deref(), Some("video"));
    }

    #[test]
    fn bad_bodies_name_the_field() {
        assert!(parse(json!({"action":"deduct","amount":1,"extra":1})).unwrap_err().contains("extra"));
        assert!(parse(json!({"action":"steal","amount":1})).unwrap_err().contains("action"));
        assert!(parse(json!({"action":"add"})).unwrap_err().contains("amount"));
        assert!(parse(json!({"action":"add","amount":0})).unwrap_err().contains("amount"));
        assert!(parse(json!({"action":"add","amount":2.5})).unwrap_err().contains("amount"));
        assert!(parse(json!({"action":"add","amount":1,"userId":""})).unwrap_err().contains("userId"));
        assert!(parse(json!({"action":"add","amount":1,"reason":"x".repeat(501)})).is_err());
    }

    #[test]
    fn set_accepts_zero() {
        assert_eq!(parse(json!({"action":"set","amount":0})).unwrap().amount.get(), 0);
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(parse_page(None, None), Ok((20, None)));
        assert!(parse_page(Some(0), None).is_err());
        assert!(parse_page(Some(101), None).is_err());
        assert!(parse_page(Some(5), Some(0)).is_err());
    }
}
