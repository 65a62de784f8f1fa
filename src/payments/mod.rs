//! Payments that credit exactly once.
//!
//! Every function runs inside the caller's transaction; the unique constraints
//! on `payments` and `payment_reversals` make a second attempt a no-op, however
//! the attempts interleave (PostgreSQL waits on the conflicting insert until the
//! first transaction ends; SQLite serializes writers).

pub mod creem_api;

use crate::ledger::grants::{GrantEffect, GrantSpec};
use crate::ledger::store::{self, EntryMeta, Guard, LedgerError};
use crate::ledger::{Delta, EntryKind};
use crate::plans::Settings;
use crate::webhooks::creem::{refund_clawback, Payment, PaymentIdentity, Reversal};
use sqlx::{AnyConnection, Row};

/// What recording a payment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    Credited {
        user_id: String,
        credits: i64,
    },
    /// Stored; credited when the user first appears.
    PendingUser,
    /// Stored for the admin; the product maps to no plan.
    UnknownProduct,
    /// This payment was already recorded (another event for it, or a redelivery).
    Duplicate,
}

/// What recording a refund or dispute did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversalOutcome {
    ClawedBack {
        user_id: String,
        credits: i64,
    },
    /// Recorded against a payment not credited yet (or with nothing left to take).
    Recorded,
    /// No payment matches its order or transaction; recorded for the admin.
    Unmatched,
    Duplicate,
}

/// The plan a Creem product id maps to.
pub fn plan_for_product<'a>(settings: &'a Settings, product_id: &str) -> Option<&'a crate::plans::Plan> {
    settings
        .plans
        .iter()
        .find(|plan| !plan.creem_product_id.is_empty() && plan.creem_product_id == product_id)
}

/// Records a payment and credits it if its user is known.
pub async fn record_payment(
    conn: &mut AnyConnection,
    event_id: &str,
    payment: &Payment,
    settings: &Settings,
) -> Result<PaymentOutcome, LedgerError> {
    let plan = plan_for_product(settings, &payment.product_id);
    let rollover = settings.subscription_rollover_cap.is_some();
    let Some(payment_id) = insert_payment(conn, event_id, payment, plan, rollover).await? else {
        return Ok(PaymentOutcome::Duplicate);
    };
    if plan.is_none() {
        tracing::warn!(product_id = %payment.product_id, "payment for an unknown product recorded, not credited");
        return Ok(PaymentOutcome::UnknownProduct);
    }
    match resolve_user(conn, payment).await? {
        Some(user_id) => {
            credit(conn, payment_id, &user_id, settings.subscription_rollover_cap).await.map(|credited| {
                credited.map_or(PaymentOutcome::Duplicate, |credits| PaymentOutcome::Credited {
                    user_id,
                    credits,
                })
            })
        }
        None => Ok(PaymentOutcome::PendingUser),
    }
}

