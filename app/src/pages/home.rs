//! `/`: balance, notices, plans to buy, and "generate video".

use crate::api::checkout::create_checkout;
use crate::api::ui::generate_video;
use crate::components::{session_now, use_session, ErrorLine, Figures, Notices, SignIn};
use crate::error::ApiError;
use crate::i18n::Key;
use crate::state::{use_credits, use_lang};
use leptos::prelude::*;
use leptos::task::spawn_local;

#[component]
pub fn HomePage() -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let session = use_session();
    view! {
        <Transition fallback=move || view! { <p class="muted">{t(Key::Loading)}</p> }>
            {move || session.get().map(|result| {
                let signed_in = result.as_ref().is_ok_and(|s| s.signed_in);
                let local = result.as_ref().is_ok_and(|s| s.local_accounts);
                if signed_in {
                    view! { <Balance /> }.into_any()
                } else if local {
                    view! { <SignIn /> }.into_any()
                } else {
                    view! {
                        <section class="card"><h1>{move || t(Key::YourCredits)}</h1>
                            <Figures /></section>
                    }.into_any()
                }
            })}
        </Transition>
    }
}

#[component]
fn Balance() -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    view! {
        <Notices />
        <section class="card balance">
            <h1>{move || t(Key::YourCredits)}</h1>
            <Figures />
        </section>
        <Generate />
        <Plans />
    }
}

#[component]
fn Generate() -> impl IntoView {
    let credits = use_credits();
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let busy = RwSignal::new(false);
    let result = RwSignal::new(None::<Result<String, ApiError>>);
    let cost = move || session_now().map(|s| s.cost_per_video).unwrap_or(10);
    let generate = move |_| {
        busy.set(true);
        spawn_local(async move {
            let outcome = start_video().await;
            if outcome.is_ok() {
                credits.refresh();
            }
            result.set(Some(outcome));
            busy.set(false);
        });
    };
    view! {
        <section class="card generate">
            <div>
                <h2>{move || t(Key::Generate)}</h2>
                <p class="muted">{move || format!("{} {} {}", t(Key::Costs), lang.get().amount(cost()), t(Key::CreditsWord))}</p>
            </div>
            <button class="primary big" data-testid="generate-video" on:click=generate
                disabled=move || busy.get()>
                {move || if busy.get() { t(Key::Generating) } else { t(Key::Generate) }}
            </button>
            {move || result.get().map(|outcome| match outcome {
                Ok(hold) => view! { <p class="ok" data-testid="video-result">{t(Key::VideoReady)} " · " <code>{hold}</code></p> }.into_any(),
                Err(error) => view! { <ErrorLine error /> }.into_any(),
            })}
        </section>
    }
}

#[component]
fn Plans() -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let failure = RwSignal::new(None::<ApiError>);
    let buy = move |plan: String| {
        spawn_local(async move {
            match checkout_url(plan).await {
                Ok(url) => {
                    let _ = window().location().set_href(&url);
                }
                Err(error) => failure.set(Some(error)),
            }
        });
    };
    view! {
        <section class="plans" id="plans">
            <h2>{move || t(Key::Plans)}</h2>
            <div class="plan-grid">
                {move || session_now().map(|session| session.plans.into_iter().map(|plan| {
                    let name = plan.name.clone();
                    let test_id = format!("buy-{}", plan.name);
                    view! {
                        <article class="card plan">
                            <h3>{plan.name.clone()}</h3>
                            <p class="plan-credits">{move || lang.get().amount(plan.credits)} " " {move || t(Key::CreditsWord)}</p>
                            <p class="plan-price">{move || lang.get().price(plan.price_cents)}</p>
                            <button class="primary" data-testid=test_id on:click=move |_| buy(name.clone())>
                                {move || t(Key::Buy)}
                            </button>
                        </article>
                    }
                }).collect_view())}
            </div>
            {move || failure.get().map(|error| view! { <ErrorLine error /> })}
        </section>
    }
}

// The two actions of this page are lazy functions: their code (the server
// function's request and the parsing of its answer) is a chunk of its own,
// fetched on the first click, which keeps it out of the first load of `/`.

/// Starts a video (holds its cost); answers the hold's id.
#[lazy]
async fn start_video() -> Result<String, ApiError> {
    generate_video().await.map(|video| video.hold_id)
}

/// Creates the Creem checkout for a plan; answers where to send the browser.
#[lazy]
async fn checkout_url(plan: String) -> Result<String, ApiError> {
    let mut body = serde_json::Map::new();
    body.insert("plan".into(), serde_json::Value::String(plan));
    create_checkout(body).await.map(|checkout| checkout.checkout_url)
}
