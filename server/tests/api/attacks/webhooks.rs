//! Attacks: webhooks.
