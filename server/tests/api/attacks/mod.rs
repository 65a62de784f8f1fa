//! The attack suite: each hole an attacker would try against the running
//! server (issue 33, contract §8), sent as the attacker would send it, with the
//! refusal the contract promises and nothing changed afterwards. Every test
//! runs on SQLite and PostgreSQL.

mod cross_site;
mod headers;
mod holds;
mod metrics;
mod payments;
mod proxies;
mod secrets;
mod sessions;
mod sign_in;
mod streams;
mod webhooks;
