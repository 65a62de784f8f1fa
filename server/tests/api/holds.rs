//! Holds: reserve, capture (whole or part) or release, expiry, races.

use crate::both;
use crate::support::{figures, token, unique, Backend, TestApp, ADMIN};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn post(app: &TestApp, bearer: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app.post_json(path, Some(bearer), &body, None).await;
    (response.status(), response.json().await.unwrap())
}

async fn hold(app: &TestApp, bearer: &str, body: Value) -> String {
    let (status, hold) = post(app, bearer, "/api/holds", body).await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    hold["holdId"].as_str().unwrap().to_string()
}

async fn a_hundred_concurrent_holds_of_ten_on_a_hundred_let_ten_through(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("worker");
    app.set_balance(&user, 100).await;
    let bearer = token(&user);
    let body = json!({"amount": 10, "reason": "video"});
    let responses = join_all((0..100).map(|_| app.post_json("/api/holds", Some(&bearer), &body, None))).await;
    let ok = responses.iter().filter(|r| r.status() == StatusCode::OK).count();
    let refused = responses.iter().filter(|r| r.status() == StatusCode::PAYMENT_REQUIRED).count();
    assert_eq!((ok, refused), (10, 90));
    let view = app.credits(&user).await;
    assert_eq!((view["credits"]["remaining"].as_i64(), view["held"].as_i64()), (Some(0), Some(100)));
    app.assert_consistent().await;
}
both!(a_hundred_concurrent_holds_of_ten_on_a_hundred_let_ten_through);

