//! Reading and writing the ledger. Every function takes the connection of an
//! open transaction, so the caller decides what commits together.
//!
//! The rule for SQLite: each write transaction starts with a write, so that it
//! takes the write lock up front (waiting on `busy_timeout`) instead of failing
//! when it upgrades a read lock. On PostgreSQL the first UPDATE locks the row.

pub use super::error::LedgerError;
use super::rules::{Delta, EntryKind, Figures};
use crate::db::now_ms;
use sqlx::{AnyConnection, Row};

/// Whether an account may spend: `closed` when its user was deleted (its
/// ledger is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    Closed,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Closed => "closed",
        }
    }

    /// A status as stored; the schema's CHECK allows only these.
    pub fn parse(text: &str) -> Result<Self, sqlx::Error> {
        match text {
            "active" => Ok(Self::Active),
            "closed" => Ok(Self::Closed),
            other => Err(sqlx::Error::Decode(format!("unknown account status `{other}`").into())),
        }
    }
}

/// One account row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub status: AccountStatus,
    pub figures: Figures,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// An email as a session or Clerk webhook gives it, with whether Clerk
/// vouches for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailClaim<'a> {
    pub address: &'a str,
    pub verified: bool,
}

/// One ledger row as history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    pub kind: EntryKind,
    pub amount: i64,
    pub balance_after: i64,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub created_at_ms: i64,
}

/// Why and by whom an entry was written, and how it touches grants.
#[derive(Debug, Clone, Default)]
pub struct EntryMeta<'a> {
    pub reason: Option<&'a str>,
    pub reference: Option<&'a str>,
    pub actor: &'a str,
    pub grants: super::grants::GrantEffect,
}

/// What applying an entry produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub figures: Figures,
    pub entry_id: i64,
}

/// Whether an entry needs `remaining` to cover it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Grants, adjustments, clawbacks: always applied.
    None,
    /// Spends and holds: applied only to an active account with `remaining >= amount`.
    Covered(i64),
    /// `Covered`, and only while none of the account's grants is due to start
    /// or end, so the debit never counts an expired grant (`apply_covered`).
    CoveredLive(i64),
}

const ACCOUNT_COLUMNS: &str = "user_id, email, name, status, remaining, held, used, initial, \
     bonus, adjustments, total, created_at, updated_at";

fn account_from_row(row: &sqlx::any::AnyRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        status: AccountStatus::parse(&row.try_get::<String, _>("status")?)?,
        figures: Figures {
            remaining: row.try_get("remaining")?,
            held: row.try_get("held")?,
            used: row.try_get("used")?,
            initial: row.try_get("initial")?,
            bonus: row.try_get("bonus")?,
            adjustments: row.try_get("adjustments")?,
            total: row.try_get("total")?,
        },
        created_at_ms: row.try_get("created_at")?,
        updated_at_ms: row.try_get("updated_at")?,
    })
}

/// Reads one account without locking it.
pub async fn load(conn: &mut AnyConnection, user_id: &str) -> Result<Option<Account>, sqlx::Error> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE user_id = $1");
    let row = sqlx::query(&sql).bind(user_id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(account_from_row).transpose()
}

/// Reads one account and whether Clerk vouches for its email (only then may
/// a payment find the account by it).
pub async fn load_with_email_verified(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<Option<(Account, bool)>, sqlx::Error> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS}, email_verified FROM accounts WHERE user_id = $1");
    let row = sqlx::query(&sql).bind(user_id).fetch_optional(&mut *conn).await?;
    row.map(|row| Ok((account_from_row(&row)?, row.try_get::<i64, _>("email_verified")? != 0))).transpose()
}

