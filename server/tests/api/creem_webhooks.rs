//! `POST /api/webhooks/creem`: signatures, exactly-once crediting, refunds,
//! disputes, payments before their user, unknown products, `/api/test-creem`.

use crate::both;
use crate::support::{
    creem_fixture, figures, now, sign, token, unique, Backend, TestApp, ADMIN, CREEM_SECRET,
};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The one-time checkout fixture for `user`, with fresh event and order ids.
fn onetime_checkout(user: &str) -> Value {
    let mut event = creem_fixture("checkout.completed.onetime.json");
    event["id"] = json!(unique("evt"));
    event["object"]["order"]["id"] = json!(unique("ord"));
    event["object"]["metadata"]["userId"] = json!(user);
    event
}

fn refund_of(checkout: &Value, cents: i64) -> Value {
    let mut event = creem_fixture("refund.created.json");
    event["id"] = json!(unique("evt"));
    event["object"]["id"] = json!(unique("ref"));
    event["object"]["refund_amount"] = json!(cents);
    event["object"]["order"]["id"] = checkout["object"]["order"]["id"].clone();
    event["object"]["transaction"]["order"] = checkout["object"]["order"]["id"].clone();
    event
}

fn kinds(entries: &[Value], kind: &str) -> usize {
    entries.iter().filter(|entry| entry["kind"] == kind).count()
}

async fn signatures_are_checked_before_anything_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("buyer");
    app.credits(&user).await;
    let event = onetime_checkout(&user);
    let body = serde_json::to_vec(&event).unwrap();
    let good = credits::webhooks::creem::sign(CREEM_SECRET, &body);
    let pretty = serde_json::to_vec_pretty(&event).unwrap();
    let mut tampered = body.clone();
    let at = tampered.len() - 3;
    tampered[at] = b' ';
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("wrong secret", body.clone(), Some(credits::webhooks::creem::sign("not-the-secret", &body))),
        ("tampered body", tampered, Some(good.clone())),
        ("re-serialized JSON", pretty, Some(good.clone())),
        ("missing header", body.clone(), None),
        ("garbage header", body.clone(), Some("sha256=abc".into())),
    ];
    for (case, bytes, signature) in cases {
        let mut request = app.client.post(app.url("/api/webhooks/creem")).body(bytes);
        if let Some(signature) = signature {
            request = request.header("creem-signature", signature);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "unauthenticated", "{case}");
    }
    assert_eq!(app.count("payments").await, 0);
    assert_eq!(app.count("webhook_events").await, 0);
    assert_eq!(figures(&app.credits(&user).await), (8, 8, 0, 0, 8));
    let log: Value = app.get("/api/admin/webhooks", Some(&token(ADMIN))).await.json().await.unwrap();
    let rejected =
        log["deliveries"].as_array().unwrap().iter().filter(|d| d["outcome"] == "rejected").count();
    assert_eq!(rejected, 5, "every rejected delivery is logged with its reason: {log}");

    let (status, outcome) = app.creem(&event).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(outcome["outcome"], "accepted");
    assert_eq!(figures(&app.credits(&user).await), (123, 123, 0, 115, 8));
}
both!(signatures_are_checked_before_anything_is_stored);

async fn fifty_concurrent_deliveries_of_one_event_grant_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("buyer");
    app.credits(&user).await;
    let event = onetime_checkout(&user);
    let deliveries = join_all((0..50).map(|_| app.creem(&event))).await;
    assert!(deliveries.iter().all(|(status, _)| *status == StatusCode::OK), "{deliveries:?}");
    let accepted = deliveries.iter().filter(|(_, body)| body["outcome"] == "accepted").count();
    assert_eq!(accepted, 1);
    // The same payment under a new event id, days later: still one grant.
    let mut redelivery = event.clone();
    redelivery["id"] = json!(unique("evt"));
    let (status, body) = app.creem(&redelivery).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("duplicate")));
    assert_eq!(figures(&app.credits(&user).await), (123, 123, 0, 115, 8));
    assert_eq!(kinds(&app.all_entries(&user).await, "purchase"), 1);
    app.assert_consistent().await;
}
both!(fifty_concurrent_deliveries_of_one_event_grant_once);

