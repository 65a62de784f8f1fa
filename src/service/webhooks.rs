//! Inbound webhooks, end to end: verify the signature on the raw bytes, parse,
//! then record the event id and its effect in one transaction. The caller
//! answers 200 only after `commit` returned.

use super::{CreditsService, ServiceError};
use crate::auth::Principal;
use crate::ledger::{store, Figures};
use crate::payments::{self, PaymentOutcome, ReversalOutcome};
use crate::webhooks::{clerk, creem};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

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

impl CreditsService {
    /// Records a refused delivery (no body, no unverified ids) and says why.
    async fn reject(&self, provider: &str, reason: String, error: ServiceError) -> ServiceError {
        tracing::warn!(provider, %reason, "webhook rejected");
        if let Ok(mut conn) = self.inner.db.pool.acquire().await {
            if let Err(db_error) = log_delivery(&mut conn, provider, None, "rejected", &reason).await {
                tracing::error!(%db_error, "could not log a rejected webhook");
            }
        }
        error
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
            return Err(self.reject("creem", error.to_string(), refusal).await);
        }
        let (envelope, mut event) = match creem::parse(body) {
            Ok(parsed) => parsed,
            Err(error) => {
                return Err(self.reject("creem", error.to_string(), ServiceError::Invalid(error.0)).await)
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
            return Err(self.reject("clerk", error.to_string(), refusal).await);
        }
        let message_id = headers.id.unwrap_or_default();
        let (event_type, event) = match clerk::parse(body) {
            Ok(parsed) => parsed,
            Err(error) => {
                return Err(self.reject("clerk", error.clone(), ServiceError::Invalid(error)).await)
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
            "SELECT id, provider, event_id, event_type, outcome, reason, received_at \
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
                    received_at: crate::db::rfc3339(row.try_get("received_at")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
