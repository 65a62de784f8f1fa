//! Inbound webhooks: signature checks and parsing (pure), before anything is stored.

pub mod clerk;
pub mod creem;

/// Compares two byte strings in constant time (for signatures).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
