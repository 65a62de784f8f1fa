//! Attacks: payments. A payment that names no user goes only to the account
//! whose email Clerk vouches for (contract §4); a local account's email is
//! unverified (§5), so registering a buyer's email gets the buyer's payment
//! nowhere: it stays pending. The admin's test webhook is audited and never
//! counted as revenue.

use crate::both;
use crate::support::{creem_fixture, figures, now, sign, token, unique, Backend, TestApp, ADMIN};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A payment-link purchase of the starter plan: no `metadata.userId`, only
/// the customer's email.
fn purchase_by_email(email: &str) -> Value {
    let mut event = creem_fixture("checkout.completed.onetime.json");
    event["id"] = json!(unique("evt"));
    event["object"]["order"]["id"] = json!(unique("ord"));
    event["object"]["metadata"] = json!({});
    event["object"]["customer"]["email"] = json!(email);
    event
}

/// The status of every payment from `email`.
async fn payment_statuses(app: &TestApp, email: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT status FROM payments WHERE customer_email = $1 ORDER BY id")
        .bind(email)
        .fetch_all(&app.service.db().pool)
        .await
        .unwrap()
}

/// Signs a local account up; its session cookie.
async fn local_sign_up(app: &TestApp, email: &str) -> String {
    let body = json!({"email": email, "password": "correct horse battery"});
    let response = app.post_json("/api/auth/sign-up", None, &body, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("credits_session="))
        .expect("a session cookie");
    session.split(';').next().unwrap().to_string()
}

async fn local_credits(app: &TestApp, cookie: &str) -> Value {
    let response = app.client.get(app.url("/api/credits")).header("cookie", cookie).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn a_local_account_with_a_buyers_email_does_not_get_the_payment(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("CLERK_JWT_KEY", String::new())]).await;
    let buyer = format!("{}@example.com", unique("buyer"));
    // One purchase before the attacker's account exists, one after.
    let (status, before) = app.creem(&purchase_by_email(&buyer)).await;
    assert_eq!((status, before["detail"].as_str()), (StatusCode::OK, Some("stored until the user appears")));
    let cookie = local_sign_up(&app, &buyer).await;
    assert_eq!(figures(&local_credits(&app, &cookie).await), (8, 8, 0, 0, 8));
    let (status, after) = app.creem(&purchase_by_email(&buyer)).await;
    assert_eq!((status, after["detail"].as_str()), (StatusCode::OK, Some("stored until the user appears")));

    let view = local_credits(&app, &cookie).await;
    assert_eq!(figures(&view), (8, 8, 0, 0, 8), "the attacker got none of the buyer's credits");
    assert_eq!(payment_statuses(&app, &buyer).await, ["pending_user", "pending_user"], "both are kept");
    app.assert_consistent().await;
}
both!(a_local_account_with_a_buyers_email_does_not_get_the_payment);

/// A Clerk `user.created` / `user.updated` for `user` with one address and
/// its verification status.
fn clerk_user(kind: &str, user: &str, email: &str, status: &str) -> Value {
    let mut event = crate::support::clerk_fixture("user.created.json");
    event["type"] = json!(kind);
    event["data"]["id"] = json!(user);
    event["data"]["email_addresses"][0]["email_address"] = json!(email);
    event["data"]["email_addresses"][0]["verification"] = json!({"status": status});
    event
}

