//! What each kind of ledger entry does to an account's figures.
//!
//! Every entry carries a delta for each figure. An entry is balanced when
//! `remaining + held + used` moves exactly as `initial + bonus + adjustments`
//! does, so that summing any prefix of a ledger keeps the contract's invariant
//! `remaining + held + used == total`. The database enforces the same rule with
//! a CHECK constraint on every row.

use serde::{Deserialize, Serialize};

/// The kinds of the contract (§3). Later kinds (`expire`, `void`) are reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    Initial,
    Purchase,
    Spend,
    Hold,
    Capture,
    Release,
    Refund,
    Clawback,
    Adjust,
    Expire,
    Void,
}

impl EntryKind {
    pub const ALL: [EntryKind; 11] = [
        Self::Initial,
        Self::Purchase,
        Self::Spend,
        Self::Hold,
        Self::Capture,
        Self::Release,
        Self::Refund,
        Self::Clawback,
        Self::Adjust,
        Self::Expire,
        Self::Void,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Purchase => "purchase",
            Self::Spend => "spend",
            Self::Hold => "hold",
            Self::Capture => "capture",
            Self::Release => "release",
            Self::Refund => "refund",
            Self::Clawback => "clawback",
            Self::Adjust => "adjust",
            Self::Expire => "expire",
            Self::Void => "void",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }
}

/// An account's figures; `adjustments` is the admin-made part of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Figures {
    pub remaining: i64,
    pub held: i64,
    pub used: i64,
    pub initial: i64,
    pub bonus: i64,
    pub adjustments: i64,
    pub total: i64,
}

/// How one entry changes each figure. `remaining` is the entry's `amount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delta {
    pub kind: Option<EntryKind>,
    pub remaining: i64,
    pub held: i64,
    pub used: i64,
    pub initial: i64,
    pub bonus: i64,
    pub adjustments: i64,
}

/// Why a rule refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleError {
    /// A spend or hold larger than `remaining`.
    Insufficient { required: i64, remaining: i64 },
}

impl Delta {
    fn of(kind: EntryKind) -> Self {
        Self { kind: Some(kind), ..Self::default() }
    }

    /// The once-per-user sign-up grant.
    pub fn initial(amount: i64) -> Self {
        Self { remaining: amount, initial: amount, ..Self::of(EntryKind::Initial) }
    }

    /// A spend for good (`deduct`).
    pub fn spend(amount: i64) -> Self {
        Self { remaining: -amount, used: amount, ..Self::of(EntryKind::Spend) }
    }

    /// An admin adjustment by a signed amount (`add`, `set`, `credits grant`).
    pub fn adjust(signed_amount: i64) -> Self {
        Self { remaining: signed_amount, adjustments: signed_amount, ..Self::of(EntryKind::Adjust) }
    }

    /// Credits reserved by a hold: no longer spendable, not yet used.
    pub fn hold(amount: i64) -> Self {
        Self { remaining: -amount, held: amount, ..Self::of(EntryKind::Hold) }
    }

    /// Held credits spent for good.
    pub fn capture(amount: i64) -> Self {
        Self { held: -amount, used: amount, ..Self::of(EntryKind::Capture) }
    }

    /// Held credits given back (release, the uncaptured rest, or expiry).
    pub fn release(amount: i64) -> Self {
        Self { remaining: amount, held: -amount, ..Self::of(EntryKind::Release) }
    }

    /// Credits bought (a Creem payment).
    pub fn purchase(amount: i64) -> Self {
        Self { remaining: amount, bonus: amount, ..Self::of(EntryKind::Purchase) }
    }

    /// Credits of a purchase taken back: `Refund` for a refund, `Clawback` for a
    /// dispute. May take `remaining` below zero (a debt).
    pub fn reversal(kind: EntryKind, amount: i64) -> Self {
        debug_assert!(matches!(kind, EntryKind::Refund | EntryKind::Clawback));
        Self { remaining: -amount, bonus: -amount, ..Self::of(kind) }
    }

