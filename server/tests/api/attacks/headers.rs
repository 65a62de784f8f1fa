//! Attacks: headers.
