//! Attacks: metrics.
