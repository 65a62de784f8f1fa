//! `Credits`: the only way an amount enters the system.
//!
//! Amounts are integers, never floats, and are built only by parsing at the
//! boundary, so code that holds a `Credits` knows it is within bounds.

use serde::{Deserialize, Serialize};

/// The largest amount any single request may move (exclusive bound, per the contract).
pub const MAX_AMOUNT_EXCLUSIVE: i64 = 1_000_000_000;

/// A validated, non-negative amount of credits below 10^9.
///
/// Deserializing goes through `TryFrom<i64>`, so a `Credits` read from JSON
/// passes the same bounds check as one built by `parse_target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "i64", try_from = "i64")]
pub struct Credits(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount must be a positive integer below 1000000000")]
    NotPositive,
    #[error("amount must be an integer from 0 to 999999999")]
    OutOfRange,
    #[error("amount must be an integer")]
    NotAnInteger,
}

impl Credits {
    /// Parses an amount that moves credits: 1 ..= 999_999_999.
    pub fn parse_positive(raw: i64) -> Result<Self, AmountError> {
        if (1..MAX_AMOUNT_EXCLUSIVE).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(AmountError::NotPositive)
        }
    }

    /// Parses a target balance for `set`: 0 ..= 999_999_999.
    pub fn parse_target(raw: i64) -> Result<Self, AmountError> {
        if (0..MAX_AMOUNT_EXCLUSIVE).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(AmountError::OutOfRange)
        }
    }

    /// Parses a JSON number, refusing fractions and anything outside `i64`.
    pub fn from_json(value: &serde_json::Value, allow_zero: bool) -> Result<Self, AmountError> {
        let raw = value.as_i64().ok_or(AmountError::NotAnInteger)?;
        if allow_zero {
            Self::parse_target(raw)
        } else {
            Self::parse_positive(raw)
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Credits {
    type Error = AmountError;

    /// The widest valid amount (a `set` target): 0 ..= 999_999_999.
    fn try_from(raw: i64) -> Result<Self, AmountError> {
        Self::parse_target(raw)
    }
}

impl From<Credits> for i64 {
    fn from(credits: Credits) -> i64 {
        credits.0
    }
}

impl std::fmt::Display for Credits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positive_amounts_are_bounded_on_both_sides() {
        assert!(Credits::parse_positive(0).is_err());
        assert!(Credits::parse_positive(-5).is_err());
        assert_eq!(Credits::parse_positive(1).unwrap().get(), 1);
        assert_eq!(Credits::parse_positive(999_999_999).unwrap().get(), 999_999_999);
        assert!(Credits::parse_positive(1_000_000_000).is_err());
    }

    #[test]
    fn set_targets_accept_zero_only() {
        assert_eq!(Credits::parse_target(0).unwrap().get(), 0);
        assert!(Credits::parse_target(-1).is_err());
        assert!(Credits::parse_target(1_000_000_000).is_err());
    }

    #[test]
    fn json_fractions_and_strings_are_refused() {
        assert_eq!(Credits::from_json(&json!(1.5), false), Err(AmountError::NotAnInteger));
        assert_eq!(Credits::from_json(&json!("10"), false), Err(AmountError::NotAnInteger));
        assert_eq!(Credits::from_json(&json!(1e20), false), Err(AmountError::NotAnInteger));
        assert_eq!(Credits::from_json(&json!(10), false).unwrap().get(), 10);
    }

    #[test]
    fn deserializing_applies_the_bounds_check() {
        let valid: Credits = serde_json::from_value(json!(250)).unwrap();
        assert_eq!(valid.get(), 250);
        assert_eq!(serde_json::from_value::<Credits>(json!(0)).unwrap().get(), 0);
        assert_eq!(serde_json::from_value::<Credits>(json!(999_999_999)).unwrap().get(), 999_999_999);
        assert!(serde_json::from_value::<Credits>(json!(-1)).is_err());
        assert!(serde_json::from_value::<Credits>(json!(1_000_000_000)).is_err());
        assert!(serde_json::from_value::<Credits>(json!(1.5)).is_err());
        assert!(serde_json::from_value::<Credits>(json!("10")).is_err());
    }

    #[test]
    fn serializing_round_trips_as_a_plain_number() {
        let credits = Credits::parse_positive(42).unwrap();
        assert_eq!(serde_json::to_value(credits).unwrap(), json!(42));
        assert_eq!(serde_json::from_value::<Credits>(json!(42)).unwrap(), credits);
    }
}