async fn a_subscription_payment_seen_twice_grants_once_and_each_period_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("subscriber");
    app.credits(&user).await;
    let subscription = unique("sub");
    let mut checkout = creem_fixture("checkout.completed.subscription.json");
    checkout["id"] = json!(unique("evt"));
    checkout["object"]["metadata"]["userId"] = json!(user);
    checkout["object"]["subscription"]["id"] = json!(subscription);
    checkout["object"]["order"]["id"] = json!(unique("ord"));
    let mut paid = creem_fixture("subscription.paid.json");
    paid["id"] = json!(unique("evt"));
    paid["object"]["id"] = json!(subscription);
    paid["object"]["metadata"]["userId"] = json!(user);
    paid["object"]["last_transaction_id"] = json!(unique("tran"));

    let both = join_all([app.creem(&paid), app.creem(&checkout)]).await;
    assert!(both.iter().all(|(status, _)| *status == StatusCode::OK));
    assert_eq!(figures(&app.credits(&user).await), (363, 363, 0, 355, 8), "one grant of 355");
    // Redelivered in the other order, nothing more.
    let mut paid_again = paid.clone();
    paid_again["id"] = json!(unique("evt"));
    app.creem(&paid_again).await;
    assert_eq!(figures(&app.credits(&user).await).0, 363);

    let mut next_month = paid.clone();
    next_month["id"] = json!(unique("evt"));
    next_month["object"]["current_period_start_date"] = json!("2026-12-25T10:00:00.000Z");
    next_month["object"]["last_transaction_id"] = json!(unique("tran"));
    let (_, body) = app.creem(&next_month).await;
    assert_eq!(body["outcome"], "accepted");
    assert_eq!(figures(&app.credits(&user).await), (718, 718, 0, 710, 8), "the next period grants again");
    assert_eq!(kinds(&app.all_entries(&user).await, "purchase"), 2);
    app.assert_consistent().await;
}
both!(a_subscription_payment_seen_twice_grants_once_and_each_period_once);

async fn a_refund_after_a_partial_spend_claws_back_its_share(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("refunded");
    app.credits(&user).await;
    let checkout = onetime_checkout(&user);
    app.creem(&checkout).await;
    let (status, _) = app.change(&user, json!({"action": "deduct", "amount": 100})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(figures(&app.credits(&user).await), (23, 123, 100, 115, 8));

    // Half the order refunded: ceil(115 / 2) = 58 credits back to the merchant.
    let refund = refund_of(&checkout, 495);
    let (status, body) = app.creem(&refund).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("accepted")), "{body}");
    let view = app.credits(&user).await;
    assert_eq!(figures(&view), (-35, 65, 100, 57, 8), "a debt of 35");
    assert_eq!(view["recent"][0]["kind"], "refund");
    assert_eq!(view["recent"][0]["amount"], -58);
    app.assert_consistent().await;

    let (status, error) = app.change(&user, json!({"action": "deduct", "amount": 1})).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "no spend while in debt");
    assert_eq!(error["error"]["remaining"], -35);

    let mut replay = refund.clone();
    replay["id"] = json!(unique("evt"));
    app.creem(&replay).await;
    assert_eq!(figures(&app.credits(&user).await).0, -35, "the same refund id claws back once");

    let mut dispute = creem_fixture("dispute.created.json");
    dispute["id"] = json!(unique("evt"));
    dispute["object"]["id"] = json!(unique("disp"));
    dispute["object"]["order"]["id"] = checkout["object"]["order"]["id"].clone();
    dispute["object"]["transaction"]["order"] = checkout["object"]["order"]["id"].clone();
    let (_, body) = app.creem(&dispute).await;
    assert_eq!(body["outcome"], "accepted");
    let view = app.credits(&user).await;
    assert_eq!(figures(&view), (-92, 8, 100, 0, 8), "the dispute takes the other 57");
    assert_eq!(view["recent"][0]["kind"], "clawback");
    let mut second_dispute = dispute.clone();
    second_dispute["id"] = json!(unique("evt"));
    second_dispute["object"]["id"] = json!(unique("disp"));
    app.creem(&second_dispute).await;
    assert_eq!(figures(&app.credits(&user).await).0, -92, "nothing left to claw back");
    app.assert_consistent().await;
}
both!(a_refund_after_a_partial_spend_claws_back_its_share);

