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
