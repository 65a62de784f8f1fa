//! The credits core shared by the server and the browser.
//!
//! The pure bottom layer (`amount`, `plans`, `dto`, `ledger::rules`) compiles to
//! WASM too; everything that touches the database, the network or secrets sits
//! behind the `ssr` feature so that the browser build never pulls it in.

pub mod amount;
pub mod dto;
pub mod ids;
pub mod ledger;
pub mod plans;
pub mod requests;
pub mod secret;
pub mod security;

#[cfg(feature = "ssr")]
pub mod audit;
#[cfg(feature = "ssr")]
pub mod auth;
#[cfg(feature = "ssr")]
mod batching;
#[cfg(feature = "ssr")]
pub mod db;
#[cfg(feature = "ssr")]
pub mod error;
#[cfg(feature = "ssr")]
pub mod exec;
#[cfg(feature = "ssr")]
pub mod holds;
#[cfg(feature = "ssr")]
pub mod idempotency;
#[cfg(feature = "ssr")]
pub mod memo;
#[cfg(feature = "ssr")]
pub mod outbox;
#[cfg(feature = "ssr")]
pub mod payments;
#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod stats;
#[cfg(feature = "ssr")]
pub mod tuning;
#[cfg(feature = "ssr")]
pub mod view;
#[cfg(feature = "ssr")]
pub mod webhooks;
#[cfg(feature = "ssr")]
pub mod writer;

pub use amount::Credits;
