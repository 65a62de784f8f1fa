//! Inbound webhooks, end to end: verify the signature on the raw bytes, parse,
//! then record the event id and its effect in one transaction. The caller
//! answers 200 only after `commit` returned. A refused delivery is counted
//! per provider and reason and joins a bounded sample of the newest ones.

use super::{CreditsService, ServiceError};
use crate::auth::Principal;
use crate::ledger::{store, Figures};
use crate::payments::{self, PaymentOutcome, ReversalOutcome};
use crate::webhooks::{clerk, creem, Rejection};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

/// Refused deliveries kept in `webhook_deliveries` (the newest); older ones
/// are deleted as new ones come, and `webhook_rejections` keeps the counts.
const REJECTED_SAMPLE: i64 = 100;
/// A sampled delivery keeps at most this much of its body.
const BODY_PREFIX_BYTES: usize = 1024;
/// A sampled delivery's reason in words is cut to this (parse errors may quote the body).
const REASON_BYTES: usize = 256;

/// What a delivery did; the body of the 200 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookOutcome {
    pub received: bool,
    /// `accepted`, `duplicate` or `ignored`.
    pub outcome: &'static str,
    pub detail: String,
}

impl WebhookOutcome {
    fn new(outcome: &'static str, detail: impl Into<String>) -> Self {
        Self { received: true, outcome, detail: detail.into() }
    }
}

/// One stored delivery, for the admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: i64,
    pub provider: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    /// The first bytes of a refused delivery's body (at most 1 KiB); none for verified ones.
    pub body_prefix: Option<String>,
    pub received_at: String,
}

/// The audit entry of a test webhook: which admin sent it, and what it did
/// to the admin's own figures.
async fn audit_test_webhook(
    conn: &mut AnyConnection,
    admin: &Principal,
    before: Option<&Figures>,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let after = store::load(conn, &admin.user_id).await?.map(|account| account.figures);
    let name = admin.name.as_deref().or(admin.email.as_deref()).unwrap_or(&admin.user_id);
    let reason = format!("test webhook sent by {name} (a test, not revenue): {detail}");
    let action = crate::audit::Action {
        actor: &format!("admin:{}", admin.user_id),
        action: "webhook.test",
        target_user: Some(&admin.user_id),
        reason: &reason.chars().take(crate::requests::MAX_REASON_CHARS).collect::<String>(),
        before,
        after: after.as_ref(),
    };
    crate::audit::record(conn, &action).await
}

