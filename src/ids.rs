//! Identifiers as types: a user id, a hold id and a grant id cannot be
//! swapped for one another or for any string, and each is checked once, where
//! it enters, by its parser (serde reads them through it too).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The most bytes a user id may have (Clerk's are ~32; local ones shorter).
pub const MAX_USER_ID_BYTES: usize = 255;

/// Whose account: a Clerk user id, a local account's id, or `apikey:<id>`
/// for a worker key acting for itself. 1 to 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::try_from(text.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text.is_empty() || text.len() > MAX_USER_ID_BYTES {
            return Err(format!("a user id is 1 to {MAX_USER_ID_BYTES} bytes"));
        }
        Ok(Self(text))
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> Self {
        id.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A hold: `hold_` and 48 hex digits (the creation time, then randomness).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HoldId(String);

impl HoldId {
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::try_from(text.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HoldId {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let well_formed = text.strip_prefix("hold_").is_some_and(|rest| {
            (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !well_formed {
            return Err("a hold id is `hold_` and hex digits".into());
        }
        Ok(Self(text))
    }
}

impl From<HoldId> for String {
    fn from(id: HoldId) -> Self {
        id.0
    }
}

impl fmt::Display for HoldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A grant: its positive row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct GrantId(i64);

impl GrantId {
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for GrantId {
    type Error = String;

    fn try_from(id: i64) -> Result<Self, String> {
        if id < 1 {
            return Err("a grant id is a positive integer".into());
        }
        Ok(Self(id))
    }
}

impl From<GrantId> for i64 {
    fn from(id: GrantId) -> Self {
        id.0
    }
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{GrantId, HoldId, UserId, MAX_USER_ID_BYTES};

    #[test]
    fn a_user_id_is_one_to_255_bytes_and_serde_reads_it_through_its_parser() {
        assert!(UserId::parse("user_1").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"x".repeat(MAX_USER_ID_BYTES)).is_ok());
        assert!(UserId::parse(&"x".repeat(MAX_USER_ID_BYTES + 1)).is_err());
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
        let id: UserId = serde_json::from_str("\"user_1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"user_1\"");
    }

    #[test]
    fn a_hold_id_is_hold_and_hex_digits() {
        assert!(HoldId::parse("hold_019af3c2b1a0deadbeef").is_ok());
        for bad in ["", "hold_", "hold_xyz", "HOLD_abc", "user_1", "hold_../etc"] {
            assert!(HoldId::parse(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<HoldId>("\"hold_zz\"").is_err());
    }

    #[test]
    fn a_grant_id_is_positive() {
        assert!(GrantId::try_from(1).is_ok());
        assert!(GrantId::try_from(0).is_err());
        assert!(serde_json::from_str::<GrantId>("-3").is_err());
        assert_eq!(serde_json::from_str::<GrantId>("42").unwrap().get(), 42);
    }
}
