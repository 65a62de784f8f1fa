//! Holds: reserve credits before a long job, then capture (all or part) or
//! release them. Each hold resolves exactly once: the resolving UPDATE only
//! matches an open hold, so capture, release and expiry racing on any number
//! of processes leave exactly one winner; the losers see `Resolved`.

pub mod batch;

use crate::ledger::grants::GrantEffect;
use crate::ledger::store::{self, EntryMeta, Guard, LedgerError};
use crate::ledger::{Delta, Figures};
use sqlx::{AnyConnection, AnyPool, Row};

/// Where a hold is: `open` until it is captured, released or expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStatus {
    Open,
    Captured,
    Released,
    Expired,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Captured => "captured",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    /// A status as stored; the schema's CHECK allows only these.
    pub fn parse(text: &str) -> Result<Self, sqlx::Error> {
        match text {
            "open" => Ok(Self::Open),
            "captured" => Ok(Self::Captured),
            "released" => Ok(Self::Released),
            "expired" => Ok(Self::Expired),
            other => Err(sqlx::Error::Decode(format!("unknown hold status `{other}`").into())),
        }
    }
}

impl std::fmt::Display for HoldStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One hold row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: String,
    pub user_id: String,
    pub amount: i64,
    pub captured: i64,
    pub status: HoldStatus,
    pub reason: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    /// The `hold` entry, whose grant draws a capture or release returns.
    pub entry_id: Option<i64>,
    pub made_by: MadeBy,
}

/// Who made a hold, which decides who may resolve it (contract §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MadeBy {
    /// A worker's API key: resolved by API keys and admins, never by the user.
    ApiKey,
    /// The account's own user: also resolved by that user.
    User,
    /// An admin, for another user's account: resolved as a worker's hold is.
    Admin,
}

impl MadeBy {
    /// The maker of a hold on `user_id`'s account requested by `actor`.
    pub fn of(api_key: Option<&str>, actor: &str, user_id: &str) -> Self {
        match api_key {
            Some(_) => Self::ApiKey,
            None if actor == user_id => Self::User,
            None => Self::Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    fn parse(text: &str) -> Result<Self, sqlx::Error> {
        match text {
            "api_key" => Ok(Self::ApiKey),
            "user" => Ok(Self::User),
            "admin" => Ok(Self::Admin),
            other => Err(sqlx::Error::Decode(format!("unknown hold maker `{other}`").into())),
        }
    }
}

/// Who resolves a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver<'a> {
    /// An API key, an admin, or the expiry sweep: any hold.
    Privileged,
    /// A signed-in user acting for itself: only a hold it made on its own account.
    User(&'a str),
}

impl<'a> Resolver<'a> {
    /// The user whose rights the resolving statement checks (`None`: any hold).
    pub fn user(self) -> Option<&'a str> {
        match self {
            Self::Privileged => None,
            Self::User(user_id) => Some(user_id),
        }
    }

    /// Whether this resolver may resolve `hold` (the rule the statements hold too).
    pub fn may_resolve(self, hold: &Hold) -> bool {
        match self {
            Self::Privileged => true,
            Self::User(user_id) => hold.made_by == MadeBy::User && hold.user_id == user_id,
        }
    }
}

/// The condition a resolving UPDATE adds so that only an allowed resolver
/// wins: `user` is the parameter holding the resolving user (NULL when
/// privileged), `holds` the table's name or alias in the statement.
pub(crate) fn resolver_allowed_sql(holds: &str, user: &str) -> String {
    format!("({user} IS NULL OR ({holds}.made_by = 'user' AND {holds}.user_id = {user}))")
}

#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("no such hold")]
    NotFound,
    /// The caller's own account, but a hold a worker or an admin made.
    #[error("this hold was made by a worker or an admin, and only they may resolve it")]
    Forbidden,
    #[error("the hold is already {0}")]
    Resolved(HoldStatus),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<sqlx::Error> for HoldError {
    fn from(error: sqlx::Error) -> Self {
        Self::Ledger(LedgerError::Database(error))
    }
}

/// How a hold ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Capture this much (all when `None`); the rest is released.
    Capture(Option<i64>),
    Release,
    /// Released because `expires_at` passed.
    Expire,
}

