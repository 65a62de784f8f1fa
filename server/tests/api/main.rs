//! Behaviour tests of the HTTP API and the CLI; each runs on SQLite and PostgreSQL.

mod support;

mod auth;
mod checkout;
mod clerk_webhooks;
mod cli;
mod credits;
mod creem_webhooks;
mod idempotency;
mod ledger_model;
mod user_sync;
