//! Attacks: sign_in.