async fn a_clerk_verified_email_gets_the_payment(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    // Clerk announces a user whose address it has not verified: the payment waits ...
    let (user, email) = (unique("clerk_user"), format!("{}@example.com", unique("clerk")));
    let (status, _) =
        app.clerk(&unique("msg"), &clerk_user("user.created", &user, &email, "unverified"), now()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, stored) = app.creem(&purchase_by_email(&email)).await;
    assert_eq!(stored["detail"], "stored until the user appears");
    assert_eq!(figures(&app.credits(&user).await), (8, 8, 0, 0, 8));
    // ... until Clerk says the address is verified.
    let (status, _) =
        app.clerk(&unique("msg"), &clerk_user("user.updated", &user, &email, "verified"), now()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(figures(&app.credits(&user).await), (123, 123, 0, 115, 8));

    // A session token's `email` claim is vouched for by Clerk: a later
    // purchase by that email is credited at once.
    let (signed_in, address) = (unique("token_user"), format!("{}@example.com", unique("token")));
    let claims = json!({"sub": signed_in, "iat": now(), "nbf": now(), "exp": now() + 60, "email": address});
    let response = app.get("/api/user/sync", Some(&sign(0, None, claims))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (_, credited) = app.creem(&purchase_by_email(&address)).await;
    assert_eq!(credited["detail"], format!("credited 115 to {signed_in}"));
    assert_eq!(figures(&app.credits(&signed_in).await), (123, 123, 0, 115, 8));
    assert_eq!(payment_statuses(&app, &email).await, ["credited"]);
    app.assert_consistent().await;
}
both!(a_clerk_verified_email_gets_the_payment);

/// `POST /api/ui/test-webhook` (the test page's button) as `bearer`.
async fn send_test_webhook(app: &TestApp, bearer: &str) -> (StatusCode, String) {
    let response =
        app.client.post(app.url("/api/ui/test-webhook")).bearer_auth(bearer).form(&[("plan", "starter")]);
    let response = response.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The sums of a stats report: granted, purchased, revenue in cents.
async fn totals(app: &TestApp) -> (i64, i64, i64) {
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (today.pred_opt().unwrap(), today.succ_opt().unwrap());
    let path = format!("/api/admin/stats?from={from}&to={to}");
    let report: Value = app.get(&path, Some(&token(ADMIN))).await.json().await.unwrap();
    let days = report["days"].as_array().unwrap_or_else(|| panic!("{report}"));
    let sum = |field: &str| days.iter().map(|day| day[field].as_i64().unwrap()).sum::<i64>();
    let revenue = days
        .iter()
        .flat_map(|day| day["revenueCentsByPlan"].as_object().unwrap().values())
        .map(|cents| cents.as_i64().unwrap())
        .sum();
    (sum("granted"), sum("purchased"), revenue)
}

async fn the_test_webhook_is_audited_and_not_revenue(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("not_an_admin");
    app.credits(&user).await;
    let (status, _) = send_test_webhook(&app, &token(&user)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only an admin may send one");
    assert_eq!(app.count("payments").await, 0);

    let admin = sign(0, None, json!({"sub": ADMIN, "iat": now(), "exp": now() + 60, "name": "Ada Admin"}));
    app.credits(ADMIN).await;
    let before = totals(&app).await;
    let (status, body) = send_test_webhook(&app, &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(figures(&app.credits(ADMIN).await), (123, 123, 0, 115, 8));

    // Audited with the admin's name, in the same transaction as the credit.
    let audit: Value = app.get("/api/admin/audit", Some(&admin)).await.json().await.unwrap();
    let entry = &audit["entries"][0];
    assert_eq!((entry["action"].as_str(), entry["targetUser"].as_str()), (Some("webhook.test"), Some(ADMIN)));
    assert_eq!(entry["actor"], format!("admin:{ADMIN}"));
    assert!(entry["reason"].as_str().unwrap().contains("Ada Admin"), "{entry}");
    assert_eq!((entry["before"]["bonus"].as_i64(), entry["after"]["bonus"].as_i64()), (Some(0), Some(115)));

    // A test: granted, never purchased nor revenue.
    assert_eq!(totals(&app).await, (before.0 + 115, before.1, before.2));
    let payments: Value = app.get("/api/admin/payments", Some(&admin)).await.json().await.unwrap();
    assert_eq!(payments["payments"][0]["test"], true, "{payments}");
    let entries = app.all_entries(ADMIN).await;
    assert!(entries[0]["reason"].as_str().unwrap().contains("test"), "{}", entries[0]);

    // A real purchase in the same days is revenue.
    let mut real = purchase_by_email("buyer@example.com");
    real["object"]["metadata"] = json!({"userId": user});
    app.creem(&real).await;
    assert_eq!(totals(&app).await, (before.0 + 115, before.1 + 115, before.2 + 990));
    app.assert_consistent().await;
}
both!(the_test_webhook_is_audited_and_not_revenue);
