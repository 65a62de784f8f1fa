//! Creem webhooks: `creem-signature` is the lowercase hex HMAC-SHA256 of the
//! raw body keyed with `CREEM_WEBHOOK_SECRET` as given. The signature is
//! checked before a single byte is parsed; parsing then reads Creem's envelope
//! (`id`, `eventType`, `created_at`, `object`) with Creem's field names.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

/// Why a delivery was refused before it was parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing creem-signature header")]
    Missing,
    #[error("creem-signature does not match the body")]
    Mismatch,
    #[error("CREEM_WEBHOOK_SECRET is not configured")]
    NotConfigured,
}

/// The hex signature Creem would send for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks `creem-signature` against the raw body in constant time.
pub fn verify(secret: Option<&str>, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
    let secret = secret.filter(|s| !s.is_empty()).ok_or(SignatureError::NotConfigured)?;
    let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(SignatureError::Missing)?;
    let given = hex::decode(header.to_ascii_lowercase()).map_err(|_| SignatureError::Mismatch)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).map_err(|_| SignatureError::Mismatch)
}

/// Creem's envelope.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "eventType")]
    pub event_type: String,
    pub created_at: Option<i64>,
    pub object: Value,
}

/// A payment that should grant a plan's credits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// What makes two deliveries the same payment (see `payments`).
    pub identity: PaymentIdentity,
    pub order_id: Option<String>,
    pub transaction_id: Option<String>,
    pub product_id: String,
    pub amount_cents: i64,
    pub currency: Option<String>,
    pub user_id: Option<String>,
    pub customer_email: Option<String>,
    /// End of the paid subscription period (`current_period_end_date`), in ms.
    pub period_end_ms: Option<i64>,
    /// Sent by an admin from the test page (`CreditsService::send_test_webhook`),
    /// never by Creem, so its credits are no revenue. Parsing leaves it false:
    /// nothing in a body can make a payment a test.
    pub test: bool,
}

/// One-time orders are identified by their order; subscription payments by
/// their subscription and billing period (the first period may arrive as
/// `checkout.completed` without a period, as `subscription.paid` with one, or both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentIdentity {
    Order(String),
    SubscriptionFirst { subscription_id: String },
    SubscriptionPeriod { subscription_id: String, period_start: String },
}

/// A refund or a dispute of an earlier payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversal {
    pub id: String,
    pub is_dispute: bool,
    pub order_id: Option<String>,
    pub transaction_id: Option<String>,
    /// Refunded amount in cents; `None` for a dispute (the whole payment).
    pub refund_cents: Option<i64>,
}

/// What a verified event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Payment(Payment),
    Reversal(Reversal),
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Creem event: {0}")]
pub struct ParseError(pub String);

/// Longest id accepted from Creem.
const MAX_ID_BYTES: usize = 255;

/// Parses a verified body. Unknown event types are `Event::Ignored`.
pub fn parse(body: &[u8]) -> Result<(Envelope, Event), ParseError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| ParseError(e.to_string()))?;
    if envelope.id.is_empty() || envelope.id.len() > MAX_ID_BYTES {
        return Err(ParseError("`id` must be 1 to 255 bytes".into()));
    }
    let object = &envelope.object;
    let event = match envelope.event_type.as_str() {
        "checkout.completed" => Event::Payment(checkout_payment(object)?),
        "subscription.paid" => Event::Payment(subscription_payment(object)?),
        "refund.created" => Event::Reversal(reversal(object, false)?),
        "dispute.created" => Event::Reversal(reversal(object, true)?),
        _ => Event::Ignored,
    };
    Ok((envelope, event))
}

fn text(value: &Value, path: &[&str]) -> Option<String> {
    let mut at = value;
    for key in path {
        at = at.get(key)?;
    }
    at.as_str().filter(|s| !s.is_empty() && s.len() <= MAX_ID_BYTES).map(String::from)
}

fn required(value: &Value, path: &[&str]) -> Result<String, ParseError> {
    text(value, path).ok_or_else(|| ParseError(format!("`object.{}` is missing", path.join("."))))
}

fn cents(value: &Value, path: &[&str]) -> Option<i64> {
    let mut at = value;
    for key in path {
        at = at.get(key)?;
    }
    at.as_i64().filter(|cents| *cents >= 0)
}

/// `product` is either an id or an expanded object with an `id`.
fn product_id(value: &Value) -> Option<String> {
    text(value, &["product"]).or_else(|| text(value, &["product", "id"]))
}

