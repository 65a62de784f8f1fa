//! The ledger against a model: random sequences of adds, deducts and sets go
//! through the real service and database and through `Figures::apply`; after
//! every step the figures agree, and at the end `credits check` is clean.

use crate::both;
use crate::support::{unique, Backend, TestApp, ADMIN};
use credits::auth::Principal;
use credits::ledger::{Delta, Figures};
use credits::service::ServiceError;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

#[derive(Debug, Clone)]
enum Op {
    Deduct(i64),
    Add(i64),
    Set(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1i64..40).prop_map(Op::Deduct),
        2 => (1i64..60).prop_map(Op::Add),
        1 => (0i64..80).prop_map(Op::Set),
    ]
}

fn principal(user_id: &str, is_admin: bool) -> Principal {
    Principal::user(user_id, None, None, is_admin)
}

async fn the_ledger_matches_its_model(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut runner = TestRunner::new(Config { cases: 12, failure_persistence: None, ..Config::default() });
    let strategy = proptest::collection::vec(op(), 1..25);
    let handle = tokio::runtime::Handle::current();
    let admin = principal(ADMIN, true);
    runner
        .run(&strategy, |ops| {
            let user = unique("model");
            let caller = principal(&user, false);
            let service = app.service.clone();
            let admin = admin.clone();
            tokio::task::block_in_place(|| {
                handle.block_on(async move {
                    let mut model = Figures::default().apply(&Delta::initial(8)).unwrap();
                    service.credits_view(&caller, None).await.unwrap();
                    for op in ops {
                        let (who, body, delta) = match op {
                            Op::Deduct(n) => {
                                (&caller, json!({"action":"deduct","amount":n}), Some(Delta::spend(n)))
                            }
                            Op::Add(n) => (
                                &admin,
                                json!({"action":"add","amount":n,"userId":user}),
                                Some(Delta::adjust(n)),
                            ),
                            Op::Set(n) => (
                                &admin,
                                json!({"action":"set","amount":n,"userId":user}),
                                Delta::set_to(&model, n),
                            ),
                        };
                        let outcome = service.change_credits(who, body.as_object().unwrap(), None).await;
                        let expected = match delta {
                            Some(delta) => model.apply(&delta),
                            None => Ok(model),
                        };
                        match (outcome, expected) {
                            (Ok(view), Ok(next)) => {
                                model = next;
                                prop_assert_eq!(view.value.credits, model.as_dto());
                            }
                            (Err(ServiceError::Insufficient { required, remaining }), Err(_)) => {
                                prop_assert_eq!(remaining, model.remaining);
                                prop_assert!(required > remaining);
                            }
                            (got, want) => {
                                prop_assert!(false, "service {:?} but model {:?}", got, want)
                            }
                        }
                    }
                    let report = service.check().await.unwrap();
                    prop_assert!(report.ok, "{:?}", report);
                    Ok(())
                })
            })
        })
        .unwrap();
}
both!(the_ledger_matches_its_model);

#[derive(Debug, Clone)]
enum TimedOp {
    Deduct(i64),
    AddExpiring { amount: i64, ms: i64 },
    AddLater { amount: i64, ms: i64 },
    Hold(i64),
    Wait(u64),
}

fn timed_op() -> impl Strategy<Value = TimedOp> {
    prop_oneof![
        3 => (1i64..30).prop_map(TimedOp::Deduct),
        2 => ((1i64..40), (50i64..400)).prop_map(|(amount, ms)| TimedOp::AddExpiring { amount, ms }),
        1 => ((1i64..40), (50i64..300)).prop_map(|(amount, ms)| TimedOp::AddLater { amount, ms }),
        1 => (1i64..20).prop_map(TimedOp::Hold),
        2 => (0u64..250).prop_map(TimedOp::Wait),
    ]
}

