//! Attacks: streams.