fn checkout_payment(object: &Value) -> Result<Payment, ParseError> {
    let order_id = required(object, &["order", "id"])?;
    let subscription_id = text(object, &["subscription", "id"]).or_else(|| text(object, &["subscription"]));
    let identity = match subscription_id {
        Some(subscription_id) => PaymentIdentity::SubscriptionFirst { subscription_id },
        None => PaymentIdentity::Order(order_id.clone()),
    };
    let product_id = text(object, &["order", "product"])
        .or_else(|| product_id(object))
        .ok_or_else(|| ParseError("`object.order.product` is missing".into()))?;
    let user_id = text(object, &["metadata", "userId"])
        .or_else(|| text(object, &["subscription", "metadata", "userId"]));
    Ok(Payment {
        identity,
        order_id: Some(order_id),
        transaction_id: None,
        product_id,
        amount_cents: cents(object, &["order", "amount"])
            .or(cents(object, &["product", "price"]))
            .unwrap_or(0),
        currency: text(object, &["order", "currency"]),
        user_id,
        customer_email: text(object, &["customer", "email"]).map(|e| e.to_lowercase()),
        period_end_ms: None,
        test: false,
    })
}

fn subscription_payment(object: &Value) -> Result<Payment, ParseError> {
    let subscription_id = required(object, &["id"])?;
    let period_start = required(object, &["current_period_start_date"])?;
    Ok(Payment {
        identity: PaymentIdentity::SubscriptionPeriod { subscription_id, period_start },
        order_id: None,
        transaction_id: text(object, &["last_transaction_id"]),
        product_id: product_id(object).ok_or_else(|| ParseError("`object.product` is missing".into()))?,
        amount_cents: cents(object, &["product", "price"]).unwrap_or(0),
        currency: text(object, &["product", "currency"]),
        user_id: text(object, &["metadata", "userId"]),
        customer_email: text(object, &["customer", "email"]).map(|e| e.to_lowercase()),
        period_end_ms: text(object, &["current_period_end_date"])
            .and_then(|date| chrono::DateTime::parse_from_rfc3339(&date).ok())
            .map(|date| date.timestamp_millis()),
        test: false,
    })
}

fn reversal(object: &Value, is_dispute: bool) -> Result<Reversal, ParseError> {
    let order_id = text(object, &["order", "id"])
        .or_else(|| text(object, &["transaction", "order"]))
        .or_else(|| text(object, &["order"]));
    let transaction_id = text(object, &["transaction", "id"]).or_else(|| text(object, &["transaction"]));
    if order_id.is_none() && transaction_id.is_none() {
        return Err(ParseError("a refund or dispute must name its order or transaction".into()));
    }
    let refund_cents = if is_dispute {
        None
    } else {
        Some(
            cents(object, &["refund_amount"])
                .ok_or_else(|| ParseError("`object.refund_amount` is missing".into()))?,
        )
    };
    Ok(Reversal { id: required(object, &["id"])?, is_dispute, order_id, transaction_id, refund_cents })
}

