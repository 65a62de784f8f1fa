//! The ledger: an append-only list of entries plus one account row per user.
//!
//! `rules` is pure (what each entry does to the figures); `store` writes entries
//! and accounts together in one transaction (server only).

#[cfg(feature = "ssr")]
pub mod batch;
#[cfg(feature = "ssr")]
pub mod check;
pub mod rules;
#[cfg(feature = "ssr")]
pub mod store;

pub use rules::{Delta, EntryKind, Figures};