/// Locks one account for the rest of the transaction and reads it.
pub async fn lock(conn: &mut AnyConnection, user_id: &str) -> Result<Option<Account>, sqlx::Error> {
    let sql = format!("UPDATE accounts SET updated_at = $1 WHERE user_id = $2 RETURNING {ACCOUNT_COLUMNS}");
    let row = sqlx::query(&sql).bind(now_ms()).bind(user_id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(account_from_row).transpose()
}

/// Creates the account with its initial grant unless it exists; true when created.
///
/// The primary key makes this exactly-once however many requests race: the
/// losers' INSERT does nothing (on PostgreSQL it waits for the winner's commit).
pub async fn create_if_missing(
    conn: &mut AnyConnection,
    user_id: &str,
    email: Option<EmailClaim<'_>>,
    name: Option<&str>,
    initial_credits: i64,
    initial_grant: super::grants::GrantEffect,
) -> Result<bool, LedgerError> {
    let now = now_ms();
    let created = sqlx::query(
        "INSERT INTO accounts (user_id, email, email_verified, name, remaining, total, created_at, updated_at) \
         VALUES ($1, $2, $5, $3, 0, 0, $4, $4) ON CONFLICT (user_id) DO NOTHING RETURNING user_id",
    )
    .bind(user_id)
    .bind(email.map(|email| email.address))
    .bind(name)
    .bind(now)
    .bind(i64::from(email.is_some_and(|email| email.verified)))
    .fetch_optional(&mut *conn)
    .await?
    .is_some();
    if created && initial_credits > 0 {
        let meta = EntryMeta {
            reason: Some("sign-up grant"),
            actor: "system",
            grants: initial_grant,
            ..Default::default()
        };
        apply(conn, user_id, &Delta::initial(initial_credits), Guard::None, &meta).await?;
    }
    Ok(created)
}

/// Updates email (with its verification) and name when the session or a
/// Clerk webhook brings new ones; what they leave out stays.
pub async fn update_profile(
    conn: &mut AnyConnection,
    user_id: &str,
    email: Option<EmailClaim<'_>>,
    name: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE accounts SET email = COALESCE($1, email), name = COALESCE($2, name), \
         email_verified = CASE WHEN $1 IS NULL THEN email_verified ELSE $4 END \
         WHERE user_id = $3 AND (email IS DISTINCT FROM COALESCE($1, email) \
         OR name IS DISTINCT FROM COALESCE($2, name) \
         OR email_verified <> CASE WHEN $1 IS NULL THEN email_verified ELSE $4 END)",
    )
    .bind(email.map(|email| email.address))
    .bind(name)
    .bind(user_id)
    .bind(i64::from(email.is_some_and(|email| email.verified)))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies one entry: the account update and the ledger row, in the caller's
/// transaction. With `Guard::Covered` the balance check and the debit are one
/// conditional UPDATE, so no concurrent request can slip between them.
#[tracing::instrument(name = "ledger.apply", skip_all, fields(
    user_id = %user_id, kind = ?delta.kind, amount = delta.remaining, held = delta.held, used = delta.used,
    actor = meta.actor,
))]
pub async fn apply(
    conn: &mut AnyConnection,
    user_id: &str,
    delta: &Delta,
    guard: Guard,
    meta: &EntryMeta<'_>,
) -> Result<Applied, LedgerError> {
    debug_assert!(delta.is_balanced(), "unbalanced entry {delta:?}");
    let kind = delta.kind.expect("an entry has a kind");
    let now = now_ms();
    let (guard_sql, required) = match guard {
        Guard::None => (String::new(), 0),
        Guard::Covered(required) => ("AND status = 'active' AND remaining >= $9".to_string(), required),
        Guard::CoveredLive(required) => (
            format!(
                "AND status = 'active' AND remaining >= $9 AND NOT {}",
                super::grants::due_exists("$8", "$7")
            ),
            required,
        ),
    };
    let sql = format!(
        "UPDATE accounts SET remaining = remaining + $1, held = held + $2, used = used + $3, \
         initial = initial + $4, bonus = bonus + $5, adjustments = adjustments + $6, \
         total = total + $4 + $5 + $6, updated_at = $7 \
         WHERE user_id = $8 {guard_sql} \
         RETURNING remaining, held, used, initial, bonus, adjustments, total"
    );
    let mut query = sqlx::query(&sql)
        .bind(delta.remaining)
        .bind(delta.held)
        .bind(delta.used)
        .bind(delta.initial)
        .bind(delta.bonus)
        .bind(delta.adjustments)
        .bind(now)
        .bind(user_id);
    if guard != Guard::None {
        query = query.bind(required);
    }
    let Some(row) = query.fetch_optional(&mut *conn).await? else {
        let due_checked = matches!(guard, Guard::CoveredLive(_));
        return Err(explain_refusal(conn, user_id, required, due_checked.then_some(now)).await);
    };
    let figures = Figures {
        remaining: row.try_get("remaining")?,
        held: row.try_get("held")?,
        used: row.try_get("used")?,
        initial: row.try_get("initial")?,
        bonus: row.try_get("bonus")?,
        adjustments: row.try_get("adjustments")?,
        total: row.try_get("total")?,
    };
    let entry_id = insert_entry(conn, user_id, kind, delta, figures.remaining, meta, now).await?;
    super::grants::on_entry(conn, user_id, delta, entry_id, &meta.grants, figures.remaining, now).await?;
    super::alerts::on_entry(conn, user_id, delta, figures.remaining, now).await?;
    record_metrics(kind, delta);
    tracing::debug!(entry_id, remaining = figures.remaining, "ledger entry written");
    Ok(Applied { figures, entry_id })
}

