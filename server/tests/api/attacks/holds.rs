//! Attacks: holds.
