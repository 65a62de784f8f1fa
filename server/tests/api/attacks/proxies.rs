//! Attacks: proxies.
