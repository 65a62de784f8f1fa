//! The ledger: an append-only list of entries plus one account row per user,
//! and the grants those credits come from.
//!
//! Layers, each importing only those below it:
//! - `rules` (pure): what each entry does to the figures;
//! - `sql`: building the set-wise statements;
//! - `error`, `grants` (the grant rows and every draw from them, one by one
//!   or set-wise), `alerts` (the low-balance
//!   notices an entry may queue);
//! - `store`: writes an entry, its account row, its grant draws and its
//!   alert together, in the caller's transaction;
//! - `expiry` (grants that start and end, each as entries) and `batch`
//!   (many spends set-wise);
//! - `check`: recomputes every account from its entries.

#[cfg(feature = "ssr")]
pub mod alerts;
#[cfg(feature = "ssr")]
pub mod batch;
#[cfg(feature = "ssr")]
pub mod check;
#[cfg(feature = "ssr")]
pub mod error;
#[cfg(feature = "ssr")]
pub mod expiry;
#[cfg(feature = "ssr")]
pub mod grants;
pub mod rules;
#[cfg(feature = "ssr")]
pub(crate) mod sql;
#[cfg(feature = "ssr")]
pub mod store;

pub use rules::{Delta, EntryKind, Figures};