/// Credits a refund claws back. Rounding happens once, on the running total:
/// after refunds totalling `refunded_cents` of `amount_cents`, the clawback
/// totals `ceil(refunded / amount × credits)` (in the merchant's favour),
/// capped at the grant; this refund takes what that total adds.
pub fn refund_clawback(
    credits: i64,
    amount_cents: i64,
    refunded_before_cents: i64,
    refund_cents: i64,
) -> i64 {
    let clawed = |refunded: i64| -> i64 {
        if refunded <= 0 {
            return 0;
        }
        if amount_cents <= 0 || refunded >= amount_cents {
            return credits;
        }
        let numerator = refunded as i128 * credits as i128;
        let total = (numerator + amount_cents as i128 - 1) / amount_cents as i128;
        (total as i64).min(credits)
    };
    clawed(refunded_before_cents + refund_cents) - clawed(refunded_before_cents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Creem's example deliveries (copied from ../shared/fixtures/creem).
    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/creem/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn signatures_are_hex_hmac_of_the_raw_body() {
        let body = fixture("checkout.completed.onetime.json");
        let signature = sign("whsec_test", &body);
        assert_eq!(signature.len(), 64);
        assert!(verify(Some("whsec_test"), Some(&signature), &body).is_ok());
        assert_eq!(verify(Some("other"), Some(&signature), &body), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some("whsec_test"), None, &body), Err(SignatureError::Missing));
        assert_eq!(verify(Some("whsec_test"), Some("zz"), &body), Err(SignatureError::Mismatch));
        assert_eq!(verify(None, Some(&signature), &body), Err(SignatureError::NotConfigured));
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        assert_eq!(verify(Some("whsec_test"), Some(&signature), &tampered), Err(SignatureError::Mismatch));
    }

    #[test]
    fn the_fixtures_parse_into_payments_and_reversals() {
        let (envelope, event) = parse(&fixture("checkout.completed.onetime.json")).unwrap();
        assert_eq!(envelope.event_type, "checkout.completed");
        let Event::Payment(payment) = event else { panic!("a payment") };
        assert_eq!(payment.identity, PaymentIdentity::Order("ord_4aDwWXjMLpes4Kj4XqNnUA".into()));
        assert_eq!(payment.product_id, "prod_4b3gYBXSHcJ2pPtkT6Ylw3");
        assert_eq!(payment.amount_cents, 990);
        assert_eq!(payment.user_id.as_deref(), Some("user_2NNEqL2nrIRdJ194ndJqAHwEfxC"));
        assert_eq!(payment.customer_email.as_deref(), Some("buyer@example.com"));

        let (_, event) = parse(&fixture("checkout.completed.subscription.json")).unwrap();
        let Event::Payment(first) = event else { panic!("a payment") };
        let subscription_id = "sub_6EEdJrGb3uIgDwYuMKNFyj".to_string();
        assert_eq!(
            first.identity,
            PaymentIdentity::SubscriptionFirst { subscription_id: subscription_id.clone() }
        );

        let (_, event) = parse(&fixture("subscription.paid.json")).unwrap();
        let Event::Payment(paid) = event else { panic!("a payment") };
        let period_start = "2026-11-25T10:00:00.000Z".to_string();
        assert_eq!(paid.identity, PaymentIdentity::SubscriptionPeriod { subscription_id, period_start });
        assert_eq!(paid.product_id, "prod_7CIbZEZnRC5DWibmoOboOu");
        assert_eq!(paid.amount_cents, 3000);
        assert_eq!(paid.transaction_id.as_deref(), Some("tran_3e6Z6TzvHKdsjEgXnGDEp0"));

        let (_, event) = parse(&fixture("refund.created.json")).unwrap();
        let Event::Reversal(refund) = event else { panic!("a reversal") };
        assert_eq!((refund.refund_cents, refund.is_dispute), (Some(495), false));
        assert_eq!(refund.order_id.as_deref(), Some("ord_4aDwWXjMLpes4Kj4XqNnUA"));

        let (_, event) = parse(&fixture("dispute.created.json")).unwrap();
        let Event::Reversal(dispute) = event else { panic!("a reversal") };
        assert!(dispute.is_dispute && dispute.refund_cents.is_none());
    }

    #[test]
    fn unknown_event_types_are_ignored() {
        let body = br#"{"id":"evt_1","eventType":"subscription.trialing","created_at":1,"object":{}}"#;
        assert_eq!(parse(body).unwrap().1, Event::Ignored);
    }

    #[test]
    fn clawbacks_round_once_in_the_merchants_favour() {
        assert_eq!(refund_clawback(115, 990, 0, 495), 58, "half of 115 rounds up");
        // Two refunds of a third each: ceil(115/3)=39, then ceil(230/3)=77 → 38 more.
        assert_eq!(refund_clawback(115, 990, 0, 330), 39);
        assert_eq!(refund_clawback(115, 990, 330, 330), 38);
        assert_eq!(refund_clawback(115, 990, 660, 330), 38, "the three add up to the grant");
        assert_eq!(refund_clawback(115, 990, 0, 5000), 115, "capped at the grant");
        assert_eq!(refund_clawback(115, 0, 0, 1), 115);
    }

    proptest! {
        #[test]
        fn the_parser_never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&body);
        }

        #[test]
        fn the_parser_never_panics_on_mutated_events(
            event_type in prop_oneof![Just("checkout.completed".to_string()), Just("subscription.paid".to_string()),
                Just("refund.created".to_string()), Just("dispute.created".to_string()), ".{0,20}"],
            object in any_json(3),
        ) {
            let body = serde_json::json!({"id": "evt_x", "eventType": event_type, "created_at": 1, "object": object});
            let _ = parse(body.to_string().as_bytes());
        }

        #[test]
        fn refund_clawbacks_never_exceed_the_grant(credits in 0i64..100_000, amount in 0i64..1_000_000,
                refunds in proptest::collection::vec(0i64..2_000_000, 0..8)) {
            let mut refunded = 0;
            let mut clawed = 0;
            for refund in refunds {
                let more = refund_clawback(credits, amount, refunded, refund);
                prop_assert!(more >= 0);
                clawed += more;
                refunded += refund;
                prop_assert!(clawed <= credits);
            }
        }
    }

    fn any_json(depth: u32) -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(depth, 32, 6, |inner| {
            let keys = prop_oneof![
                Just("id".to_string()),
                Just("order".to_string()),
                Just("product".to_string()),
                Just("metadata".to_string()),
                Just("userId".to_string()),
                Just("amount".to_string()),
                Just("subscription".to_string()),
                Just("refund_amount".to_string()),
                "[a-z_]{1,8}"
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(keys, inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }
}
