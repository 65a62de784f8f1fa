//! `/test-credits`: everything the original test page offered — figures,
//! refresh, add, deduct, has_enough, signed test webhooks, the Creem self-test
//! and a log of what each action returned. Admin-only controls for admins only.

use crate::api::checkout::test_creem;
use crate::api::ui::send_test_webhook;
use crate::components::{session_now, Figures};
use crate::i18n::Key;
use crate::state::{use_credits, use_lang};
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::json;

#[component]
pub fn TestCreditsPage() -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let log = RwSignal::new(Vec::<String>::new());
    let is_admin = move || session_now().is_some_and(|s| s.is_admin);
    view! {
        <section class="card">
            <h1>{move || t(Key::TestPage)}</h1>
            <Figures />
            <CreditControls log=log />
        </section>
        <Show when=is_admin>
            <AdminTools log=log />
        </Show>
        <ActionLog log=log />
    }
}

/// Puts a line at the top of the page's log.
fn record(log: RwSignal<Vec<String>>, line: String) {
    log.update(|lines| lines.insert(0, line));
}

/// Amount, refresh, deduct, add (admins only) and has_enough, each logged.
#[component]
fn CreditControls(log: RwSignal<Vec<String>>) -> impl IntoView {
    let credits = use_credits();
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let amount = RwSignal::new(10_i64);
    let enough = RwSignal::new(None::<bool>);
    let is_admin = move || session_now().is_some_and(|s| s.is_admin);
    let change = move |action: &'static str| {
        let value = amount.get_untracked();
        let body = json!({"action": action, "amount": value, "reason": format!("test page {action}")});
        credits.run(body, move |outcome| {
            record(
                log,
                match outcome {
                    Ok(view) => format!("{action} {value} → remaining {}", view.credits.remaining),
                    Err(error) => format!("{action} {value} → {} ({})", error.code(), error.message()),
                },
            )
        });
    };
    view! {
        <div class="controls">
            <label class="amount">{move || t(Key::Amount)}
                <input type="number" min="1" data-testid="amount-input"
                    prop:value=move || amount.get().to_string()
                    on:input=move |ev| amount.set(event_target_value(&ev).parse().unwrap_or(0)) />
            </label>
            <button data-testid="refresh-credits" on:click=move |_| { credits.refresh(); record(log, "refresh".into()); }>
                {move || t(Key::Refresh)}
            </button>
            <button data-testid="deduct-credits" on:click=move |_| change("deduct")>{move || t(Key::Deduct)}</button>
            <Show when=is_admin>
                <button data-testid="add-credits" on:click=move |_| change("add")>{move || t(Key::Add)}</button>
            </Show>
            <button data-testid="has-enough" on:click=move |_| {
                let result = credits.has_enough(amount.get_untracked());
                enough.set(Some(result));
                record(log, format!("has_enough({}) → {result}", amount.get_untracked()));
            }>{move || t(Key::HasEnough)}</button>
            <span class="result" data-testid="has-enough-result">
                {move || enough.get().map(|yes| if yes { "true" } else { "false" })}
            </span>
        </div>
    }
}

/// Admins' tools: a signed test webhook per plan, and the Creem self-test.
#[component]
fn AdminTools(log: RwSignal<Vec<String>>) -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let webhook = move |plan: String| {
        spawn_local(async move {
            let outcome = send_test_webhook(plan.clone()).await;
            record(
                log,
                match outcome {
                    Ok(value) => format!("webhook {plan} → {}", value["detail"].as_str().unwrap_or_default()),
                    Err(error) => format!("webhook {plan} → {}", error.message()),
                },
            );
        });
    };
    let report = RwSignal::new(None::<String>);
    let self_test = move |_| {
        spawn_local(async move {
            let text = match test_creem().await {
                Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
                Err(error) => error.message().to_string(),
            };
            let verdict = if text.contains("\"ok\": true") { "ok" } else { "problems" };
            record(log, format!("test-creem → {verdict}"));
            report.set(Some(text));
        });
    };
    view! {
        <section class="card">
            <h2>{move || t(Key::TestWebhook)}</h2>
            <div class="controls">
                {move || session_now().map(|s| s.plans.into_iter().map(|plan| {
                    let name = plan.name.clone();
                    view! { <button data-testid=format!("test-webhook-{}", plan.name) on:click=move |_| webhook(name.clone())>
                        {plan.name.clone()}</button> }
                }).collect_view())}
                <button data-testid="test-creem" on:click=self_test>{move || t(Key::CreemReport)}</button>
            </div>
            {move || report.get().map(|text| view! { <pre class="report">{text}</pre> })}
        </section>
    }
}

/// What each action returned, newest first.
#[component]
fn ActionLog(log: RwSignal<Vec<String>>) -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    view! {
        <section class="card">
            <h2>{move || t(Key::Log)}</h2>
            <ol class="log" data-testid="action-log">
                {move || log.get().into_iter().map(|line| view! { <li>{line}</li> }).collect_view()}
            </ol>
        </section>
    }
}