async fn a_partial_capture_spends_part_and_releases_the_rest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("worker");
    app.set_balance(&user, 50).await;
    let bearer = token(&user);
    let id = hold(&app, &bearer, json!({"amount": 20, "ttlSeconds": 600})).await;
    let view = app.credits(&user).await;
    assert_eq!(figures(&view), (30, 50, 0, 0, 8));
    assert_eq!(view["held"], 20);
    let (status, captured) =
        post(&app, &bearer, &format!("/api/holds/{id}/capture"), json!({"amount": 12})).await;
    assert_eq!(status, StatusCode::OK, "{captured}");
    assert_eq!(
        (captured["status"].as_str(), captured["captured"].as_i64(), captured["released"].as_i64()),
        (Some("captured"), Some(12), Some(8))
    );
    assert_eq!(figures(&captured), (38, 50, 12, 0, 8));
    assert_eq!(captured["held"], 0);
    let kinds: Vec<String> = app
        .all_entries(&user)
        .await
        .iter()
        .take(3)
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["release", "capture", "hold"]);
    let (status, error) = post(&app, &bearer, &format!("/api/holds/{id}/release"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error["error"]["code"], "hold_resolved");

    let id = hold(&app, &bearer, json!({"amount": 5})).await;
    let (status, error) =
        post(&app, &bearer, &format!("/api/holds/{id}/capture"), json!({"amount": 6})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "cannot capture more than held: {error}");
    let (_, released) = post(&app, &bearer, &format!("/api/holds/{id}/release"), json!({})).await;
    assert_eq!((released["status"].as_str(), released["released"].as_i64()), (Some("released"), Some(5)));
    let (_, full) = {
        let id = hold(&app, &bearer, json!({"amount": 7})).await;
        post(&app, &bearer, &format!("/api/holds/{id}/capture"), json!({})).await
    };
    assert_eq!(full["captured"], 7);
    assert_eq!(figures(&app.credits(&user).await), (31, 50, 19, 0, 8));
    for bad in [
        json!({"amount": 0}),
        json!({"amount": 5, "ttlSeconds": 0}),
        json!({"amount": 5, "ttlSeconds": 999999999}),
        json!({"amount": 5, "color": "red"}),
        json!({"amount": 1_000_000_000}),
    ] {
        assert_eq!(post(&app, &bearer, "/api/holds", bad.clone()).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }
    let other = token(&unique("stranger"));
    let id = hold(&app, &bearer, json!({"amount": 1})).await;
    assert_eq!(
        post(&app, &other, &format!("/api/holds/{id}/capture"), json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(&app, &other, "/api/holds", json!({"amount": 1, "userId": user})).await.0,
        StatusCode::FORBIDDEN
    );
    app.assert_consistent().await;
}
both!(a_partial_capture_spends_part_and_releases_the_rest);

async fn capture_release_and_expiry_racing_resolve_a_hold_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("racer");
    app.set_balance(&user, 1000).await;
    let bearer = token(&user);
    for round in 0..10 {
        // Short holds so that the expiry sweep joins the race in some rounds.
        let id = hold(&app, &bearer, json!({"amount": 10, "ttlSeconds": 1})).await;
        if round % 2 == 1 {
            tokio::time::sleep(std::time::Duration::from_millis(900 + 20 * round)).await;
        }
        let capture = format!("/api/holds/{id}/capture");
        let release = format!("/api/holds/{id}/release");
        let attempts = (0..6).map(|i| {
            let path = if i % 2 == 0 { capture.clone() } else { release.clone() };
            let bearer = bearer.clone();
            let app = &app;
            async move { post(app, &bearer, &path, json!({})).await.0 }
        });
        let statuses = join_all(attempts).await;
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert!(ok <= 1, "round {round}: {statuses:?}");
        assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT), "{statuses:?}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let view = app.credits(&user).await;
    assert_eq!(view["held"], 0, "every hold resolved");
    let entries = app.all_entries(&user).await;
    let holds = entries.iter().filter(|e| e["kind"] == "hold").count();
    let captures = entries.iter().filter(|e| e["kind"] == "capture").count();
    let releases = entries.iter().filter(|e| e["kind"] == "release").count();
    assert_eq!(holds, 10);
    assert_eq!(captures + releases, 10, "exactly one resolution per hold");
    app.assert_consistent().await;
}
both!(capture_release_and_expiry_racing_resolve_a_hold_once);

async fn expired_holds_are_released_by_any_instance_after_a_restart(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let user = unique("sleeper");
    first.set_balance(&user, 30).await;
    let id = hold(&first, &token(&user), json!({"amount": 30, "ttlSeconds": 1})).await;
    // A second process on the same database (as after a restart) sweeps it.
    let second = TestApp::spawn_on(first.service.db().url(), &[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let view = second.credits(&user).await;
    assert_eq!((view["credits"]["remaining"].as_i64(), view["held"].as_i64()), (Some(30), Some(0)));
    let (status, error) = post(&second, &token(&user), &format!("/api/holds/{id}/capture"), json!({})).await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("hold_resolved")));
    let releases = second.all_entries(&user).await.iter().filter(|e| e["kind"] == "release").count();
    assert_eq!(releases, 1, "expired once, whichever instance swept");
    second.assert_consistent().await;
}
both!(expired_holds_are_released_by_any_instance_after_a_restart);

/// Everything that reads holds other than by id reads open holds only (the
/// admin view of a user, the `held` figure, `credits check`): with resolved
/// holds around, they see the open ones and nothing else.
async fn readers_of_open_holds_see_only_open_holds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("reader");
    app.set_balance(&user, 100).await;
    let bearer = token(&user);
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(hold(&app, &bearer, json!({"amount": 10, "ttlSeconds": 600})).await);
    }
    for id in &ids[..3] {
        let (status, body) = post(&app, &bearer, &format!("/api/holds/{id}/capture"), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let detail: Value =
        app.get(&format!("/api/admin/users/{user}"), Some(&token(ADMIN))).await.json().await.unwrap();
    let open: Vec<&str> =
        detail["openHolds"].as_array().unwrap().iter().map(|h| h["holdId"].as_str().unwrap()).collect();
    assert_eq!(open, [ids[3].as_str()], "{detail}");
    assert_eq!(app.credits(&user).await["held"], 10);
    app.assert_consistent().await;
}
both!(readers_of_open_holds_see_only_open_holds);

async fn holds_honour_idempotency_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("worker");
    app.set_balance(&user, 40).await;
    let bearer = token(&user);
    let body = json!({"amount": 10});
    let first = app.post_json("/api/holds", Some(&bearer), &body, Some("job-1")).await;
    let first_body: Value = first.json().await.unwrap();
    let again = app.post_json("/api/holds", Some(&bearer), &body, Some("job-1")).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first_body);
    assert_eq!(app.credits(&user).await["held"], 10);
    let id = first_body["holdId"].as_str().unwrap();
    let capture = format!("/api/holds/{id}/capture");
    let one = app.post_json(&capture, Some(&bearer), &json!({"amount": 4}), Some("cap-1")).await;
    assert_eq!(one.status(), StatusCode::OK);
    let two = app.post_json(&capture, Some(&bearer), &json!({"amount": 4}), Some("cap-1")).await;
    assert_eq!((two.status(), two.headers().get("idempotent-replayed").is_some()), (StatusCode::OK, true));
    let conflict = app.post_json(&capture, Some(&bearer), &json!({"amount": 5}), Some("cap-1")).await;
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    let release = format!("/api/holds/{id}/release");
    let late = app.post_json(&release, Some(&bearer), &json!({}), Some("rel-1")).await;
    assert_eq!(late.status(), StatusCode::CONFLICT, "already captured");
    assert_eq!(figures(&app.credits(&user).await), (36, 40, 4, 0, 8));
    let _ = ADMIN;
}
both!(holds_honour_idempotency_keys);

