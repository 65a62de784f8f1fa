//! Creem webhooks: `creem-signature` verification over arbitrary bytes and
//! parsing of arbitrary bytes. Never panics; a body signed with the secret
//! always verifies, under any other secret or after any change it never does.
#![no_main]

use credits::webhooks::creem::{self, Event, PaymentIdentity, SignatureError};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_fuzz_creem";

fn check_parsed(body: &[u8]) {
    let Ok((envelope, event)) = creem::parse(body) else { return };
    assert!(!envelope.id.is_empty() && envelope.id.len() <= 255, "event id out of bounds");
    let bounded = |text: &str| !text.is_empty() && text.len() <= 255;
    match event {
        Event::Payment(payment) => {
            assert!(payment.amount_cents >= 0, "negative payment");
            assert!(bounded(&payment.product_id));
            match &payment.identity {
                PaymentIdentity::Order(order) => assert!(bounded(order)),
                PaymentIdentity::SubscriptionFirst { subscription_id } => assert!(bounded(subscription_id)),
                PaymentIdentity::SubscriptionPeriod { subscription_id, period_start } => {
                    assert!(bounded(subscription_id) && bounded(period_start))
                }
            }
            for text in [&payment.order_id, &payment.transaction_id, &payment.currency, &payment.user_id] {
                assert!(text.as_deref().map_or(true, bounded));
            }
        }
        Event::Reversal(reversal) => {
            assert!(bounded(&reversal.id));
            assert!(reversal.order_id.is_some() || reversal.transaction_id.is_some());
            assert_eq!(reversal.is_dispute, reversal.refund_cents.is_none());
            assert!(reversal.refund_cents.map_or(true, |cents| cents >= 0), "negative refund");
        }
        Event::Ignored => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // Arbitrary bytes, unsigned or with a header taken from the input itself.
    let _ = creem::verify(Some(SECRET), None, data);
    let _ = creem::verify(None, Some("00"), data);
    if let Some(split) = data.iter().position(|&b| b == b'\n') {
        if let Ok(header) = std::str::from_utf8(&data[..split]) {
            let body = &data[split + 1..];
            if creem::verify(Some(SECRET), Some(header), body).is_ok() {
                // Only the real HMAC (any case, surrounding blanks) may pass.
                assert_eq!(header.trim().to_ascii_lowercase(), creem::sign(SECRET, body));
            }
            let _ = creem::verify(Some(header), Some(header), body);
        }
    }

    // Correctly signed: always verifies, in either case, and only with this secret and body.
    let signature = creem::sign(SECRET, data);
    assert_eq!(signature.len(), 64);
    assert_eq!(creem::verify(Some(SECRET), Some(&signature), data), Ok(()));
    assert_eq!(creem::verify(Some(SECRET), Some(&signature.to_ascii_uppercase()), data), Ok(()));
    assert_eq!(
        creem::verify(Some("whsec_other"), Some(&signature), data),
        Err(SignatureError::Mismatch)
    );
    if !data.is_empty() {
        let mut tampered = data.to_vec();
        tampered[data.len() / 2] ^= 1;
        assert_eq!(creem::verify(Some(SECRET), Some(&signature), &tampered), Err(SignatureError::Mismatch));
        assert_eq!(
            creem::verify(Some(SECRET), Some(&signature), &data[..data.len() - 1]),
            Err(SignatureError::Mismatch)
        );
    }

    check_parsed(data);
});