/// As time passes grants start and expire; after every step the figures keep
/// the contract's identities and `credits check` (grants included) is clean,
/// and once everything has expired only the never-expiring credits remain.
async fn the_ledger_keeps_its_invariants_as_time_passes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut runner = TestRunner::new(Config { cases: 5, failure_persistence: None, ..Config::default() });
    let strategy = proptest::collection::vec(timed_op(), 1..14);
    let handle = tokio::runtime::Handle::current();
    runner
        .run(&strategy, |ops| {
            let user = unique("timed");
            let caller = principal(&user, false);
            let admin = principal(ADMIN, true);
            let service = app.service.clone();
            tokio::task::block_in_place(|| {
                handle.block_on(async move {
                    service.credits_view(&caller, None).await.unwrap();
                    let mut holds = Vec::new();
                    for op in ops {
                        let at = |ms: i64| (chrono::Utc::now() + chrono::Duration::milliseconds(ms)).to_rfc3339();
                        let result = match op {
                            TimedOp::Deduct(n) => service
                                .change_credits(&caller, json!({"action":"deduct","amount":n}).as_object().unwrap(), None)
                                .await
                                .map(|_| ()),
                            TimedOp::AddExpiring { amount, ms } => {
                                let body = json!({"action":"add","amount":amount,"userId":user,"expiresAt":at(ms)});
                                service.change_credits(&admin, body.as_object().unwrap(), None).await.map(|_| ())
                            }
                            TimedOp::AddLater { amount, ms } => {
                                let body = json!({"action":"add","amount":amount,"userId":user,"effectiveAt":at(ms)});
                                service.change_credits(&admin, body.as_object().unwrap(), None).await.map(|_| ())
                            }
                            TimedOp::Hold(n) => {
                                let body = json!({"amount": n, "ttlSeconds": 1});
                                service.create_hold(&caller, body.as_object().unwrap(), None).await.map(|hold| {
                                    holds.push(hold.value.hold_id);
                                })
                            }
                            TimedOp::Wait(ms) => {
                                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                                Ok(())
                            }
                        };
                        match result {
                            Ok(()) | Err(ServiceError::Insufficient { .. }) => {}
                            Err(error) => prop_assert!(false, "unexpected error {:?}", error),
                        }
                        let before = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                        let view = service.credits_view(&caller, None).await.unwrap();
                        let c = view.credits;
                        prop_assert_eq!(c.remaining + view.held + c.used, c.total);
                        prop_assert!(c.remaining >= 0, "a spend or hold never overdraws");
                        // Grants that had started before the read count; later ones may or may not.
                        let started: i64 =
                            view.grants.iter().filter(|g| g.effective_at <= before).map(|g| g.remaining).sum();
                        let listed: i64 = view.grants.iter().map(|g| g.remaining).sum();
                        prop_assert!(started <= c.remaining && c.remaining <= listed, "{} <= {} <= {}", started, c.remaining, listed);
                        let report = service.check().await.unwrap();
                        prop_assert!(report.ok, "{:?}", report);
                    }
                    // Let every hold and expiring grant run out, then only the sign-up grant's rest remains.
                    // (Polled, not one fixed sleep: a loaded machine may sweep a little late.)
                    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
                    let mut view = service.credits_view(&caller, None).await.unwrap();
                    for _ in 0..50 {
                        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                        let settled = view.held == 0
                            && view.grants.iter().all(|g| g.expires_at.is_none() && g.effective_at < now);
                        if settled {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        view = service.credits_view(&caller, None).await.unwrap();
                    }
                    prop_assert_eq!(view.held, 0);
                    let never_expiring: i64 = view.grants.iter().filter(|g| g.expires_at.is_none()).map(|g| g.remaining).sum();
                    prop_assert_eq!(view.credits.remaining, never_expiring);
                    prop_assert!(service.check().await.unwrap().ok);
                    Ok(())
                })
            })
        })
        .unwrap();
}
both!(the_ledger_keeps_its_invariants_as_time_passes);
