//! `Credits`: the only way an amount enters the system.
//!
//! Amounts are integers, never floats, and are built only by parsing at the
//! boundary, so code that holds a `Credits` knows it is within bounds.

use serde::{Deserialize, Serialize};

/// The largest amount any single request may move (exclusive bound, per the contract).
pub const MAX_AMOUNT_EXCLUSIVE: i64 = 1_000_000_000;

/// A validated, non-negative amount of credits below 10^9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
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
}