async fn log_delivery(
    conn: &mut AnyConnection,
    provider: &str,
    event: Option<(&str, &str)>,
    outcome: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    metrics::counter!("webhook_deliveries_total", "provider" => provider.to_string(), "outcome" => outcome.to_string())
        .increment(1);
    sqlx::query(
        "INSERT INTO webhook_deliveries (provider, event_id, event_type, outcome, reason, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(provider)
    .bind(event.map(|(id, _)| id))
    .bind(event.map(|(_, kind)| kind))
    .bind(outcome)
    .bind(reason)
    .bind(crate::db::now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Claims an event id; false when it was processed before.
async fn claim_event(
    conn: &mut AnyConnection,
    provider: &str,
    id: &str,
    kind: &str,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO webhook_events (provider, event_id, event_type, received_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(provider)
    .bind(id)
    .bind(kind)
    .bind(crate::db::now_ms())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.is_some())
}

/// How many deliveries one provider refused for one reason, and the latest when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectionCount {
    pub provider: String,
    pub reason: String,
    pub count: i64,
    pub last_at: String,
}

/// A refused delivery, as it is counted and sampled.
struct Refused<'a> {
    provider: &'static str,
    reason: Rejection,
    /// Why, in words (the signature or parse error).
    detail: String,
    body: &'a [u8],
}

impl<'a> Refused<'a> {
    fn new(
        provider: &'static str,
        reason: Rejection,
        detail: &impl std::fmt::Display,
        body: &'a [u8],
    ) -> Self {
        Self { provider, reason, detail: detail.to_string(), body }
    }
}

impl CreditsService {
    /// Counts a refused delivery and keeps it in the sample, then says why
    /// it was refused. A failure to record is logged: the refusal stands.
    async fn reject(&self, refused: Refused<'_>, error: ServiceError) -> ServiceError {
        let (provider, reason) = (refused.provider, refused.reason.as_str());
        tracing::warn!(provider, reason, detail = %refused.detail, "webhook rejected");
        metrics::counter!("webhook_deliveries_total", "provider" => refused.provider, "outcome" => "rejected")
            .increment(1);
        if let Err(db_error) = self.record_rejection(&refused).await {
            tracing::error!(%db_error, "could not record a rejected webhook");
        }
        error
    }

    async fn record_rejection(&self, refused: &Refused<'_>) -> Result<(), sqlx::Error> {
        let now = crate::db::now_ms();
        let mut tx = self.inner.db.pool.begin().await?;
        // The count first: its row lock orders the rejections of one provider
        // and reason, so each trim below sees every sample row added before it.
        sqlx::query(
            "INSERT INTO webhook_rejections (provider, reason, count, last_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (provider, reason) DO UPDATE \
             SET count = webhook_rejections.count + 1, last_at = excluded.last_at",
        )
        .bind(refused.provider)
        .bind(refused.reason.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO webhook_deliveries (provider, outcome, reason, body_prefix, received_at) \
             VALUES ($1, 'rejected', $2, $3, $4)",
        )
        .bind(refused.provider)
        .bind(crate::webhooks::truncate(&refused.detail, REASON_BYTES))
        .bind(crate::webhooks::body_prefix(refused.body, BODY_PREFIX_BYTES))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE outcome = 'rejected' AND id <= \
             (SELECT id FROM webhook_deliveries WHERE outcome = 'rejected' ORDER BY id DESC LIMIT 1 OFFSET $1)",
        )
        .bind(REJECTED_SAMPLE)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// `POST /api/webhooks/creem`.
    pub async fn creem_webhook(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookOutcome, ServiceError> {
        self.receive_creem(signature, body, None).await
    }

    /// A Creem delivery. `test_by` is the admin who sent it from the test page
    /// (`send_test_webhook`): its payment is then marked a test, and the
    /// action is audited in the transaction that credits it.
    pub(crate) async fn receive_creem(
        &self,
        signature: Option<&str>,
        body: &[u8],
        test_by: Option<&Principal>,
    ) -> Result<WebhookOutcome, ServiceError> {
        let secret = self.inner.creem.webhook_secret.as_deref();
        if let Err(error) = creem::verify(secret, signature, body) {
            let refusal = ServiceError::Unauthenticated(format!("webhook refused: {error}"));
            return Err(self.reject(Refused::new("creem", (&error).into(), &error, body), refusal).await);
        }
        let (envelope, mut event) = match creem::parse(body) {
            Ok(parsed) => parsed,
            Err(error) => {
                let refused = Refused::new("creem", Rejection::Unparseable, &error, body);
                return Err(self.reject(refused, ServiceError::Invalid(error.0)).await);
            }
        };
        if let (Some(_), creem::Event::Payment(payment)) = (test_by, &mut event) {
            payment.test = true;
        }
        let ids = (envelope.id.as_str(), envelope.event_type.as_str());
        let mut tx = self.inner.db.pool.begin().await?;
        if !claim_event(&mut tx, "creem", ids.0, ids.1).await? {
            log_delivery(&mut tx, "creem", Some(ids), "duplicate", "event id seen before").await?;
            tx.commit().await?;
            tracing::info!(event_id = ids.0, event_type = ids.1, "creem webhook duplicate");
            return Ok(WebhookOutcome::new("duplicate", "event id seen before"));
        }
        let before = match test_by {
            Some(admin) => store::load(&mut tx, &admin.user_id).await?.map(|account| account.figures),
            None => None,
        };
        let (outcome, detail, waiting_user) = self.apply_creem(&mut tx, ids, &event).await?;
        if let Some(admin) = test_by {
            audit_test_webhook(&mut tx, admin, before.as_ref(), &detail).await?;
        }
        log_delivery(&mut tx, "creem", Some(ids), outcome, &detail).await?;
        tx.commit().await?;
        tracing::info!(event_id = ids.0, event_type = ids.1, outcome, %detail, "creem webhook");
        if let Some(user_id) = waiting_user {
            // The user may have appeared while this transaction ran (see credit_pending_payments).
            let exists = store::load(&mut *self.inner.db.pool.acquire().await?, &user_id).await?.is_some();
            if exists {
                self.credit_pending_payments(&user_id).await?;
            }
        }
        Ok(WebhookOutcome::new(outcome, detail))
    }

    /// A verified, new Creem event's effect: the outcome, its detail, and the
    /// user a pending payment names (checked again after the commit).
    async fn apply_creem(
        &self,
        tx: &mut AnyConnection,
        ids: (&str, &str),
        event: &creem::Event,
    ) -> Result<(&'static str, String, Option<String>), ServiceError> {
        let mut waiting_user = None;
        let (outcome, detail) = match event {
            creem::Event::Payment(payment) => {
                match payments::record_payment(tx, ids.0, payment, &self.inner.settings).await? {
                    PaymentOutcome::Credited { user_id, credits } => {
                        ("accepted", format!("credited {credits} to {user_id}"))
                    }
                    PaymentOutcome::PendingUser => {
                        waiting_user = payment.user_id.clone();
                        ("accepted", "stored until the user appears".to_string())
                    }
                    PaymentOutcome::UnknownProduct => (
                        "accepted",
                        format!("unknown product {}: recorded, not credited", payment.product_id),
                    ),
                    PaymentOutcome::Duplicate => ("duplicate", "payment already recorded".to_string()),
                }
            }
            creem::Event::Reversal(reversal) => match payments::record_reversal(tx, reversal).await? {
                ReversalOutcome::ClawedBack { user_id, credits } => {
                    ("accepted", format!("clawed back {credits} from {user_id}"))
                }
                ReversalOutcome::Recorded => ("accepted", "recorded".to_string()),
                ReversalOutcome::Unmatched => ("accepted", "no matching payment; recorded".to_string()),
                ReversalOutcome::Duplicate => ("duplicate", "refund or dispute already recorded".to_string()),
            },
            creem::Event::Ignored => ("ignored", format!("event type {} is not used", ids.1)),
        };
        Ok((outcome, detail, waiting_user))
    }

    /// `POST /api/webhooks/clerk`.
    pub async fn clerk_webhook(
        &self,
        headers: clerk::Headers<'_>,
        body: &[u8],
        now_seconds: i64,
    ) -> Result<WebhookOutcome, ServiceError> {
        let key = self.inner.clerk_webhook_key.as_deref();
        if let Err(error) = clerk::verify(key, headers, body, now_seconds) {
            let refusal = ServiceError::Unauthenticated(format!("webhook refused: {error}"));
            return Err(self.reject(Refused::new("clerk", (&error).into(), &error, body), refusal).await);
        }
        let message_id = headers.id.unwrap_or_default();
        let (event_type, event) = match clerk::parse(body) {
            Ok(parsed) => parsed,
            Err(error) => {
                let refused = Refused::new("clerk", Rejection::Unparseable, &error, body);
                return Err(self.reject(refused, ServiceError::Invalid(error)).await);
            }
        };
        let ids = (message_id, event_type.as_str());
        let mut tx = self.inner.db.pool.begin().await?;
        if !claim_event(&mut tx, "clerk", ids.0, ids.1).await? {
            log_delivery(&mut tx, "clerk", Some(ids), "duplicate", "message id seen before").await?;
            tx.commit().await?;
            return Ok(WebhookOutcome::new("duplicate", "message id seen before"));
        }
        let mut appeared = None;
        let (outcome, detail) = match &event {
            clerk::Event::UserUpserted { user_id, email, email_verified, name, .. } => {
                let initial = self.inner.settings.initial_credits;
                let email =
                    email.as_deref().map(|address| store::EmailClaim { address, verified: *email_verified });
                let name = name.as_deref();
                let created =
                    store::create_if_missing(&mut tx, user_id, email, name, initial, self.initial_grant())
                        .await?;
                if !created {
                    store::update_profile(&mut tx, user_id, email, name).await?;
                }
                appeared = Some(user_id.clone());
                (
                    "accepted",
                    if created { format!("account {user_id} created") } else { format!("{user_id} updated") },
                )
            }
            clerk::Event::UserDeleted { user_id } => {
                sqlx::query("UPDATE accounts SET status = 'closed', updated_at = $1 WHERE user_id = $2")
                    .bind(crate::db::now_ms())
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                ("accepted", format!("account {user_id} closed; its ledger is kept"))
            }
            clerk::Event::Ignored => ("ignored", format!("event type {event_type} is not used")),
        };
        log_delivery(&mut tx, "clerk", Some(ids), outcome, &detail).await?;
        tx.commit().await?;
        tracing::info!(message_id, event_type = %event_type, outcome, %detail, "clerk webhook");
        if let Some(user_id) = appeared {
            self.credit_pending_payments(&user_id).await?;
        }
        Ok(WebhookOutcome::new(outcome, detail))
    }

    /// The most recent deliveries, newest first (admin).
    pub async fn deliveries(&self, limit: i64) -> Result<Vec<Delivery>, ServiceError> {
        let rows = sqlx::query(
            "SELECT id, provider, event_id, event_type, outcome, reason, body_prefix, received_at \
             FROM webhook_deliveries ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.inner.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Delivery {
                    id: row.try_get("id")?,
                    provider: row.try_get("provider")?,
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    outcome: row.try_get("outcome")?,
                    reason: row.try_get("reason")?,
                    body_prefix: row.try_get("body_prefix")?,
                    received_at: crate::db::rfc3339(row.try_get("received_at")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// How many deliveries were refused, per provider and reason (admin).
    pub async fn rejection_counts(&self) -> Result<Vec<RejectionCount>, ServiceError> {
        let rows = sqlx::query(
            "SELECT provider, reason, count, last_at FROM webhook_rejections ORDER BY provider, reason",
        )
        .fetch_all(&self.inner.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RejectionCount {
                    provider: row.try_get("provider")?,
                    reason: row.try_get("reason")?,
                    count: row.try_get("count")?,
                    last_at: crate::db::rfc3339(row.try_get("last_at")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