/// Hold requests that arrive together are applied set-wise by the group
/// committer (`holds::batch`). Every answer must still be what one request at
/// a time would have given: each of a user's holds sees a different `held`,
/// `remaining + held` is what the user started with, a short account lets
/// exactly as many through as it affords; captures likewise, and a hold
/// captured twice at once is captured once.
async fn batched_holds_and_captures_end_as_if_one_at_a_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // (user, starting balance, holds of 10 that must succeed out of 6)
    let mut users: Vec<(String, i64, usize)> =
        (0..4).map(|i| (unique(&format!("hbatch{i}")), 100, 6)).collect();
    users.push((unique("hbatchshort"), 25, 2));
    for (user, balance, _) in &users {
        app.set_balance(user, *balance).await;
    }
    let body = json!({"amount": 10, "reason": "render"});
    let asks: Vec<(String, String)> =
        users.iter().flat_map(|(user, _, _)| std::iter::repeat_n((user.clone(), token(user)), 6)).collect();
    let answers =
        join_all(asks.iter().map(|(_, bearer)| post(&app, bearer, "/api/holds", body.clone()))).await;
    let mut holds: Vec<(String, String)> = Vec::new();
    for (user, balance, expected) in &users {
        let mine: Vec<&(StatusCode, Value)> = asks
            .iter()
            .zip(&answers)
            .filter(|((owner, _), _)| owner == user)
            .map(|(_, answer)| answer)
            .collect();
        let ok: Vec<&Value> = mine.iter().filter(|(s, _)| *s == StatusCode::OK).map(|(_, v)| v).collect();
        let refused = mine.iter().filter(|(s, _)| *s == StatusCode::PAYMENT_REQUIRED).count();
        assert_eq!((ok.len(), refused), (*expected, 6 - expected), "{user}: {mine:?}");
        let mut held: Vec<i64> = ok
            .iter()
            .map(|hold| {
                assert_eq!(
                    (hold["userId"].as_str(), hold["status"].as_str()),
                    (Some(user.as_str()), Some("open"))
                );
                let (remaining, held) =
                    (hold["credits"]["remaining"].as_i64().unwrap(), hold["held"].as_i64().unwrap());
                assert_eq!(remaining + held, *balance, "{hold}");
                held
            })
            .collect();
        held.sort_unstable();
        let one_at_a_time: Vec<i64> = (1..=*expected as i64).map(|n| 10 * n).collect();
        assert_eq!(held, one_at_a_time, "{user}");
        holds.extend(ok.iter().map(|hold| (user.clone(), hold["holdId"].as_str().unwrap().to_string())));
    }

    // Capture every hold, the first two twice at once.
    let captures: Vec<&(String, String)> = holds.iter().chain(holds.iter().take(2)).collect();
    let asks: Vec<(String, String)> =
        captures.iter().map(|(user, id)| (token(user), format!("/api/holds/{id}/capture"))).collect();
    let answers = join_all(asks.iter().map(|(bearer, path)| post(&app, bearer, path, json!({})))).await;
    for (user, balance, expected) in &users {
        let mut used = Vec::new();
        for ((owner, id), (status, answer)) in captures.iter().map(|c| (&c.0, &c.1)).zip(&answers) {
            if owner != user {
                continue;
            }
            if *status == StatusCode::CONFLICT {
                continue;
            }
            assert_eq!(*status, StatusCode::OK, "{answer}");
            assert_eq!(
                (answer["holdId"].as_str(), answer["status"].as_str()),
                (Some(id.as_str()), Some("captured"))
            );
            assert_eq!((answer["captured"].as_i64(), answer["released"].as_i64()), (Some(10), Some(0)));
            let (remaining, held) =
                (answer["credits"]["remaining"].as_i64().unwrap(), answer["held"].as_i64().unwrap());
            let spent = answer["credits"]["used"].as_i64().unwrap();
            assert_eq!(
                (remaining, held + spent),
                (balance - 10 * *expected as i64, 10 * *expected as i64),
                "{answer}"
            );
            used.push(spent);
        }
        used.sort_unstable();
        let one_at_a_time: Vec<i64> = (1..=*expected as i64).map(|n| 10 * n).collect();
        assert_eq!(used, one_at_a_time, "{user}");
        let view = app.credits(user).await;
        assert_eq!(
            (view["held"].as_i64(), view["credits"]["used"].as_i64()),
            (Some(0), Some(10 * *expected as i64))
        );
        let entries = app.all_entries(user).await;
        let count = |kind: &str| entries.iter().filter(|e| e["kind"] == kind).count();
        assert_eq!((count("hold"), count("capture")), (*expected, *expected), "{user}");
    }
    let conflicts = answers.iter().filter(|(status, _)| *status == StatusCode::CONFLICT).count();
    assert_eq!(conflicts, 2, "each hold captured twice at once is captured once");
    app.assert_consistent().await;
}
both!(batched_holds_and_captures_end_as_if_one_at_a_time);

