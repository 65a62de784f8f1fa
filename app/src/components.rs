//! Pieces every page shares: the header with navigation, language switch and
//! sign-in, the balance card, notices and the error line.

use crate::api::ui::{set_language, SessionInfo};
use crate::error::ApiError;
use crate::i18n::{Key, Lang};
use crate::state::{use_credits, use_lang};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;

pub fn use_session() -> Resource<Result<SessionInfo, ApiError>> {
    expect_context::<Resource<Result<SessionInfo, ApiError>>>()
}

/// The signed-in session once loaded (`None` while loading or on error).
pub fn session_now() -> Option<SessionInfo> {
    use_session().get().and_then(Result::ok)
}

#[component]
pub fn Header() -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let switch = move |_| {
        let next = lang.get_untracked().other();
        lang.set(next);
        spawn_local(async move {
            let _ = set_language(next.code().to_string()).await;
        });
    };
    view! {
        <header class="topbar">
            <A href="/" attr:class="brand">
                <span class="logo">"◎"</span>
                {move || t(Key::Brand)}
            </A>
            <nav>
                <A href="/">{move || t(Key::Home)}</A>
                <A href="/history">{move || t(Key::History)}</A>
                <A href="/test-credits">{move || t(Key::TestPage)}</A>
                <Transition fallback=|| ()>
                    {move || session_now().filter(|s| s.is_admin).map(|_| view! {
                        <A href="/admin">{move || t(Key::Admin)}</A>
                    })}
                </Transition>
            </nav>
            <div class="actions">
                <a class="lang" href=move || format!("?lang={}", lang.get().other().code())
                    data-testid="language-switch"
                    on:click=move |ev| { ev.prevent_default(); switch(()); }>
                    {move || t(Key::Language)}
                </a>
                <Transition fallback=|| ()>
                    {move || session_now().filter(|s| s.signed_in).map(|s| view! {
                        <span class="who">{s.email.clone().or(s.user_id.clone()).unwrap_or_default()}</span>
                        {s.local_accounts.then(|| view! {
                            <form method="post" action="/api/auth/sign-out" class="inline">
                                <button type="submit" class="ghost" data-testid="sign-out">{move || t(Key::SignOut)}</button>
                            </form>
                        })}
                    })}
                </Transition>
            </div>
        </header>
    }
}

/// Sign-in and sign-up forms for local accounts (plain forms: they work before WASM).
#[component]
pub fn SignIn() -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    view! {
        <section class="card auth">
            <p class="muted">{move || t(Key::SignedOut)}</p>
            <div class="auth-forms">
                <form method="post" action="/api/auth/sign-in" data-testid="sign-in-form">
                    <h2>{move || t(Key::SignIn)}</h2>
                    <label>{move || t(Key::Email)}<input type="email" name="email" required autocomplete="email" /></label>
                    <label>{move || t(Key::Password)}<input type="password" name="password" required minlength="8" autocomplete="current-password" /></label>
                    <button type="submit" class="primary">{move || t(Key::SignIn)}</button>
                </form>
                <form method="post" action="/api/auth/sign-up" data-testid="sign-up-form">
                    <h2>{move || t(Key::SignUp)}</h2>
                    <label>{move || t(Key::Email)}<input type="email" name="email" required autocomplete="email" /></label>
                    <label>{move || t(Key::Password)}<input type="password" name="password" required minlength="8" autocomplete="new-password" /></label>
                    <button type="submit">{move || t(Key::SignUp)}</button>
                </form>
            </div>
        </section>
    }
}

/// An error in words, with the buy link for a 402.
#[component]
pub fn ErrorLine(error: ApiError) -> impl IntoView {
    let lang = use_lang();
    let short = error.0.error.required.zip(error.0.error.remaining).map(|(r, have)| r - have);
    let message = error.message().to_string();
    let network = error.code() == "network_error";
    view! {
        <p class="error" data-testid="credits-error" role="alert">
            {move || match (short, network) {
                (Some(missing), _) => format!("{} {}", lang.get().amount(missing), lang.get().t(Key::NeedMore)),
                (None, true) => lang.get().t(Key::NetworkError).to_string(),
                (None, false) => message.clone(),
            }}
            {short.map(|_| view! { " " <a href="/#plans">{move || lang.get().t(Key::BuyMore)}</a> })}
        </p>
    }
}

/// The figures of the contract, with their test ids.
#[component]
pub fn Figures() -> impl IntoView {
    let credits = use_credits();
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let figure = move |pick: fn(&credits::dto::CreditsView) -> i64| {
        move || credits.credits_data().map(|view| lang.get().amount(pick(&view))).unwrap_or_default()
    };
    view! {
        <Transition fallback=move || view! { <p class="muted" data-testid="credits-loading">{t(Key::Loading)}</p> }>
            {move || credits.error().map(|error| view! { <ErrorLine error /> })}
            {move || credits.loading.get().then(|| view! { <span class="spinner" data-testid="credits-loading" aria-label="loading"></span> })}
            <dl class="figures">
                <div class="figure main"><dt>{move || t(Key::Remaining)}</dt>
                    <dd data-testid="credits-remaining">{figure(|v| v.credits.remaining)}</dd></div>
                <div class="figure"><dt>{move || t(Key::Total)}</dt>
                    <dd data-testid="credits-total">{figure(|v| v.credits.total)}</dd></div>
                <div class="figure"><dt>{move || t(Key::Used)}</dt>
                    <dd data-testid="credits-used">{figure(|v| v.credits.used)}</dd></div>
                <div class="figure"><dt>{move || t(Key::Bought)}</dt>
                    <dd data-testid="credits-bonus">{figure(|v| v.credits.bonus)}</dd></div>
                <div class="figure"><dt>{move || t(Key::Free)}</dt>
                    <dd data-testid="credits-initial">{figure(|v| v.credits.initial)}</dd></div>
                <div class="figure"><dt>{move || t(Key::Held)}</dt>
                    <dd data-testid="credits-held">{figure(|v| v.held)}</dd></div>
            </dl>
            {move || credits.credits_data().and_then(|view| view.next_expiry).map(|next| view! {
                <p class="expiry" data-testid="next-expiry">
                    {move || t(Key::NextExpiry)} ": " {lang.get().amount(next.amount)} " · " {next.at[..10].to_string()}
                </p>
            })}
        </Transition>
    }
}

/// Low, depleted and expiring notices.
#[component]
pub fn Notices() -> impl IntoView {
    let credits = use_credits();
    let lang = use_lang();
    view! {
        <Transition fallback=|| ()>
            {move || {
                let view = credits.credits_data()?;
                let low = view.credits.remaining < view.cost_per_video;
                let kind = if view.credits.remaining <= 0 { Some(Key::Depleted) } else if low { Some(Key::Low) } else { None };
                let expiring = view.notices.iter().any(|n| n.event_type == "credits.expiring");
                Some(view! {
                    {kind.map(|key| view! { <p class="notice warn" data-testid="low-balance-notice">{move || lang.get().t(key)}</p> })}
                    {expiring.then(|| view! { <p class="notice" data-testid="expiring-notice">{move || lang.get().t(Key::Expiring)}</p> })}
                })
            }}
        </Transition>
    }
}

/// Formats an RFC 3339 time as `YYYY-MM-DD HH:MM`.
pub fn short_time(rfc3339: &str) -> String {
    rfc3339.get(..16).unwrap_or(rfc3339).replace('T', " ")
}

pub fn current_lang() -> Lang {
    use_lang().get()
}