/// Inserts the payment under its key; `None` when it already exists. A
/// subscription's first payment may arrive as `checkout.completed` (no period)
/// and as `subscription.paid` (with one): both land on `sub:<id>:first`.
async fn insert_payment(
    conn: &mut AnyConnection,
    event_id: &str,
    payment: &Payment,
    plan: Option<&crate::plans::Plan>,
    rollover: bool,
) -> Result<Option<i64>, sqlx::Error> {
    let (subscription_id, period_start) = match &payment.identity {
        PaymentIdentity::Order(_) => (None, None),
        PaymentIdentity::SubscriptionFirst { subscription_id } => (Some(subscription_id.as_str()), None),
        PaymentIdentity::SubscriptionPeriod { subscription_id, period_start } => {
            (Some(subscription_id.as_str()), Some(period_start.as_str()))
        }
    };
    let first_key = subscription_id.map(|id| format!("sub:{id}:first"));
    let key = match &payment.identity {
        PaymentIdentity::Order(order_id) => format!("order:{order_id}"),
        _ => first_key.clone().expect("subscription payments have an id"),
    };
    if let Some(id) =
        try_insert(conn, &key, event_id, payment, subscription_id, period_start, plan, rollover).await?
    {
        return Ok(Some(id));
    }
    let Some(period_start) = period_start else {
        // A duplicate order or first payment: note the order id if we lacked it.
        sqlx::query("UPDATE payments SET order_id = COALESCE(order_id, $1) WHERE payment_key = $2")
            .bind(payment.order_id.as_deref())
            .bind(&key)
            .execute(&mut *conn)
            .await?;
        return Ok(None);
    };
    // The first payment exists: is this its period (then it is the same payment)?
    let same = sqlx::query(
        "UPDATE payments SET period_start = $1, transaction_id = COALESCE(transaction_id, $2) \
         WHERE payment_key = $3 AND (period_start IS NULL OR period_start = $1) RETURNING id",
    )
    .bind(period_start)
    .bind(payment.transaction_id.as_deref())
    .bind(&key)
    .fetch_optional(&mut *conn)
    .await?;
    if same.is_some() {
        return Ok(None);
    }
    let period_key = format!("sub:{}:{period_start}", subscription_id.unwrap_or_default());
    try_insert(conn, &period_key, event_id, payment, subscription_id, Some(period_start), plan, rollover)
        .await
}

#[allow(clippy::too_many_arguments)]
async fn try_insert(
    conn: &mut AnyConnection,
    key: &str,
    event_id: &str,
    payment: &Payment,
    subscription_id: Option<&str>,
    period_start: Option<&str>,
    plan: Option<&crate::plans::Plan>,
    rollover: bool,
) -> Result<Option<i64>, sqlx::Error> {
    let status = if plan.is_some() { "pending_user" } else { "unknown_product" };
    let now = crate::db::now_ms();
    let row = sqlx::query(
        "INSERT INTO payments (payment_key, event_id, order_id, transaction_id, subscription_id, \
         period_start, product_id, plan, amount_cents, currency, user_id, customer_email, credits, \
         status, created_at, grant_expires_at, is_test) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(key)
    .bind(event_id)
    .bind(payment.order_id.as_deref())
    .bind(payment.transaction_id.as_deref())
    .bind(subscription_id)
    .bind(period_start)
    .bind(&payment.product_id)
    .bind(plan.map(|p| p.name.as_str()))
    .bind(payment.amount_cents)
    .bind(payment.currency.as_deref())
    .bind(payment.user_id.as_deref())
    .bind(payment.customer_email.as_deref())
    .bind(plan.map_or(0, |p| p.credits))
    .bind(status)
    .bind(now)
    .bind(grant_expiry(payment, plan, rollover, now))
    .bind(i64::from(payment.test))
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| row.try_get("id")).transpose()
}

/// When a payment's credits expire: a subscription's at the end of its paid
/// period (unless credits roll over), else after the plan's validity, else never.
fn grant_expiry(
    payment: &Payment,
    plan: Option<&crate::plans::Plan>,
    rollover: bool,
    now: i64,
) -> Option<i64> {
    let subscription = !matches!(payment.identity, PaymentIdentity::Order(_));
    let validity = plan.and_then(|plan| plan.validity_days).map(|days| now + days * 86_400_000);
    match (subscription, rollover) {
        (true, false) => payment.period_end_ms.filter(|end| *end > now).or(validity),
        (true, true) => None,
        (false, _) => validity,
    }
}