/// `holds::batch::apply` itself, on one batch: what it applies and what it
/// leaves to run one at a time (an account short of credits, a hold named
/// twice, an unknown or already captured hold, a revoked worker key's ops).
async fn a_hold_batch_applies_what_it_can_and_leaves_the_rest(backend: Backend) {
    hold_batch_case(backend, false).await
}
both!(a_hold_batch_applies_what_it_can_and_leaves_the_rest);

/// The same batch on the group commit's own SQLite connection
/// (`exec::SqliteWriter`, which runs a whole batch in place): the same code,
/// so the same answers and the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_batch_applies_the_same_on_the_sqlite_writer_connection() {
    hold_batch_case(Backend::Sqlite, true).await
}

async fn hold_batch_case(backend: Backend, in_place: bool) {
    use credits::holds::batch::{apply, HoldOp};
    use credits::holds::{MadeBy, Resolver};
    let app = TestApp::spawn(backend).await;
    let db = app.service.db();
    let (rich, short, closed) = (unique("hbrich"), unique("hbshort"), unique("hbclosed"));
    app.set_balance(&rich, 100).await;
    app.set_balance(&short, 5).await;
    // A closed account whose grant would cover its hold: refused, and its
    // grant must not be touched either.
    app.set_balance(&closed, 100).await;
    sqlx::query("UPDATE accounts SET status = 'closed' WHERE user_id = $1")
        .bind(&closed)
        .execute(&db.pool)
        .await
        .unwrap();
    let earlier = hold(&app, &token(&rich), json!({"amount": 30, "reason": "earlier"})).await;
    let captured = hold(&app, &token(&rich), json!({"amount": 10})).await;
    let third = hold(&app, &token(&rich), json!({"amount": 4})).await;
    // A hold of the short account: its capture applies though its creation cannot.
    let short_hold = hold(&app, &token(&short), json!({"amount": 3})).await;
    let (status, _) = post(&app, &token(&rich), &format!("/api/holds/{captured}/capture"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (active, _) = credits::auth::api_keys::create(&db.pool, "active").await.unwrap();
    let (revoked, _) = credits::auth::api_keys::create(&db.pool, "revoked").await.unwrap();
    assert!(credits::auth::api_keys::revoke(&db.pool, &revoked).await.unwrap());
    let expires = credits::db::now_ms() + 60_000;
    let create = |user_id, amount, api_key| HoldOp::Create {
        user_id,
        amount,
        expires_at_ms: expires,
        reason: None,
        actor: "t",
        api_key,
        made_by: if api_key.is_some() { MadeBy::ApiKey } else { MadeBy::User },
    };
    let capture = |hold_id, api_key| HoldOp::Capture {
        hold_id,
        user_id: &rich,
        actor: "t",
        api_key,
        resolver: Resolver::Privileged,
    };
    let ops = [
        create(&rich, 20, None),
        capture(&earlier, None),
        create(&short, 10, None),
        create(&rich, 15, None),
        capture(&earlier, None),
        capture("hold_unknown", None),
        capture(&captured, None),
        create(&rich, 5, Some(active.as_str())),
        create(&rich, 7, Some(revoked.as_str())),
        capture(&third, Some(revoked.as_str())),
        create(&closed, 5, None),
        HoldOp::Capture {
            hold_id: &short_hold,
            user_id: &short,
            actor: "t",
            api_key: None,
            resolver: Resolver::Privileged,
        },
        // Another user may not capture the user's hold, even in a batch.
        HoldOp::Capture {
            hold_id: &third,
            user_id: &rich,
            actor: &short,
            api_key: None,
            resolver: Resolver::User(&short),
        },
    ];
    let postgres = backend == Backend::Postgres;
    let out = if in_place {
        let mut writer = credits::db::open_sqlite_writer(&db.pool).unwrap().expect("a file database");
        writer.run("BEGIN IMMEDIATE").expect("a transaction");
        let out = credits::exec::finish_now(apply(&mut writer, &ops, false)).expect("the batch applies");
        writer.run("COMMIT").expect("commit");
        out
    } else {
        let mut tx =
            if postgres { db.pool.begin().await } else { db.pool.begin_with("BEGIN IMMEDIATE").await }
                .expect("a transaction");
        let out = apply(&mut *tx, &ops, postgres).await.expect("the batch applies");
        tx.commit().await.expect("commit");
        out
    };
    let applied: Vec<bool> = out.iter().map(Option::is_some).collect();
    assert_eq!(
        applied,
        [true, true, false, true, false, false, false, true, false, false, false, true, false]
    );
    let closed_held: i64 =
        sqlx::query_scalar("SELECT CAST(SUM(held) AS BIGINT) FROM grants WHERE user_id = $1")
            .bind(&closed)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(closed_held, 0, "the closed account's grants hold nothing");
    // 100 - 30 - 10 - 4 = 56 remaining before; creations first, in batch order.
    let (first, figures_1) = out[0].clone().unwrap();
    let (second, figures_2) = out[3].clone().unwrap();
    let (by_key, figures_k) = out[7].clone().unwrap();
    assert_eq!((first.amount, figures_1.remaining, figures_1.held), (20, 36, 54));
    assert_eq!((second.amount, figures_2.remaining, figures_2.held), (15, 21, 69));
    assert_eq!((by_key.amount, figures_k.remaining, figures_k.held), (5, 16, 74));
    assert!(first.entry_id.is_some() && first.id != second.id);
    let stored = credits::holds::load(&mut db.pool.acquire().await.unwrap(), &by_key.id).await.unwrap();
    assert_eq!((stored.map(|hold| hold.made_by), first.made_by), (Some(MadeBy::ApiKey), MadeBy::User));
    // Then the capture of the earlier hold of 30.
    let (resolved, figures_3) = out[1].clone().unwrap();
    assert_eq!((resolved.status.as_str(), resolved.captured), ("captured", 30));
    assert_eq!((figures_3.remaining, figures_3.held, figures_3.used), (16, 44, 40));
    let view = app.credits(&rich).await;
    assert_eq!((view["credits"]["remaining"].as_i64(), view["held"].as_i64()), (Some(16), Some(44)));
    let (short_captured, short_figures) = out[11].clone().unwrap();
    assert_eq!((short_captured.captured, short_figures.remaining, short_figures.held), (3, 2, 0));
    let view = app.credits(&short).await;
    assert_eq!(
        (view["credits"]["remaining"].as_i64(), view["held"].as_i64(), view["credits"]["used"].as_i64()),
        (Some(2), Some(0), Some(3))
    );
    // The new holds can be captured and released like any other, and the
    // hold the revoked key named is still open.
    let (status, answer) =
        post(&app, &token(&rich), &format!("/api/holds/{}/release", second.id), json!({})).await;
    assert_eq!((status, answer["credits"]["remaining"].as_i64()), (StatusCode::OK, Some(31)), "{answer}");
    let (status, answer) =
        post(&app, &token(&rich), &format!("/api/holds/{}/capture", first.id), json!({})).await;
    assert_eq!((status, answer["credits"]["used"].as_i64()), (StatusCode::OK, Some(60)), "{answer}");
    let (status, answer) = post(&app, &token(&rich), &format!("/api/holds/{third}/release"), json!({})).await;
    assert_eq!((status, answer["credits"]["remaining"].as_i64()), (StatusCode::OK, Some(35)), "{answer}");
    app.assert_consistent().await;
}

/// On SQLite a batch of which only some requests apply set-wise commits
/// those in place and runs the others (here: accounts short of credits)
/// after it on sqlx's connection (`group_commit::run_in_place`). Every
/// request is answered once, as if one at a time: no spend or hold of the
/// committed part runs again, none of the others is lost. How the requests
/// fall into batches is the scheduler's business; whatever it is, the
/// answers and the figures must be these.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_batches_commit_what_applies_in_place_and_run_the_rest_after() {
    const ROUNDS: i64 = 3;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let rich: Vec<String> = (0..8).map(|i| unique(&format!("partrich{i}"))).collect();
    let poor: Vec<String> = (0..8).map(|i| unique(&format!("partpoor{i}"))).collect();
    for user in &rich {
        app.set_balance(user, 10_000).await;
    }
    for user in &poor {
        app.set_balance(user, 35).await;
    }
    let everyone: Vec<(String, String)> = rich
        .iter()
        .chain(&poor)
        .flat_map(|user| std::iter::repeat_n((user.clone(), token(user)), 8))
        .collect();
    let is_rich = |user: &String| rich.contains(user);
    let (mut rounds, mut poor_spent) = (0, std::collections::BTreeMap::<&String, i64>::new());
    let deduct = json!({"action": "deduct", "amount": 10});
    while rounds < ROUNDS {
        rounds += 1;
        let answers =
            join_all(everyone.iter().map(|(_, bearer)| post(&app, bearer, "/api/credits", deduct.clone())))
                .await;
        for ((user, _), (status, answer)) in everyone.iter().zip(&answers) {
            if is_rich(user) {
                assert_eq!(*status, StatusCode::OK, "{user}: {answer}");
            } else if *status == StatusCode::OK {
                *poor_spent.entry(user).or_default() += 10;
            } else {
                assert_eq!(*status, StatusCode::PAYMENT_REQUIRED, "{user}: {answer}");
            }
        }
    }
    for user in &rich {
        let view = app.credits(user).await;
        assert_eq!(view["credits"]["remaining"].as_i64(), Some(10_000 - 80 * rounds), "{user}");
        let spends = app.all_entries(user).await.iter().filter(|e| e["kind"] == "spend").count() as i64;
        assert_eq!(spends, 8 * rounds, "{user}: each spend once");
    }
    for user in &poor {
        assert_eq!(poor_spent.get(user), Some(&30), "{user}: three of 10 from 35");
        let view = app.credits(user).await;
        assert_eq!(view["credits"]["remaining"].as_i64(), Some(5), "{user}");
    }
    // Holds likewise: the poor accounts (5 left) cannot hold 10.
    let mut held = 0;
    while held < ROUNDS {
        held += 1;
        let answers = join_all(
            everyone.iter().map(|(_, bearer)| post(&app, bearer, "/api/holds", json!({"amount": 10}))),
        )
        .await;
        for ((user, _), (status, answer)) in everyone.iter().zip(&answers) {
            let expected = if is_rich(user) { StatusCode::OK } else { StatusCode::PAYMENT_REQUIRED };
            assert_eq!(*status, expected, "{user}: {answer}");
        }
    }
    for user in &rich {
        let view = app.credits(user).await;
        assert_eq!(
            (view["credits"]["remaining"].as_i64(), view["held"].as_i64()),
            (Some(10_000 - 80 * rounds - 80 * held), Some(80 * held)),
            "{user}"
        );
    }
    app.assert_consistent().await;
}

/// On SQLite a batch whose every request applies set-wise (plain holds and
/// captures of accounts that cover them, plain spends) runs whole on the
/// group commit's own connection, in place (`group_commit::run_in_place`).
/// Its answers must be those of one request at a time, as on sqlx's
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_batches_that_apply_set_wise_commit_whole_in_place() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let users: Vec<String> = (0..8).map(|i| unique(&format!("inplace{i}"))).collect();
    for user in &users {
        app.set_balance(user, 1_000).await;
    }
    let asks: Vec<(String, String)> =
        users.iter().flat_map(|user| std::iter::repeat_n((user.clone(), token(user)), 8)).collect();
    let held =
        join_all(asks.iter().map(|(_, bearer)| post(&app, bearer, "/api/holds", json!({"amount": 10}))))
            .await;
    let mut holds = Vec::new();
    for user in &users {
        let mut seen: Vec<i64> = asks
            .iter()
            .zip(&held)
            .filter(|((owner, _), _)| owner == user)
            .map(|(_, (status, hold))| {
                assert_eq!(*status, StatusCode::OK, "{hold}");
                assert_eq!(
                    hold["credits"]["remaining"].as_i64().unwrap() + hold["held"].as_i64().unwrap(),
                    1_000
                );
                holds.push((token(user), hold["holdId"].as_str().unwrap().to_string()));
                hold["held"].as_i64().unwrap()
            })
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (1..=8).map(|n| 10 * n).collect::<Vec<i64>>(), "{user}: one hold at a time");
    }
    let paths: Vec<(String, String)> =
        holds.iter().map(|(bearer, id)| (bearer.clone(), format!("/api/holds/{id}/capture"))).collect();
    let captured = join_all(paths.iter().map(|(bearer, path)| post(&app, bearer, path, json!({})))).await;
    for (status, answer) in &captured {
        assert_eq!((*status, answer["status"].as_str()), (StatusCode::OK, Some("captured")), "{answer}");
    }
    let deduct = json!({"action": "deduct", "amount": 5});
    let spent =
        join_all(asks.iter().map(|(_, bearer)| app.post_json("/api/credits", Some(bearer), &deduct, None)))
            .await;
    for response in spent {
        assert_eq!(response.status(), StatusCode::OK);
    }
    for user in &users {
        let view = app.credits(user).await;
        assert_eq!(
            (view["credits"]["remaining"].as_i64(), view["held"].as_i64(), view["credits"]["used"].as_i64()),
            (Some(1_000 - 80 - 40), Some(0), Some(120)),
            "{user}"
        );
        let entries = app.all_entries(user).await;
        let count = |kind: &str| entries.iter().filter(|e| e["kind"] == kind).count();
        assert_eq!((count("hold"), count("capture"), count("spend")), (8, 8, 8), "{user}");
    }
    app.assert_consistent().await;
}
