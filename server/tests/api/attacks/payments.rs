//! Attacks: payments.