/// The account a payment belongs to: `metadata.userId` if that account
/// exists, else the one account whose verified email is the customer's (an
/// unverified one, such as a local account's, could be anybody's).
async fn resolve_user(conn: &mut AnyConnection, payment: &Payment) -> Result<Option<String>, sqlx::Error> {
    if let Some(user_id) = &payment.user_id {
        let exists = sqlx::query("SELECT user_id FROM accounts WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
        return Ok(exists.map(|_| user_id.clone()));
    }
    let Some(email) = &payment.customer_email else { return Ok(None) };
    let rows = sqlx::query("SELECT user_id FROM accounts WHERE email = $1 AND email_verified = 1 LIMIT 2")
        .bind(email)
        .fetch_all(&mut *conn)
        .await?;
    Ok(if rows.len() == 1 { Some(rows[0].try_get("user_id")?) } else { None })
}

/// Credits a pending payment to `user_id`: claims the row (locking it), writes
/// the purchase entry, marks it credited. `None` if someone else credited it.
pub async fn credit(
    conn: &mut AnyConnection,
    payment_id: i64,
    user_id: &str,
    rollover_cap: Option<i64>,
) -> Result<Option<i64>, LedgerError> {
    let claimed = sqlx::query(
        "UPDATE payments SET user_id = $1 WHERE id = $2 AND status = 'pending_user' \
         RETURNING payment_key, plan, credits, clawed_back, grant_expires_at, subscription_id, is_test",
    )
    .bind(user_id)
    .bind(payment_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = claimed else { return Ok(None) };
    let key: String = row.try_get("payment_key")?;
    let plan: Option<String> = row.try_get("plan")?;
    let credits = row.try_get::<i64, _>("credits")? - row.try_get::<i64, _>("clawed_back")?;
    if credits <= 0 {
        sqlx::query("UPDATE payments SET status = 'reversed' WHERE id = $1")
            .bind(payment_id)
            .execute(&mut *conn)
            .await?;
        return Ok(Some(0));
    }
    let reason = match row.try_get::<i64, _>("is_test")? {
        0 => format!("{} plan purchase", plan.unwrap_or_default()),
        _ => format!("{} plan purchase (test webhook, not revenue)", plan.unwrap_or_default()),
    };
    let reference = format!("creem:{key}");
    let subscription: Option<String> = row.try_get("subscription_id")?;
    let spec = GrantSpec {
        category: "paid",
        priority: crate::ledger::grants::DEFAULT_PRIORITY,
        effective_at: None,
        expires_at: row.try_get("grant_expires_at")?,
        reference: Some(subscription.as_ref().map_or(key.clone(), |id| format!("sub:{id}"))),
    };
    let meta = EntryMeta {
        reason: Some(&reason),
        reference: Some(&reference),
        actor: "creem",
        grants: GrantEffect::Create(spec),
    };
    store::lock(conn, user_id).await?;
    crate::ledger::expiry::catch_up(conn, user_id, crate::db::now_ms()).await?;
    let applied = store::apply(conn, user_id, &Delta::purchase(credits), Guard::None, &meta).await?;
    sqlx::query(
        "UPDATE payments SET status = 'credited', grant_entry_id = $1, credited_at = $2 WHERE id = $3",
    )
    .bind(applied.entry_id)
    .bind(crate::db::now_ms())
    .bind(payment_id)
    .execute(&mut *conn)
    .await?;
    tracing::info!(%user_id, credits, payment = %key, "payment credited");
    if let (Some(subscription), Some(cap)) = (subscription, rollover_cap) {
        crate::ledger::expiry::cap_rollover(
            conn,
            user_id,
            &format!("sub:{subscription}"),
            cap,
            applied.entry_id,
        )
        .await?;
    }
    Ok(Some(credits))
}

/// The pending payments of user `$1`: those naming it, and those naming no
/// user whose customer email is the account's verified email.
const PENDING_OF_USER: &str = "status = 'pending_user' AND (user_id = $1 OR (user_id IS NULL \
     AND customer_email = (SELECT email FROM accounts WHERE user_id = $1 AND email_verified = 1)))";

/// Credits every pending payment of this user (`PENDING_OF_USER`). Returns
/// the credits granted.
pub async fn credit_pending(
    conn: &mut AnyConnection,
    user_id: &str,
    rollover_cap: Option<i64>,
) -> Result<i64, LedgerError> {
    let sql = format!("SELECT id FROM payments WHERE {PENDING_OF_USER} ORDER BY id");
    let rows = sqlx::query(&sql).bind(user_id).fetch_all(&mut *conn).await?;
    let mut total = 0;
    for row in rows {
        total += credit(conn, row.try_get("id")?, user_id, rollover_cap).await?.unwrap_or(0);
    }
    Ok(total)
}

/// Whether any payment waits for this user (a cheap check before a write).
pub async fn has_pending(conn: &mut AnyConnection, user_id: &str) -> Result<bool, sqlx::Error> {
    let sql = format!("SELECT id FROM payments WHERE {PENDING_OF_USER} LIMIT 1");
    let row = sqlx::query(&sql).bind(user_id).fetch_optional(&mut *conn).await?;
    Ok(row.is_some())
}

/// Records a refund or dispute and claws back its share, at most once.
pub async fn record_reversal(
    conn: &mut AnyConnection,
    reversal: &Reversal,
) -> Result<ReversalOutcome, LedgerError> {
    let kind = if reversal.is_dispute { "dispute" } else { "refund" };
    let Some(reversal_row) = insert_reversal(conn, reversal, kind).await? else {
        return Ok(ReversalOutcome::Duplicate);
    };
    let Some(payment) = lock_reversed_payment(conn, reversal).await? else {
        tracing::warn!(reversal = %reversal.id, "refund or dispute for an unknown payment recorded");
        return Ok(ReversalOutcome::Unmatched);
    };
    let (share, refunded_after) = payment.reversal_share(reversal.refund_cents);
    // Credits that already left with the grant's expiry or void are not taken twice.
    let (grant_id, expired) = purchase_grant(conn, payment.grant_entry).await?;
    let remove_now = (payment.clawed_back + share - expired - payment.removed_credits).clamp(0, share);
    sqlx::query(
        "UPDATE payments SET refunded_cents = $1, clawed_back = clawed_back + $2, removed_credits = removed_credits + $3 \
         WHERE id = $4",
    )
    .bind(refunded_after)
    .bind(share)
    .bind(remove_now)
    .bind(payment.id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE payment_reversals SET payment_id = $1, credits = $2 WHERE id = $3")
        .bind(payment.id)
        .bind(remove_now)
        .bind(reversal_row)
        .execute(&mut *conn)
        .await?;
    settle_reversal(conn, &payment, reversal, reversal_row, grant_id, remove_now).await
}

/// Inserts the reversal's row unless it is already recorded; its row id, or
/// `None` for a redelivery.
async fn insert_reversal(
    conn: &mut AnyConnection,
    reversal: &Reversal,
    kind: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO payment_reversals (reversal_id, kind, amount_cents, credits, created_at) \
         VALUES ($1, $2, $3, 0, $4) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&reversal.id)
    .bind(kind)
    .bind(reversal.refund_cents.unwrap_or(0))
    .bind(crate::db::now_ms())
    .fetch_optional(&mut *conn)
    .await?;
    inserted.map(|row| row.try_get("id")).transpose()
}

/// The payment a refund or dispute reverses, as it stands before it.
struct ReversedPayment {
    id: i64,
    payment_key: String,
    status: String,
    user_id: Option<String>,
    credits: i64,
    clawed_back: i64,
    refunded_cents: i64,
    amount_cents: i64,
    grant_entry: Option<i64>,
    removed_credits: i64,
}

impl ReversedPayment {
    /// The credits this reversal takes back before what already left is
    /// counted, and the cents refunded after it. A refund takes its share
    /// (`refund_clawback`); a dispute takes all that is left.
    fn reversal_share(&self, refund_cents: Option<i64>) -> (i64, i64) {
        let (take, refunded_after) = match refund_cents {
            Some(cents) => (
                refund_clawback(self.credits, self.amount_cents, self.refunded_cents, cents),
                self.refunded_cents + cents,
            ),
            None => (self.credits - self.clawed_back, self.refunded_cents.max(self.amount_cents)),
        };
        (take.min(self.credits - self.clawed_back).max(0), refunded_after)
    }
}

/// Finds the payment of the reversal's order or transaction and locks its
/// row for the rest of the transaction.
async fn lock_reversed_payment(
    conn: &mut AnyConnection,
    reversal: &Reversal,
) -> Result<Option<ReversedPayment>, sqlx::Error> {
    let payment = sqlx::query(
        "UPDATE payments SET refunded_cents = refunded_cents \
         WHERE (order_id IS NOT NULL AND order_id = $1) OR (transaction_id IS NOT NULL AND transaction_id = $2) \
         RETURNING id, payment_key, status, user_id, credits, clawed_back, refunded_cents, amount_cents, grant_entry_id, \
         removed_credits",
    )
    .bind(reversal.order_id.as_deref())
    .bind(reversal.transaction_id.as_deref())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = payment else { return Ok(None) };
    Ok(Some(ReversedPayment {
        id: row.try_get("id")?,
        payment_key: row.try_get("payment_key")?,
        status: row.try_get("status")?,
        user_id: row.try_get("user_id")?,
        credits: row.try_get("credits")?,
        clawed_back: row.try_get("clawed_back")?,
        refunded_cents: row.try_get("refunded_cents")?,
        amount_cents: row.try_get("amount_cents")?,
        grant_entry: row.try_get("grant_entry_id")?,
        removed_credits: row.try_get("removed_credits")?,
    }))
}

/// The grant a purchase made (by its entry): its id and the credits of it
/// that expired, or `(None, 0)`.
async fn purchase_grant(
    conn: &mut AnyConnection,
    grant_entry: Option<i64>,
) -> Result<(Option<i64>, i64), sqlx::Error> {
    let grant = sqlx::query("SELECT id, expired FROM grants WHERE source_entry_id = $1")
        .bind(grant_entry)
        .fetch_optional(&mut *conn)
        .await?;
    match grant {
        Some(row) => Ok((Some(row.try_get("id")?), row.try_get("expired")?)),
        None => Ok((None, 0)),
    }
}

/// Takes `take` credits back from a credited payment's user (from the
/// purchase's grant first), or marks a pending payment reversed once all of
/// it is taken.
async fn settle_reversal(
    conn: &mut AnyConnection,
    payment: &ReversedPayment,
    reversal: &Reversal,
    reversal_row: i64,
    grant_id: Option<i64>,
    take: i64,
) -> Result<ReversalOutcome, LedgerError> {
    match (payment.status.as_str(), &payment.user_id) {
        ("credited", Some(user_id)) if take > 0 => {
            let (kind, entry_kind) = if reversal.is_dispute {
                ("dispute", EntryKind::Clawback)
            } else {
                ("refund", EntryKind::Refund)
            };
            let reference = format!("creem:{kind}:{}", reversal.id);
            let reason = format!("{kind} of {}", payment.payment_key);
            let grants = grant_id.map_or(GrantEffect::Auto, GrantEffect::Prefer);
            let meta =
                EntryMeta { reason: Some(&reason), reference: Some(&reference), actor: "creem", grants };
            let applied =
                store::apply(conn, user_id, &Delta::reversal(entry_kind, take), Guard::None, &meta).await?;
            sqlx::query("UPDATE payment_reversals SET entry_id = $1 WHERE id = $2")
                .bind(applied.entry_id)
                .bind(reversal_row)
                .execute(&mut *conn)
                .await?;
            tracing::info!(%user_id, credits = take, reversal = %reversal.id, "credits clawed back");
            Ok(ReversalOutcome::ClawedBack { user_id: user_id.clone(), credits: take })
        }
        ("pending_user", _) if payment.clawed_back + take >= payment.credits => {
            sqlx::query("UPDATE payments SET status = 'reversed' WHERE id = $1")
                .bind(payment.id)
                .execute(&mut *conn)
                .await?;
            Ok(ReversalOutcome::Recorded)
        }
        _ => Ok(ReversalOutcome::Recorded),
    }
}
