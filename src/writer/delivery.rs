//! A verified webhook delivery's effect, as the writer runs it: the event id
//! is claimed (a replay changes nothing), the payment, refund or account
//! change is applied, and the delivery is logged, all in one transaction.
//! The caller answers 200 only after that transaction committed.

use crate::auth::Principal;
use crate::error::ServiceError;
use crate::ledger::grants::GrantEffect;
use crate::ledger::{store, Figures};
use crate::payments::{self, PaymentOutcome, ReversalOutcome};
use crate::plans::Settings;
use crate::webhooks::{clerk, creem};
use sqlx::AnyConnection;

/// What a delivery did, and the user whose pending payments to look at
/// again once it committed.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// `accepted`, `duplicate` or `ignored`.
    pub outcome: &'static str,
    pub detail: String,
    pub recheck_user: Option<String>,
}

impl Delivered {
    fn duplicate(detail: &str) -> Self {
        Self { outcome: "duplicate", detail: detail.to_string(), recheck_user: None }
    }
}

/// A verified, parsed Creem event.
#[derive(Debug, Clone)]
pub struct CreemDelivery {
    pub event_id: String,
    pub event_type: String,
    pub event: creem::Event,
    /// The admin who sent it from the test page: its payment is a test,
    /// and the action is audited in the transaction that credits it.
    pub test_by: Option<Principal>,
    pub settings: Settings,
}

/// A verified, parsed Clerk event.
#[derive(Debug, Clone)]
pub struct ClerkDelivery {
    pub message_id: String,
    pub event_type: String,
    pub event: clerk::Event,
    pub initial_credits: i64,
    pub initial_grant: GrantEffect,
}

impl CreemDelivery {
    /// The account it is about, when the event names one.
    pub(super) fn account(&self) -> &str {
        match &self.event {
            creem::Event::Payment(payment) => payment.user_id.as_deref().unwrap_or(&self.event_id),
            _ => &self.event_id,
        }
    }

    pub(super) async fn run(&self, tx: &mut AnyConnection) -> Result<Delivered, ServiceError> {
        let ids = (self.event_id.as_str(), self.event_type.as_str());
        if !claim_event(tx, "creem", ids.0, ids.1).await? {
            log_delivery(tx, "creem", Some(ids), "duplicate", "event id seen before").await?;
            return Ok(Delivered::duplicate("event id seen before"));
        }
        let before = match &self.test_by {
            Some(admin) => store::load(tx, &admin.user_id).await?.map(|account| account.figures),
            None => None,
        };
        let delivered = self.apply(tx).await?;
        if let Some(admin) = &self.test_by {
            audit_test_webhook(tx, admin, before.as_ref(), &delivered.detail).await?;
        }
        log_delivery(tx, "creem", Some(ids), delivered.outcome, &delivered.detail).await?;
        Ok(delivered)
    }

    async fn apply(&self, tx: &mut AnyConnection) -> Result<Delivered, ServiceError> {
        let mut recheck_user = None;
        let (outcome, detail) = match &self.event {
            creem::Event::Payment(payment) => {
                match payments::record_payment(tx, &self.event_id, payment, &self.settings).await? {
                    PaymentOutcome::Credited { user_id, credits } => {
                        ("accepted", format!("credited {credits} to {user_id}"))
                    }
                    PaymentOutcome::PendingUser => {
                        recheck_user = payment.user_id.clone();
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
            creem::Event::Ignored => ("ignored", format!("event type {} is not used", self.event_type)),
        };
        Ok(Delivered { outcome, detail, recheck_user })
    }
}

impl ClerkDelivery {
    pub(super) fn account(&self) -> &str {
        match &self.event {
            clerk::Event::UserUpserted { user_id, .. } | clerk::Event::UserDeleted { user_id } => user_id,
            clerk::Event::Ignored => &self.message_id,
        }
    }

    pub(super) async fn run(&self, tx: &mut AnyConnection) -> Result<Delivered, ServiceError> {
        let ids = (self.message_id.as_str(), self.event_type.as_str());
        if !claim_event(tx, "clerk", ids.0, ids.1).await? {
            log_delivery(tx, "clerk", Some(ids), "duplicate", "message id seen before").await?;
            return Ok(Delivered::duplicate("message id seen before"));
        }
        let delivered = self.apply(tx).await?;
        log_delivery(tx, "clerk", Some(ids), delivered.outcome, &delivered.detail).await?;
        Ok(delivered)
    }

    async fn apply(&self, tx: &mut AnyConnection) -> Result<Delivered, ServiceError> {
        let delivered = match &self.event {
            clerk::Event::UserUpserted { user_id, email, email_verified, name, .. } => {
                let email =
                    email.as_deref().map(|address| store::EmailClaim { address, verified: *email_verified });
                let name = name.as_deref();
                let (initial, grant) = (self.initial_credits, self.initial_grant.clone());
                let created = store::create_if_missing(tx, user_id, email, name, initial, grant).await?;
                if !created {
                    store::update_profile(tx, user_id, email, name).await?;
                }
                let detail =
                    if created { format!("account {user_id} created") } else { format!("{user_id} updated") };
                Delivered { outcome: "accepted", detail, recheck_user: Some(user_id.clone()) }
            }
            clerk::Event::UserDeleted { user_id } => {
                sqlx::query("UPDATE accounts SET status = 'closed', updated_at = $1 WHERE user_id = $2")
                    .bind(crate::db::now_ms())
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                let detail = format!("account {user_id} closed; its ledger is kept");
                Delivered { outcome: "accepted", detail, recheck_user: None }
            }
            clerk::Event::Ignored => Delivered {
                outcome: "ignored",
                detail: format!("event type {} is not used", self.event_type),
                recheck_user: None,
            },
        };
        Ok(delivered)
    }
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

pub(crate) async fn log_delivery(
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
