//! `GET/POST /api/credits`, history, and the plain routes' bounds.

use crate::both;
use crate::support::{
    figures, fresh_database_url, postgres_admin_url, token, unique, Backend, TestApp, ADMIN,
};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn a_new_user_sees_the_contract_shape_with_the_initial_grant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("user");
    let view = app.credits(&user).await;
    assert_eq!(view["userId"], user.as_str());
    assert_eq!(figures(&view), (8, 8, 0, 0, 8));
    assert_eq!(view["held"], 0);
    assert_eq!(view["costPerVideo"], 10);
    assert_eq!(view["canGenerateVideo"], false, "8 credits cannot pay for a 10-credit video");
    assert!(view["updatedAt"].as_str().unwrap().ends_with('Z'));
    let recent = view["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0]["kind"], "initial");
    assert_eq!(recent[0]["amount"], 8);
    assert_eq!(recent[0]["balanceAfter"], 8);
    app.assert_consistent().await;
}
both!(a_new_user_sees_the_contract_shape_with_the_initial_grant);

async fn the_initial_grant_happens_once_however_many_requests_race(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("racer");
    let bearer = token(&user);
    let requests = (0..40).map(|i| {
        let request = if i % 2 == 0 {
            app.client.get(app.url("/api/credits"))
        } else {
            app.client.post(app.url("/api/user/sync"))
        };
        request.bearer_auth(&bearer).send()
    });
    let responses = join_all(requests).await;
    let mut created = 0;
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        if body["created"] == true {
            created += 1;
        }
    }
    assert!(created <= 1, "{created} sync calls claim to have created the account");
    assert_eq!(figures(&app.credits(&user).await), (8, 8, 0, 0, 8));
    let initial_entries = app.all_entries(&user).await.iter().filter(|e| e["kind"] == "initial").count();
    assert_eq!(initial_entries, 1);
    app.assert_consistent().await;
}
both!(the_initial_grant_happens_once_however_many_requests_race);

async fn concurrent_deducts_never_overspend(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("spender");
    app.set_balance(&user, 100).await;
    let bearer = token(&user);
    let body = json!({"action": "deduct", "amount": 10, "reason": "video"});
    let requests = (0..50).map(|_| app.post_json("/api/credits", Some(&bearer), &body, None));
    let statuses: Vec<StatusCode> = join_all(requests).await.iter().map(|r| r.status()).collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::PAYMENT_REQUIRED).count();
    assert_eq!((ok, refused), (10, 40), "{statuses:?}");
    let view = app.credits(&user).await;
    assert_eq!(view["credits"]["remaining"], 0);
    assert_eq!(view["credits"]["used"], 100);
    let spends = app.all_entries(&user).await.iter().filter(|e| e["kind"] == "spend").count();
    assert_eq!(spends, 10);
    app.assert_consistent().await;
}
both!(concurrent_deducts_never_overspend);