async fn a_payment_before_its_user_exists_is_credited_on_first_appearance(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // By user id: credited on the user's first request.
    let early = unique("early");
    let (_, body) = app.creem(&onetime_checkout(&early)).await;
    assert_eq!(body["outcome"], "accepted");
    assert_eq!(app.count("accounts").await, 0, "no account is made up for an unknown user");
    assert_eq!(figures(&app.credits(&early).await), (123, 123, 0, 115, 8));

    // By email, without metadata: credited when a user with that email syncs.
    let by_email = unique("email");
    let email = format!("{by_email}@example.com");
    let mut event = onetime_checkout("ignored");
    event["object"]["metadata"] = json!({});
    event["object"]["customer"]["email"] = json!(email.to_uppercase());
    app.creem(&event).await;
    let session = sign(0, None, json!({"sub": by_email, "iat": now(), "exp": now() + 60, "email": email}));
    let synced: Value = app
        .client
        .post(app.url("/api/user/sync"))
        .bearer_auth(session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(synced["created"], true);
    assert_eq!(figures(&synced["user"]), (123, 123, 0, 115, 8));

    // By user id, credited when Clerk announces the user.
    let announced = unique("announced");
    app.creem(&onetime_checkout(&announced)).await;
    let mut created = crate::support::clerk_fixture("user.created.json");
    created["data"]["id"] = json!(announced);
    let (status, _) = app.clerk(&unique("msg"), &created, now()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(figures(&app.credits(&announced).await), (123, 123, 0, 115, 8));
    app.assert_consistent().await;
}
both!(a_payment_before_its_user_exists_is_credited_on_first_appearance);

async fn unknown_products_are_recorded_for_the_admin_and_other_events_ignored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("buyer");
    app.credits(&user).await;
    let mut event = onetime_checkout(&user);
    event["object"]["order"]["product"] = json!("prod_nobody_knows");
    let (status, body) = app.creem(&event).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["detail"].as_str().unwrap().contains("unknown product"));
    assert_eq!(figures(&app.credits(&user).await), (8, 8, 0, 0, 8));
    let listed: Value = app
        .get("/api/admin/payments?status=unknown_product", Some(&token(ADMIN)))
        .await
        .json()
        .await
        .unwrap();
    let payments = listed["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["productId"], "prod_nobody_knows");
    assert_eq!(payments[0]["userId"], user.as_str());
    assert_eq!(app.get("/api/admin/payments", Some(&token(&user))).await.status(), StatusCode::FORBIDDEN);

    let other =
        json!({"id": unique("evt"), "eventType": "subscription.trialing", "created_at": 1, "object": {}});
    let (status, body) = app.creem(&other).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("ignored")));
}
both!(unknown_products_are_recorded_for_the_admin_and_other_events_ignored);

async fn the_creem_self_test_reports_without_changing_balances(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.credits(ADMIN).await;
    let entries_before = app.count("ledger_entries").await;
    let response = app.get("/api/test-creem", Some(&token(ADMIN))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["webhookSecretConfigured"], true);
    assert_eq!(report["syntheticEvent"]["signatureVerified"], true);
    assert_eq!(report["syntheticEvent"]["tamperedBodyRejected"], true);
    assert_eq!(report["syntheticEvent"]["plan"], "starter");
    assert_eq!(report["syntheticEvent"]["credits"], 115);
    assert_eq!(report["products"].as_array().unwrap().len(), 3);
    assert_eq!(app.count("ledger_entries").await, entries_before);
    assert_eq!(app.count("payments").await, 0);
    let user = unique("user");
    assert_eq!(app.get("/api/test-creem", Some(&token(&user))).await.status(), StatusCode::FORBIDDEN);

    let unconfigured = TestApp::spawn_with(backend, &[("CREEM_WEBHOOK_SECRET", String::new())]).await;
    let report: Value = unconfigured.get("/api/test-creem", Some(&token(ADMIN))).await.json().await.unwrap();
    assert_eq!(report["ok"], false);
    assert!(report["problems"][0].as_str().unwrap().contains("CREEM_WEBHOOK_SECRET"));
}
both!(the_creem_self_test_reports_without_changing_balances);
