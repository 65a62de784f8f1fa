//! What a ledger write can refuse with.

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no account for this user")]
    NoAccount,
    #[error("the account is closed")]
    Closed,
    #[error("insufficient credits: {required} required, {remaining} remaining")]
    Insufficient { required: i64, remaining: i64 },
    /// A grant of the account is due to start or end (`apply_covered` catches up and retries).
    #[error("a grant is due to start or end")]
    GrantsDue,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