/// Many users spending at once: the group committer applies whole batches of
/// plain spends set-wise. Every user must end exactly as if their spends had
/// run one at a time: the right number accepted, each entry's balance one
/// spend lower than the one before, grants drawn in order, `credits check` clean.
async fn batched_spends_end_as_if_one_at_a_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // (user, starting balance, spends that must succeed out of 12 of 10 each)
    let plain: Vec<(String, i64, usize)> =
        (0..4).map(|i| (unique(&format!("batch{i}")), 1_000, 12)).collect();
    let short = (unique("batchshort"), 55, 5);
    let broke = (unique("batchbroke"), 8, 0);
    let first_grant = unique("batchgrant");
    let mut users = plain.clone();
    users.extend([short.clone(), broke.clone()]);
    for (user, balance, _) in &users {
        if *balance == 8 {
            app.credits(user).await;
        } else {
            app.set_balance(user, *balance).await;
        }
    }
    // This user's first grant in draw order covers every spend on its own.
    app.credits(&first_grant).await;
    let (status, body) = app
        .change(ADMIN, json!({"action": "add", "amount": 500, "priority": 1, "userId": first_grant}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    users.push((first_grant.clone(), 508, 12));

    let body = json!({"action": "deduct", "amount": 10, "reason": "batched"});
    let bearers: Vec<(String, String)> =
        users.iter().flat_map(|(user, _, _)| std::iter::repeat_n((user.clone(), token(user)), 12)).collect();
    let owners: Vec<&String> = bearers.iter().map(|(user, _)| user).collect();
    let futures = bearers.iter().map(|(_, bearer)| app.post_json("/api/credits", Some(bearer), &body, None));
    let mut responses = Vec::new();
    for response in join_all(futures).await {
        let status = response.status();
        responses.push((status, response.json::<Value>().await.unwrap_or_default()));
    }
    for (user, balance, expected_ok) in &users {
        let statuses: Vec<StatusCode> = owners
            .iter()
            .zip(&responses)
            .filter(|(owner, _)| **owner == user)
            .map(|(_, (status, _))| *status)
            .collect();
        // Each accepted spend is answered with its own user's view, read after
        // that spend was written: at least its 10 credits lower, a spend on top.
        let final_remaining = balance - 10 * *expected_ok as i64;
        for (_, (_, answer)) in owners
            .iter()
            .zip(&responses)
            .filter(|(owner, (status, _))| **owner == user && *status == StatusCode::OK)
        {
            assert_eq!(answer["userId"], json!(user), "{answer}");
            let remaining = answer["credits"]["remaining"].as_i64().unwrap();
            assert!((final_remaining..=balance - 10).contains(&remaining), "{user}: {answer}");
            assert_eq!(answer["recent"][0]["kind"], "spend", "{answer}");
            assert_eq!(answer["recent"][0]["balanceAfter"], json!(remaining), "{answer}");
        }
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let refused = statuses.iter().filter(|s| **s == StatusCode::PAYMENT_REQUIRED).count();
        assert_eq!((ok, refused), (*expected_ok, 12 - expected_ok), "{user}: {statuses:?}");
        let view = app.credits(user).await;
        assert_eq!(view["credits"]["remaining"], balance - 10 * *expected_ok as i64, "{user}");
        // Oldest first: each spend leaves exactly 10 less than what was there before it.
        let mut entries = app.all_entries(user).await;
        entries.reverse();
        let mut running = 0;
        let mut spends = 0;
        for entry in &entries {
            running += entry["amount"].as_i64().unwrap();
            assert_eq!(entry["balanceAfter"].as_i64().unwrap(), running, "{user}: {entry}");
            if entry["kind"] == "spend" {
                assert_eq!(entry["amount"], -10);
                assert_eq!(entry["reason"], "batched");
                spends += 1;
            }
        }
        assert_eq!(spends, *expected_ok, "{user}");
    }
    // The first grant in draw order paid for all of that user's spends.
    let view = app.credits(&first_grant).await;
    let grants = view["grants"].as_array().unwrap();
    let promoted = grants.iter().find(|grant| grant["priority"] == 1).expect("the priority-1 grant");
    assert_eq!(promoted["remaining"], 500 - 120);
    app.assert_consistent().await;
}
both!(batched_spends_end_as_if_one_at_a_time);

/// Reads that arrive together are answered by one statement for all their
/// users (`service::view::ViewReader`). Each answer must still be exactly its
/// own user's view: their own ten newest entries, grants and five newest
/// notices, whatever the others hold.
async fn views_read_together_are_each_users_own(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let one = json!({"action": "deduct", "amount": 1, "reason": "small"});
    let mut users = Vec::new();
    // Fewer and more entries than the view shows (3 to 13 spends each).
    for i in 0..6 {
        // User ids are any text: the list of users read together must carry
        // quotes, backslashes, commas, braces and the word NULL intact.
        let user = match i {
            0 => unique(r#"odd "quoted", \back{slash} é"#),
            1 => "NULL".to_string(), // each test has its own database
            _ => unique(&format!("together{i}")),
        };
        app.set_balance(&user, 1_000 + i).await;
        for _ in 0..(2 * i + 3) {
            assert_eq!(app.change(&user, one.clone()).await.0, StatusCode::OK);
        }
        users.push(user);
    }
    // One user with seven `credits.low` notices (the view shows five) and two grants.
    let noisy = unique("togethernoisy");
    app.set_balance(&noisy, 100).await;
    for _ in 0..7 {
        app.set_balance(&noisy, 100).await;
        assert_eq!(app.change(&noisy, json!({"action": "deduct", "amount": 95})).await.0, StatusCode::OK);
    }
    let (status, body) =
        app.change(ADMIN, json!({"action": "add", "amount": 5, "priority": 1, "userId": noisy})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    users.push(noisy.clone());

    let mut alone = Vec::new();
    for user in &users {
        alone.push(app.credits(user).await);
    }
    let noisy_view = alone.last().unwrap();
    assert_eq!(noisy_view["notices"].as_array().unwrap().len(), 5, "{noisy_view}");
    assert_eq!(noisy_view["grants"].as_array().unwrap().len(), 2, "{noisy_view}");
    for (view, i) in alone.iter().zip(0..6) {
        assert_eq!(view["recent"].as_array().unwrap().len(), (2 * i + 3 + 2).min(10), "{view}");
        assert!(view["notices"].as_array().unwrap().is_empty(), "{view}");
    }

    // Eight reads per user, all at once: each equals what the user saw alone.
    let owners: Vec<usize> = (0..users.len()).flat_map(|i| std::iter::repeat_n(i, 8)).collect();
    let tokens: Vec<String> = owners.iter().map(|i| token(&users[*i])).collect();
    let reads = tokens.iter().map(|bearer| app.get("/api/credits", Some(bearer)));
    for (owner, response) in owners.iter().zip(join_all(reads).await) {
        assert_eq!(response.status(), StatusCode::OK);
        let view: Value = response.json().await.unwrap();
        assert_eq!(view, alone[*owner], "{}", users[*owner]);
    }

    // Eight spends per user, all at once: each answer is its own user's, shows
    // a spend as its newest entry and at least its own debit.
    let spends = tokens.iter().map(|bearer| app.post_json("/api/credits", Some(bearer), &one, None));
    for (owner, response) in owners.iter().zip(join_all(spends).await) {
        assert_eq!(response.status(), StatusCode::OK);
        let view: Value = response.json().await.unwrap();
        let before = &alone[*owner];
        assert_eq!(view["userId"], before["userId"]);
        assert_eq!(view["recent"][0]["kind"], "spend", "{view}");
        assert!(view["recent"].as_array().unwrap().len() <= 10);
        let used = view["credits"]["used"].as_i64().unwrap() - before["credits"]["used"].as_i64().unwrap();
        assert!((1..=8).contains(&used), "{used}: {view}");
    }
    for (user, before) in users.iter().zip(&alone) {
        let after = app.credits(user).await;
        assert_eq!(
            after["credits"]["used"].as_i64().unwrap(),
            before["credits"]["used"].as_i64().unwrap() + 8
        );
    }
    app.assert_consistent().await;
}
both!(views_read_together_are_each_users_own);

async fn a_deduct_beyond_the_balance_is_402_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("short");
    let before = app.credits(&user).await;
    let (status, body) = app.change(&user, json!({"action": "deduct", "amount": 10})).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(body["error"]["code"], "insufficient_credits");
    assert_eq!(body["error"]["required"], 10);
    assert_eq!(body["error"]["remaining"], 8);
    let after = app.credits(&user).await;
    assert_eq!(figures(&after), figures(&before));
    assert_eq!(app.all_entries(&user).await.len(), 1);
    let (status, body) = app.change(&user, json!({"action": "deduct", "amount": 8})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(figures(&body), (0, 8, 8, 0, 8));
    assert_eq!(body["recent"][0]["kind"], "spend");
    assert_eq!(body["recent"][0]["amount"], -8);
    assert_eq!(body["recent"][0]["balanceAfter"], 0);
}
both!(a_deduct_beyond_the_balance_is_402_and_changes_nothing);

async fn only_admins_add_set_or_touch_other_accounts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (user, other) = (unique("user"), unique("other"));
    app.credits(&user).await;
    app.credits(&other).await;
    for body in [
        json!({"action": "add", "amount": 100}),
        json!({"action": "set", "amount": 100}),
        json!({"action": "deduct", "amount": 1, "userId": other}),
        json!({"action": "add", "amount": 1, "userId": other}),
    ] {
        let (status, error) = app.change(&user, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(error["error"]["code"], "forbidden");
    }
    assert_eq!(figures(&app.credits(&user).await), (8, 8, 0, 0, 8));
    assert_eq!(figures(&app.credits(&other).await), (8, 8, 0, 0, 8));

    let (status, view) =
        app.change(ADMIN, json!({"action": "add", "amount": 100, "userId": user, "reason": "support"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["userId"], user.as_str());
    assert_eq!(figures(&view), (108, 108, 0, 0, 8));
    assert_eq!(view["recent"][0]["kind"], "adjust");
    assert_eq!(view["recent"][0]["reason"], "support");
    let (_, view) = app.change(ADMIN, json!({"action": "set", "amount": 30, "userId": user})).await;
    assert_eq!(figures(&view), (30, 30, 0, 0, 8));
    assert_eq!(view["recent"][0]["kind"], "adjust");
    assert_eq!(view["recent"][0]["amount"], -78);
    let (_, view) = app.change(ADMIN, json!({"action": "deduct", "amount": 5, "userId": user})).await;
    assert_eq!(figures(&view), (25, 30, 5, 0, 8));
    let (status, error) =
        app.change(ADMIN, json!({"action": "add", "amount": 5, "userId": "nobody_here"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"]["code"], "not_found");
    app.assert_consistent().await;
}
both!(only_admins_add_set_or_touch_other_accounts);

async fn bad_input_is_a_400_that_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bearer = token(ADMIN);
    app.credits(ADMIN).await;
    let bodies = [
        json!({"action": "add", "amount": 0}),
        json!({"action": "add", "amount": -5}),
        json!({"action": "add", "amount": 1_000_000_000}),
        json!({"action": "add", "amount": 2.5}),
        json!({"action": "add", "amount": "10"}),
        json!({"action": "add"}),
        json!({"action": "grant", "amount": 1}),
        json!({"amount": 1}),
        json!({"action": "add", "amount": 1, "bonus": true}),
        json!({"action": "add", "amount": 1, "reason": 7}),
        json!({"action": "add", "amount": 1, "reason": "x".repeat(501)}),
        json!({"action": "set", "amount": -1}),
        json!([1, 2]),
    ];
    for body in &bodies {
        let response = app.post_json("/api/credits", Some(&bearer), body, None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_request", "{body}");
        assert!(!error["error"]["message"].as_str().unwrap().is_empty());
    }
    let response = app
        .client
        .post(app.url("/api/credits"))
        .bearer_auth(&bearer)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(figures(&app.credits(ADMIN).await), (8, 8, 0, 0, 8));
    assert_eq!(app.all_entries(ADMIN).await.len(), 1);
    let (status, view) = app.change(ADMIN, json!({"action": "set", "amount": 0})).await;
    assert_eq!(status, StatusCode::OK, "set takes 0");
    assert_eq!(view["credits"]["remaining"], 0);
}
both!(bad_input_is_a_400_that_changes_nothing);

async fn history_pages_walk_every_entry_once_newest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = unique("reader");
    app.credits(&user).await;
    for amount in 1..=24 {
        let (status, _) = app.change(ADMIN, json!({"action": "add", "amount": amount, "userId": user})).await;
        assert_eq!(status, StatusCode::OK);
    }
    let bearer = token(&user);
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    let mut path = "/api/credits/history?limit=10".to_string();
    loop {
        let page: Value = app.get(&path, Some(&bearer)).await.json().await.unwrap();
        let entries = page["entries"].as_array().unwrap();
        sizes.push(entries.len());
        ids.extend(entries.iter().map(|e| e["id"].as_i64().unwrap()));
        match page["nextBefore"].as_i64() {
            Some(before) => path = format!("/api/credits/history?limit=10&before={before}"),
            None => break,
        }
    }
    assert_eq!(sizes, vec![10, 10, 5]);
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "newest first, no repeats: {ids:?}");
    let entries = app.all_entries(&user).await;
    assert_eq!(entries.last().unwrap()["kind"], "initial");
    assert_eq!(entries[0]["balanceAfter"], 8 + (1..=24).sum::<i64>());
    for pair in entries.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        assert_eq!(
            newer["balanceAfter"].as_i64().unwrap(),
            older["balanceAfter"].as_i64().unwrap() + newer["amount"].as_i64().unwrap()
        );
    }
    for bad in ["limit=0", "limit=101", "limit=abc", "before=0"] {
        let response = app.get(&format!("/api/credits/history?{bad}"), Some(&bearer)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}
both!(history_pages_walk_every_entry_once_newest_first);

async fn plain_routes_answer_in_the_contract_format(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status(), StatusCode::OK);
    let missing = app.get("/api/no-such-route", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    let page = app.client.get(app.url("/")).bearer_auth(token(ADMIN)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("data-testid=\"credits-remaining\""), "the home page shows the balance");
    // Last: the server answers 413 without reading the rest of the body and
    // closes that connection, which a request sent next on the kept-alive
    // connection could race.
    let huge = json!({"action": "deduct", "amount": 1, "reason": "x".repeat(70_000)});
    let response = app.post_json("/api/credits", Some(&token(ADMIN)), &huge, None).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "payload_too_large");
}
both!(plain_routes_answer_in_the_contract_format);

/// Pages render while other routers of the same process start (as in this
/// suite, or a process serving several listeners): building a router must
/// not leave a page's data loading suspended forever.
async fn pages_render_while_other_routers_start(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let database_url = app.service.db().url().to_string();
    let starting = (0..6).map(|_| TestApp::spawn_on(&database_url, &[]));
    let pages = (0..24).map(|_| async {
        let request = app.client.get(app.url("/")).bearer_auth(token(ADMIN)).send();
        let page = tokio::time::timeout(std::time::Duration::from_secs(30), request)
            .await
            .expect("the page answers within 30 s")
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = tokio::time::timeout(std::time::Duration::from_secs(30), page.text())
            .await
            .expect("the page finishes within 30 s")
            .unwrap();
        assert!(html.contains("data-testid=\"credits-remaining\""), "the page shows the balance");
    });
    let (started, _) = tokio::join!(join_all(starting), join_all(pages));
    for other in &started {
        assert_eq!(other.get("/healthz", None).await.status(), StatusCode::OK, "the other router serves");
    }
}
both!(pages_render_while_other_routers_start);

async fn two_server_processes_on_one_database_never_overspend(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let second = TestApp::spawn_on(first.service.db().url(), &[]).await;
    let user = unique("shared");
    first.set_balance(&user, 100).await;
    let bearer = token(&user);
    let body = json!({"action": "deduct", "amount": 10});
    let requests = (0..60).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        app.post_json("/api/credits", Some(&bearer), &body, None)
    });
    let ok = join_all(requests).await.iter().filter(|r| r.status() == StatusCode::OK).count();
    assert_eq!(ok, 10);
    assert_eq!(figures(&second.credits(&user).await), (0, 100, 100, 0, 8));
    first.assert_consistent().await;
}
both!(two_server_processes_on_one_database_never_overspend);

/// Ends every session of the PostgreSQL database at `url` (as a restart or
/// a proxy's idle timeout would), from an admin connection; how many.
async fn cut_connections(url: &str) -> i64 {
    let database = url.rsplit('/').next().unwrap().to_string();
    let mut admin =
        <sqlx::postgres::PgConnection as sqlx::Connection>::connect(&postgres_admin_url()).await.unwrap();
    sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&database)
    .fetch_one(&mut admin)
    .await
    .unwrap()
}

/// PostgreSQL connections are not pinged on every checkout (a round trip
/// per read); one that sat idle for `PG_PING_AFTER_IDLE` or longer is. So a
/// pool whose every connection was cut while idle (a database restart, a
/// proxy's idle timeout) serves the next queries from new connections
/// instead of failing them.
#[tokio::test]
async fn postgres_connections_cut_while_idle_are_replaced_before_use() {
    let url = fresh_database_url(Backend::Postgres).await;
    let db = credits::db::Db::connect(&url, 4).await.unwrap();
    let opened: Vec<_> = join_all((0..4).map(|_| db.pool.acquire())).await;
    drop(opened.into_iter().map(Result::unwrap).collect::<Vec<_>>());
    let mut cut = 0;
    while cut < 4 {
        cut += cut_connections(&url).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(credits::db::PG_PING_AFTER_IDLE + std::time::Duration::from_millis(100)).await;
    let queries = (0..8).map(|_| sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&db.pool));
    for answer in join_all(queries).await {
        assert_eq!(answer.expect("a query after the cut runs on a live connection"), 1);
    }
}

/// The group commit keeps one PostgreSQL connection per worker for good
/// (no pool checkout and return ping per batch). When the database cuts
/// those (a restart, a proxy's idle timeout), the next spends, alone and in
/// batches, begin on new connections instead of failing, and each is applied
/// once.
#[tokio::test]
async fn spends_after_the_kept_postgres_writer_connections_were_cut_still_apply_once() {
    let url = fresh_database_url(Backend::Postgres).await;
    let app = TestApp::spawn_on(&url, &[]).await;
    let users: Vec<String> = (0..8).map(|_| unique("cut")).collect();
    let spend = json!({"action": "deduct", "amount": 1, "reason": "before the cut"});
    for user in &users {
        app.set_balance(user, 100).await;
        assert_eq!(app.change(user, spend.clone()).await.0, StatusCode::OK);
    }
    let cut = cut_connections(&url).await;
    assert!(cut >= 2, "the writers' kept connections and the pool's were cut ({cut})");
    tokio::time::sleep(credits::db::PG_PING_AFTER_IDLE + std::time::Duration::from_millis(100)).await;
    // One alone, then a burst that the group commit batches.
    let after = json!({"action": "deduct", "amount": 1, "reason": "after the cut"});
    assert_eq!(app.change(&users[0], after.clone()).await.0, StatusCode::OK);
    let mut burst = Vec::new();
    for user in &users {
        for _ in 0..5 {
            burst.push(app.change(user, after.clone()));
        }
    }
    for (status, body) in join_all(burst).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for (index, user) in users.iter().enumerate() {
        let spent = 1 + 5 + usize::from(index == 0);
        let view = app.credits(user).await;
        assert_eq!(view["credits"]["remaining"], 100 - spent as i64, "{user}: {view}");
    }
    app.assert_consistent().await;
}