pub(crate) const HOLD_COLUMNS: &str =
    "id, user_id, amount, captured, status, reason, created_at, expires_at, resolved_at, entry_id, made_by";

pub(crate) fn hold_from_row(row: &impl crate::exec::ReadRow) -> Result<Hold, sqlx::Error> {
    Ok(Hold {
        id: row.read("id")?,
        user_id: row.read("user_id")?,
        amount: row.read("amount")?,
        captured: row.read("captured")?,
        status: HoldStatus::parse(&row.read::<String>("status")?)?,
        reason: row.read("reason")?,
        created_at_ms: row.read("created_at")?,
        expires_at_ms: row.read("expires_at")?,
        resolved_at_ms: row.read("resolved_at")?,
        entry_id: row.read("entry_id")?,
        made_by: MadeBy::parse(&row.read::<String>("made_by")?)?,
    })
}

/// A new hold's id: `hold_`, the time of creation (milliseconds, 12 hex
/// digits) and 96 random bits in hex. Time first, so a new hold's id goes to
/// the end of the holds' primary-key index, and a capture finds its (recent)
/// hold among the last pages, instead of each batch touching as many pages
/// of that index as it has holds.
pub(crate) fn new_id() -> String {
    format!("hold_{:012x}{}", crate::db::now_ms(), hex::encode(rand::random::<[u8; 12]>()))
}

pub async fn load(conn: &mut AnyConnection, hold_id: &str) -> Result<Option<Hold>, sqlx::Error> {
    let sql = format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1");
    let row = sqlx::query(&sql).bind(hold_id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(hold_from_row).transpose()
}

/// Reserves `amount` of `user_id`'s credits until `expires_at_ms`. The debit is
/// the same conditional UPDATE as a spend, so holds never overdraw.
pub async fn create(
    conn: &mut AnyConnection,
    user_id: &str,
    amount: i64,
    expires_at_ms: i64,
    reason: Option<&str>,
    actor: &str,
    made_by: MadeBy,
) -> Result<(Hold, Figures), HoldError> {
    let id = new_id();
    let reference = format!("hold:{id}");
    let meta = EntryMeta { reason, reference: Some(&reference), actor, ..Default::default() };
    let now = crate::db::now_ms();
    // The debit catches up due grants itself, so it only ever sees live ones.
    let applied =
        crate::ledger::expiry::apply_covered(conn, user_id, &Delta::hold(amount), amount, &meta).await?;
    let sql = format!(
        "INSERT INTO holds (id, user_id, amount, status, reason, actor, created_at, expires_at, entry_id, made_by) \
         VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9) RETURNING {HOLD_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(&id)
        .bind(user_id)
        .bind(amount)
        .bind(reason)
        .bind(actor)
        .bind(now)
        .bind(expires_at_ms)
        .bind(applied.entry_id)
        .bind(made_by.as_str())
        .fetch_one(&mut *conn)
        .await?;
    metrics::counter!("credits_held_total").increment(amount as u64);
    Ok((hold_from_row(&row)?, applied.figures))
}

/// Moves an open hold to `status` in one statement that also checks it is
/// open, due or not yet due as `timing` says, covers the capture, and may be
/// resolved by `resolver`; `None` when any of that fails.
async fn claim(
    conn: &mut AnyConnection,
    hold_id: &str,
    (status, capture, timing): (&str, Option<i64>, &str),
    resolver: Resolver<'_>,
    now_ms: i64,
) -> Result<Option<Hold>, HoldError> {
    let sql = format!(
        "UPDATE holds SET status = $1, captured = COALESCE($2, amount), resolved_at = $4 \
         WHERE id = $3 AND status = 'open' AND {timing} AND amount >= COALESCE($2, 0) AND {allowed} \
         RETURNING {HOLD_COLUMNS}",
        allowed = resolver_allowed_sql("holds", "$5"),
    );
    let row = sqlx::query(&sql)
        .bind(status)
        .bind(capture)
        .bind(hold_id)
        .bind(now_ms)
        .bind(resolver.user())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|row| hold_from_row(&row)).transpose()?)
}

