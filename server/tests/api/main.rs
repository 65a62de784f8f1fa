//! Behaviour tests of the HTTP API and the CLI; each runs on SQLite and PostgreSQL.

mod support;

mod api_keys_admin;
mod attacks;
mod auth;
mod authz_matrix;
mod checkout;
mod clerk_webhooks;
mod cli;
mod credits;
mod creem_webhooks;
mod grants;
mod holds;
mod idempotency;
mod ledger_model;
mod live_updates;
mod local_accounts;
mod stats;
mod user_sync;
