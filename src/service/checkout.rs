//! Buying credits: `POST /api/checkout` creates a Creem checkout for a plan;
//! `GET /api/test-creem` checks the webhook path without touching a balance;
//! the admin's view of recorded payments.

use super::{CreditsService, ServiceError};
use crate::auth::Principal;
use crate::dto::{CheckoutResponse, CreemSelfTest, PaymentView, ProductCheck, SyntheticEventCheck};
use crate::payments::creem_api::CheckoutRequest;
use crate::payments::plan_for_product;
use crate::webhooks::creem;
use serde_json::{json, Map, Value};
use sqlx::Row;

impl CreditsService {
    /// `POST /api/checkout {plan}`: nothing is stored unless Creem created the checkout.
    pub async fn checkout(
        &self,
        caller: &Principal,
        body: &Map<String, Value>,
    ) -> Result<CheckoutResponse, ServiceError> {
        // A worker key is no buyer: it would get an account of its own and a checkout.
        super::users_only(caller)?;
        if let Some(unknown) = body.keys().find(|key| key.as_str() != "plan") {
            return Err(ServiceError::Invalid(format!("unknown field `{unknown}`")));
        }
        let names: Vec<&str> = self.inner.settings.plans.iter().map(|plan| plan.name.as_str()).collect();
        let plan = body
            .get("plan")
            .and_then(Value::as_str)
            .and_then(|name| self.inner.settings.plan(name))
            .ok_or_else(|| {
            ServiceError::Invalid(format!("`plan` must be one of {}", names.join(", ")))
        })?;
        if plan.creem_product_id.is_empty() {
            return Err(ServiceError::Invalid(format!(
                "plan `{}` has no creem_product_id in the config file, so it cannot be bought",
                plan.name
            )));
        }
        self.ensure_account(caller).await?;
        let request_id = format!("req_{}", hex::encode(rand::random::<[u8; 12]>()));
        let request = CheckoutRequest {
            product_id: &plan.creem_product_id,
            request_id: &request_id,
            user_id: &caller.user_id,
            email: caller.email.as_deref(),
            success_url: &self.inner.creem.success_url,
        };
        let created = self.inner.creem.api.create_checkout(&request).await.map_err(|error| {
            tracing::warn!(%error, plan = %plan.name, "creem checkout failed");
            ServiceError::Upstream(format!("the payment provider failed: {error}; nothing was charged"))
        })?;
        sqlx::query(
            "INSERT INTO checkouts (request_id, user_id, plan, product_id, checkout_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&request_id)
        .bind(&caller.user_id)
        .bind(&plan.name)
        .bind(&plan.creem_product_id)
        .bind(created.checkout_id.as_deref())
        .bind(crate::db::now_ms())
        .execute(&self.inner.db.pool)
        .await?;
        tracing::info!(user_id = %caller.user_id, plan = %plan.name, %request_id, "checkout created");
        Ok(CheckoutResponse { checkout_url: created.checkout_url })
    }

    /// `GET /api/test-creem`: signs a synthetic `checkout.completed` with the
    /// configured secret and runs it through the same verification, parsing and
    /// plan mapping as a real delivery, without storing anything.
    pub fn test_creem(&self) -> CreemSelfTest {
        let settings = &self.inner.settings;
        let secret = self.inner.creem.webhook_secret.as_deref();
        let products = settings
            .plans
            .iter()
            .map(|plan| ProductCheck {
                plan: plan.name.clone(),
                product_id: plan.creem_product_id.clone(),
                credits: plan.credits,
                price_cents: plan.price_cents,
                configured: !plan.creem_product_id.is_empty(),
            })
            .collect();
        let sample = settings.plans.iter().find(|plan| !plan.creem_product_id.is_empty());
        let product_id = sample.map_or("prod_not_configured", |plan| plan.creem_product_id.as_str());
        let body = json!({
            "id": "evt_self_test", "eventType": "checkout.completed", "created_at": crate::db::now_ms(),
            "object": {"id": "ch_self_test", "object": "checkout", "request_id": "req_self_test",
                "order": {"id": "ord_self_test", "product": product_id,
                          "amount": sample.map_or(0, |plan| plan.price_cents), "currency": "USD"},
                "customer": {"email": "self-test@example.com"}, "metadata": {"userId": "user_self_test"}}
        })
        .to_string();
        let signature = secret.map(|secret| creem::sign(secret, body.as_bytes()));
        let verified = creem::verify(secret, signature.as_deref(), body.as_bytes()).is_ok();
        let tampered = format!("{body} ");
        let tampered_rejected = creem::verify(secret, signature.as_deref(), tampered.as_bytes()).is_err();
        let parsed = creem::parse(body.as_bytes()).ok();
        let mapping = parsed.as_ref().and_then(|(_, event)| match event {
            creem::Event::Payment(payment) => plan_for_product(settings, &payment.product_id),
            _ => None,
        });
        let mut problems = Vec::new();
        if secret.is_none() {
            problems.push("CREEM_WEBHOOK_SECRET is not set: every webhook is refused");
        }
        if !self.inner.creem.api.has_key() {
            problems.push("CREEM_API_KEY is not set: checkouts cannot be created");
        }
        if sample.is_none() {
            problems.push("no plan has a creem_product_id: no payment can be credited");
        }
        CreemSelfTest {
            ok: problems.is_empty() && verified && tampered_rejected && mapping.is_some(),
            webhook_secret_configured: secret.is_some(),
            api_key_configured: self.inner.creem.api.has_key(),
            api_base: self.inner.creem.api.base().to_string(),
            synthetic_event: SyntheticEventCheck {
                event_type: "checkout.completed".into(),
                signature_verified: verified,
                tampered_body_rejected: tampered_rejected,
                parsed: parsed.is_some(),
                product_id: product_id.to_string(),
                plan: mapping.map(|plan| plan.name.clone()),
                credits: mapping.map(|plan| plan.credits),
            },
            products,
            problems: problems.into_iter().map(String::from).collect(),
            balances_changed: false,
        }
    }

    /// The test page's "send test webhook" (admins only): a signed
    /// `checkout.completed` paying `plan` for the admin, through the real
    /// webhook path (verification, parsing, exactly-once crediting). Its
    /// payment is marked a test, so stats never count it as revenue, and the
    /// action is audited with the admin's name.
    pub async fn send_test_webhook(
        &self,
        caller: &Principal,
        plan: &str,
    ) -> Result<super::WebhookOutcome, ServiceError> {
        if !caller.is_admin {
            return Err(ServiceError::Forbidden("only an admin may send a test webhook".into()));
        }
        let (signature, body) = self.test_webhook_for(&caller.user_id, plan)?;
        self.receive_creem(Some(&signature), body.as_bytes(), Some(caller)).await
    }

    /// A signed `checkout.completed` paying `plan` for `user_id`, exactly as Creem
    /// would send it; `(signature, body)`.
    fn test_webhook_for(&self, user_id: &str, plan: &str) -> Result<(String, String), ServiceError> {
        let secret = self
            .inner
            .creem
            .webhook_secret
            .as_deref()
            .ok_or_else(|| ServiceError::Invalid("CREEM_WEBHOOK_SECRET is not set".into()))?;
        let plan =
            self.inner.settings.plan(plan).ok_or_else(|| ServiceError::Invalid("unknown plan".into()))?;
        if plan.creem_product_id.is_empty() {
            return Err(ServiceError::Invalid(format!("plan `{}` has no creem_product_id", plan.name)));
        }
        let suffix = hex::encode(rand::random::<[u8; 8]>());
        let body = json!({
            "id": format!("evt_test_{suffix}"), "eventType": "checkout.completed", "created_at": crate::db::now_ms(),
            "object": {"id": format!("ch_test_{suffix}"), "object": "checkout", "request_id": format!("req_test_{suffix}"),
                "order": {"id": format!("ord_test_{suffix}"), "product": plan.creem_product_id, "amount": plan.price_cents,
                          "currency": "USD", "type": "onetime"},
                "customer": {"email": "test@example.com"}, "metadata": {"userId": user_id}, "mode": "test"}
        })
        .to_string();
        Ok((creem::sign(secret, body.as_bytes()), body))
    }

    /// Recorded payments, newest first, optionally of one status (admin).
    pub async fn payments(&self, status: Option<&str>, limit: i64) -> Result<Vec<PaymentView>, ServiceError> {
        let rows = sqlx::query(
            "SELECT id, payment_key, product_id, plan, amount_cents, currency, user_id, customer_email, \
             credits, clawed_back, refunded_cents, status, created_at, is_test FROM payments \
             WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(status)
        .bind(limit)
        .fetch_all(&self.inner.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PaymentView {
                    id: row.try_get("id")?,
                    payment_key: row.try_get("payment_key")?,
                    product_id: row.try_get("product_id")?,
                    plan: row.try_get("plan")?,
                    amount_cents: row.try_get("amount_cents")?,
                    currency: row.try_get("currency")?,
                    user_id: row.try_get("user_id")?,
                    customer_email: row.try_get("customer_email")?,
                    credits: row.try_get("credits")?,
                    clawed_back: row.try_get("clawed_back")?,
                    refunded_cents: row.try_get("refunded_cents")?,
                    status: row.try_get("status")?,
                    test: row.try_get::<i64, _>("is_test")? != 0,
                    created_at: crate::db::rfc3339(row.try_get("created_at")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