/// Credits per grant: `(grant id, amount)`, in draw order.
type GrantParts = Vec<(i64, i64)>;

/// Splits what a hold drew from each grant into the part `captured` spends
/// and the part that goes back.
fn split_draws(draws: GrantParts, captured: i64) -> (GrantParts, GrantParts) {
    let (mut captured_parts, mut released_parts, mut left) = (Vec::new(), Vec::new(), captured);
    for (grant_id, drawn) in draws {
        let take = left.min(drawn);
        left -= take;
        if take > 0 {
            captured_parts.push((grant_id, take));
        }
        if drawn > take {
            released_parts.push((grant_id, drawn - take));
        }
    }
    (captured_parts, released_parts)
}

/// Resolves an open hold once and writes its entries. Capture and release
/// only win before `expires_at`; expiry only after it; and only for a
/// resolver the hold's maker allows, checked in the resolving UPDATE itself.
pub async fn resolve(
    conn: &mut AnyConnection,
    hold_id: &str,
    resolution: Resolution,
    resolver: Resolver<'_>,
    actor: &str,
    now_ms: i64,
) -> Result<(Hold, Figures), HoldError> {
    let (status, capture, timing) = match resolution {
        Resolution::Capture(amount) => ("captured", amount, "expires_at > $4"),
        Resolution::Release => ("released", Some(0), "expires_at > $4"),
        Resolution::Expire => ("expired", Some(0), "expires_at <= $4"),
    };
    if capture.is_some_and(|amount| amount < 0) {
        return Err(HoldError::Invalid("`amount` must be positive".into()));
    }
    let Some(hold) = claim(conn, hold_id, (status, capture, timing), resolver, now_ms).await? else {
        return Err(explain(conn, hold_id, resolver, capture, now_ms).await);
    };
    let reference = format!("hold:{}", hold.id);
    let reason = match resolution {
        Resolution::Expire => Some("hold expired"),
        _ => hold.reason.as_deref(),
    };
    // Split what the hold drew from each grant into the captured and the released part.
    let draws = match hold.entry_id {
        Some(entry_id) => crate::ledger::grants::draws_of(conn, entry_id).await?,
        None => Vec::new(),
    };
    let (captured_parts, released_parts) = split_draws(draws, hold.captured);
    let mut figures = None;
    if hold.captured > 0 {
        let meta = EntryMeta {
            reason,
            reference: Some(&reference),
            actor,
            grants: GrantEffect::Exact(captured_parts),
        };
        figures = Some(
            store::apply(conn, &hold.user_id, &Delta::capture(hold.captured), Guard::None, &meta).await?,
        );
        metrics::counter!("credits_spent_total").increment(hold.captured as u64);
    }
    let rest = hold.amount - hold.captured;
    if rest > 0 {
        let parts = GrantEffect::Exact(released_parts.clone());
        let meta = EntryMeta { reason, reference: Some(&reference), actor, grants: parts };
        figures = Some(store::apply(conn, &hold.user_id, &Delta::release(rest), Guard::None, &meta).await?);
        // Credits returning to a grant that ended meanwhile leave with it.
        crate::ledger::expiry::settle_returns(conn, &released_parts).await?;
        figures = Some(store::Applied {
            figures: store::load(conn, &hold.user_id).await?.ok_or(LedgerError::NoAccount)?.figures,
            entry_id: figures.map_or(0, |applied| applied.entry_id),
        });
    }
    if resolution == Resolution::Expire {
        metrics::counter!("hold_expiries_total").increment(1);
    }
    tracing::info!(hold_id = %hold.id, user_id = %hold.user_id, status, captured = hold.captured, released = rest, "hold resolved");
    Ok((hold, figures.expect("a hold has a positive amount").figures))
}