    /// The adjustment that moves `remaining` to `target`; `None` when it already is.
    pub fn set_to(current: &Figures, target: i64) -> Option<Self> {
        let change = target - current.remaining;
        (change != 0).then(|| Self::adjust(change))
    }

    /// The two sides of the invariant move together.
    pub fn is_balanced(&self) -> bool {
        self.remaining + self.held + self.used == self.initial + self.bonus + self.adjustments
    }
}

impl Figures {
    /// Applies an entry, refusing a spend that `remaining` cannot cover.
    pub fn apply(&self, delta: &Delta) -> Result<Figures, RuleError> {
        debug_assert!(delta.is_balanced());
        if delta.kind == Some(EntryKind::Spend) || delta.kind == Some(EntryKind::Hold) {
            let required = -delta.remaining;
            if self.remaining < required {
                return Err(RuleError::Insufficient { required, remaining: self.remaining });
            }
        }
        Ok(self.apply_unchecked(delta))
    }

    /// Applies an entry without the spend check (for clawbacks and replays).
    pub fn apply_unchecked(&self, delta: &Delta) -> Figures {
        let adjustments = self.adjustments + delta.adjustments;
        let initial = self.initial + delta.initial;
        let bonus = self.bonus + delta.bonus;
        Figures {
            remaining: self.remaining + delta.remaining,
            held: self.held + delta.held,
            used: self.used + delta.used,
            initial,
            bonus,
            adjustments,
            total: initial + bonus + adjustments,
        }
    }

    /// `remaining + held + used == total` and `total == initial + bonus + adjustments`.
    pub fn is_consistent(&self) -> bool {
        self.remaining + self.held + self.used == self.total
            && self.total == self.initial + self.bonus + self.adjustments
            && self.held >= 0
            && self.used >= 0
            && self.initial >= 0
    }

    pub fn as_dto(&self) -> crate::dto::CreditFigures {
        crate::dto::CreditFigures {
            remaining: self.remaining,
            total: self.total,
            used: self.used,
            bonus: self.bonus,
            initial: self.initial,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in EntryKind::ALL {
            assert_eq!(EntryKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EntryKind::parse("gift"), None);
    }

    #[test]
    fn a_spend_beyond_remaining_is_refused() {
        let start = Figures::default().apply(&Delta::initial(8)).unwrap();
        assert_eq!(
            start.apply(&Delta::spend(10)),
            Err(RuleError::Insufficient { required: 10, remaining: 8 })
        );
        assert_eq!(start.apply(&Delta::spend(8)).unwrap().remaining, 0);
    }

    #[test]
    fn set_to_the_current_balance_writes_nothing() {
        let start = Figures::default().apply(&Delta::initial(8)).unwrap();
        assert_eq!(Delta::set_to(&start, 8), None);
        assert_eq!(Delta::set_to(&start, 3), Some(Delta::adjust(-5)));
    }

    fn any_delta() -> impl Strategy<Value = Delta> {
        prop_oneof![
            (0i64..1000).prop_map(Delta::initial),
            (1i64..1000).prop_map(Delta::spend),
            (-1000i64..1000).prop_map(Delta::adjust),
            (1i64..1000).prop_map(Delta::purchase),
            (1i64..1000).prop_map(Delta::hold),
            (1i64..1000).prop_map(|n| Delta::reversal(EntryKind::Refund, n)),
        ]
    }

    proptest! {
        #[test]
        fn every_sequence_of_entries_keeps_the_invariant(deltas in proptest::collection::vec(any_delta(), 0..64)) {
            let mut figures = Figures::default();
            for delta in &deltas {
                prop_assert!(delta.is_balanced());
                if let Ok(next) = figures.apply(delta) {
                    figures = next;
                }
                prop_assert!(figures.is_consistent() || figures.remaining < 0);
                prop_assert_eq!(figures.remaining + figures.held + figures.used, figures.total);
            }
        }
    }
}