/// Counts credits by what happened to them (written before commit, so a
/// rolled-back change may be counted; the ledger, not the metric, is the record).
pub(crate) fn record_metrics(kind: EntryKind, delta: &Delta) {
    metrics::counter!("ledger_entries_total", "kind" => kind.as_str()).increment(1);
    let granted = delta.initial + delta.bonus.max(0) + delta.adjustments.max(0);
    if granted > 0 {
        metrics::counter!("credits_granted_total", "kind" => kind.as_str()).increment(granted as u64);
    }
    if kind == EntryKind::Spend {
        metrics::counter!("credits_spent_total").increment(delta.used as u64);
    }
}

/// Says why a guarded UPDATE matched no row (`due_at`: the guard also
/// required that no grant be due at that time).
async fn explain_refusal(
    conn: &mut AnyConnection,
    user_id: &str,
    required: i64,
    due_at: Option<i64>,
) -> LedgerError {
    if let Some(now) = due_at {
        match super::grants::has_due(conn, user_id, now).await {
            Ok(true) => return LedgerError::GrantsDue,
            Ok(false) => {}
            Err(error) => return LedgerError::Database(error),
        }
    }
    match load(conn, user_id).await {
        Ok(None) => LedgerError::NoAccount,
        Ok(Some(account)) if account.status != AccountStatus::Active => LedgerError::Closed,
        Ok(Some(account)) => LedgerError::Insufficient { required, remaining: account.figures.remaining },
        Err(error) => LedgerError::Database(error),
    }
}

async fn insert_entry(
    conn: &mut AnyConnection,
    user_id: &str,
    kind: EntryKind,
    delta: &Delta,
    balance_after: i64,
    meta: &EntryMeta<'_>,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO ledger_entries (user_id, kind, amount, held_delta, used_delta, \
         initial_delta, bonus_delta, adjust_delta, balance_after, reason, reference, actor, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(user_id)
    .bind(kind.as_str())
    .bind(delta.remaining)
    .bind(delta.held)
    .bind(delta.used)
    .bind(delta.initial)
    .bind(delta.bonus)
    .bind(delta.adjustments)
    .bind(balance_after)
    .bind(meta.reason)
    .bind(meta.reference)
    .bind(meta.actor)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    row.try_get("id")
}

/// One page of a user's entries, newest first, strictly older than `before_id`.
pub async fn entries_before(
    conn: &mut AnyConnection,
    user_id: &str,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, kind, amount, balance_after, reason, reference, created_at \
         FROM ledger_entries WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(user_id)
    .bind(before_id.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Entry {
                id: row.try_get("id")?,
                kind: entry_kind(&row.try_get::<String, _>("kind")?)?,
                amount: row.try_get("amount")?,
                balance_after: row.try_get("balance_after")?,
                reason: row.try_get("reason")?,
                reference: row.try_get("reference")?,
                created_at_ms: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// An entry kind as stored; the schema's CHECK allows only the known ones.
pub(crate) fn entry_kind(text: &str) -> Result<EntryKind, sqlx::Error> {
    EntryKind::parse(text).ok_or_else(|| sqlx::Error::Decode(format!("unknown entry kind `{text}`").into()))
}