/// Why a resolving UPDATE matched nothing. A resolver the hold's maker does
/// not allow learns nothing more about the hold than that.
async fn explain(
    conn: &mut AnyConnection,
    hold_id: &str,
    resolver: Resolver<'_>,
    capture: Option<i64>,
    now_ms: i64,
) -> HoldError {
    match load(conn, hold_id).await {
        Err(error) => error.into(),
        Ok(None) => HoldError::NotFound,
        Ok(Some(hold)) if !resolver.may_resolve(&hold) => match resolver.user() {
            Some(user_id) if user_id == hold.user_id => HoldError::Forbidden,
            _ => HoldError::NotFound,
        },
        Ok(Some(hold)) if hold.status != HoldStatus::Open => HoldError::Resolved(hold.status),
        Ok(Some(hold)) if hold.expires_at_ms <= now_ms => HoldError::Resolved(HoldStatus::Expired),
        Ok(Some(hold)) if capture.is_some_and(|amount| amount > hold.amount) => {
            HoldError::Invalid(format!("`amount` must be at most the held {}", hold.amount))
        }
        Ok(Some(_)) => HoldError::Invalid("the hold cannot be resolved that way".into()),
    }
}

/// The open holds whose time is up (`$1` now), first due first, at most
/// `$2`: read through `holds_open_expiry`, which holds open holds only.
pub const DUE_HOLDS_SQL: &str =
    "SELECT id, user_id FROM holds WHERE status = 'open' AND expires_at <= $1 ORDER BY expires_at LIMIT $2";

/// One user's open holds (`$1`), oldest first: read through
/// `holds_open_user`, which holds open holds only.
pub const OPEN_HOLDS_OF_USER_SQL: &str =
    "SELECT id, amount, expires_at FROM holds WHERE user_id = $1 AND status = 'open' ORDER BY created_at";

/// Open holds whose time is up at `now` and their owners, at most `limit`.
pub async fn due(pool: &AnyPool, now: i64, limit: i64) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query(DUE_HOLDS_SQL)
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("id")?, row.try_get("user_id")?)))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_later_hold_id_sorts_after_an_earlier_one() {
        let earlier = super::new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = super::new_id();
        assert!(earlier < later, "{earlier} then {later}");
        assert_eq!(later.len(), "hold_".len() + 12 + 24);
        assert_ne!(super::new_id(), super::new_id());
    }

    #[test]
    fn a_capture_spends_the_first_draws_and_returns_the_rest() {
        let draws = vec![(1, 3), (2, 5), (3, 2)];
        assert_eq!(super::split_draws(draws.clone(), 0), (vec![], draws.clone()));
        assert_eq!(super::split_draws(draws.clone(), 10), (draws.clone(), vec![]));
        assert_eq!(super::split_draws(draws, 4), (vec![(1, 3), (2, 1)], vec![(2, 4), (3, 2)]));
    }

    proptest::proptest! {
        #[test]
        fn every_drawn_credit_is_either_captured_or_returned(
            draws in proptest::collection::vec((0i64..100, 1i64..1_000), 0..8),
            captured in 0i64..10_000,
        ) {
            let (spent, back) = super::split_draws(draws.clone(), captured);
            let total = |parts: &[(i64, i64)]| parts.iter().map(|(_, amount)| amount).sum::<i64>();
            proptest::prop_assert_eq!(total(&spent) + total(&back), total(&draws));
            proptest::prop_assert_eq!(total(&spent), captured.min(total(&draws)));
            proptest::prop_assert!(spent.iter().chain(&back).all(|(_, amount)| *amount > 0));
        }
    }
}
