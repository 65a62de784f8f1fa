//! Inbound webhooks, end to end: verify the signature on the raw bytes, parse,
//! then record the event id and its effect in one transaction. The caller
//! answers 200 only after `commit` returned. A refused delivery is counted
//! per provider and reason and joins a bounded sample of the newest ones.

use super::{CreditsService, ServiceError};
use crate::auth::Principal;
use crate::ledger::store;
use crate::webhooks::{clerk, creem, Rejection};
use crate::writer::{ClerkDelivery, CreemDelivery, LedgerOp};
use serde::Serialize;
use sqlx::Row;

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
        let delivery = CreemDelivery {
            event_id: envelope.id,
            event_type: envelope.event_type,
            event,
            test_by: test_by.cloned(),
            settings: self.inner.settings.clone(),
        };
        let ids = (delivery.event_id.clone(), delivery.event_type.clone());
        let done = self.inner.writer.submit(LedgerOp::creem(delivery)).await?.into_delivered()?;
        let (outcome, detail) = (done.outcome, done.detail);
        tracing::info!(event_id = ids.0, event_type = ids.1, outcome, %detail, "creem webhook");
        if let Some(user_id) = done.recheck_user {
            // The user may have appeared while the delivery ran (see credit_pending_payments).
            let exists = store::load(&mut *self.inner.db.pool.acquire().await?, &user_id).await?.is_some();
            if exists {
                self.credit_pending_payments(&user_id).await?;
            }
        }
        Ok(WebhookOutcome::new(outcome, detail))
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
        let delivery = ClerkDelivery {
            message_id: message_id.to_string(),
            event_type: event_type.clone(),
            event,
            initial_credits: self.inner.settings.initial_credits,
            initial_grant: self.initial_grant(),
        };
        let done = self.inner.writer.submit(LedgerOp::Profile(delivery)).await?.into_delivered()?;
        let (outcome, detail) = (done.outcome, done.detail);
        tracing::info!(message_id, event_type = %event_type, outcome, %detail, "clerk webhook");
        if let (Some(user_id), "accepted") = (done.recheck_user, outcome) {
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
