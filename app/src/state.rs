//! `use_credits()`: the reactive credits of the signed-in user, like the
//! original `useCredits` hook: `credits_data`, `loading`, `error`, `refresh`,
//! `add`, `deduct`, `has_enough`. Server-rendered from a resource, then kept
//! live by `/api/credits/events` in the browser.

use crate::api::credits::{get_credits, post_credits};
use crate::error::ApiError;
use crate::i18n::Lang;
use credits::dto::CreditsView;
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{json, Map, Value};

#[derive(Clone, Copy)]
pub struct UseCredits {
    initial: Resource<Result<CreditsView, ApiError>>,
    live: RwSignal<Option<CreditsView>>,
    failure: RwSignal<Option<ApiError>>,
    /// True while a refresh or change is in flight.
    pub loading: RwSignal<bool>,
}

impl UseCredits {
    fn new() -> Self {
        let hook = Self {
            initial: Resource::new(|| (), |_| get_credits(None)),
            live: RwSignal::new(None),
            failure: RwSignal::new(None),
            loading: RwSignal::new(false),
        };
        #[cfg(feature = "hydrate")]
        hook.listen();
        hook
    }

    /// The latest figures: pushed or fetched, else the server-rendered ones.
    pub fn credits_data(&self) -> Option<CreditsView> {
        self.live.get().or_else(|| self.initial.get().and_then(Result::ok))
    }

    /// The last error, if the last call failed.
    pub fn error(&self) -> Option<ApiError> {
        self.failure.get().or_else(|| match self.live.get() {
            Some(_) => None,
            None => self.initial.get().and_then(Result::err),
        })
    }

    /// The server-rendered load is still running.
    pub fn first_load(&self) -> bool {
        self.initial.get().is_none() && self.live.get().is_none()
    }

    pub fn has_enough(&self, amount: i64) -> bool {
        self.credits_data().is_some_and(|view| view.credits.remaining >= amount)
    }

    /// Fetches again; network errors retry with backoff (0.5 s, 1 s, 2 s, 4 s).
    pub fn refresh(&self) {
        let hook = *self;
        hook.loading.set(true);
        spawn_local(async move {
            for delay_ms in [0u32, 500, 1000, 2000, 4000] {
                sleep(delay_ms).await;
                match get_credits(None).await {
                    Ok(view) => {
                        hook.live.set(Some(view));
                        hook.failure.set(None);
                        break;
                    }
                    Err(error) if error.code() == "network_error" => hook.failure.set(Some(error)),
                    Err(error) => {
                        hook.failure.set(Some(error));
                        break;
                    }
                }
            }
            hook.loading.set(false);
        });
    }

    pub fn add(&self, amount: i64, reason: String) {
        self.change(json!({"action": "add", "amount": amount, "reason": reason}));
    }

    pub fn deduct(&self, amount: i64, reason: String) {
        self.change(json!({"action": "deduct", "amount": amount, "reason": reason}));
    }

    /// Sends one change; the answer (or its error) becomes the hook's state.
    pub fn change(&self, body: Value) {
        self.run(body, |_| ());
    }

    /// Like `change`, then calls `done` with the outcome (for logs).
    pub fn run(&self, body: Value, done: impl FnOnce(Result<CreditsView, ApiError>) + 'static) {
        let hook = *self;
        let body: Map<String, Value> = body.as_object().cloned().unwrap_or_default();
        hook.loading.set(true);
        spawn_local(async move {
            let outcome = post_credits(body).await;
            match &outcome {
                Ok(view) => {
                    hook.live.set(Some(view.clone()));
                    hook.failure.set(None);
                }
                Err(error) => hook.failure.set(Some(error.clone())),
            }
            hook.loading.set(false);
            done(outcome);
        });
    }

    /// Subscribes to the caller's live figures once they are signed in.
    #[cfg(feature = "hydrate")]
    fn listen(&self) {
        let (live, initial) = (self.live, self.initial);
        let subscribed = StoredValue::new(false);
        Effect::new(move |_| {
            let signed_in = matches!(initial.get(), Some(Ok(_)));
            if !signed_in || subscribed.get_value() {
                return;
            }
            subscribed.set_value(true);
            spawn_local(follow_events(live));
        });
    }
}

/// Follows `/api/credits/events` for as long as the page lives. The server
/// ends a stream when its session token expires; the browser then reconnects
/// by itself with the session it has by then. When a reconnect is refused
/// (say the cookie was not refreshed yet) the browser gives up on that
/// EventSource, so a new one is opened after a pause that doubles from 1 s
/// to 30 s and starts over once events flow again.
#[cfg(feature = "hydrate")]
async fn follow_events(live: RwSignal<Option<CreditsView>>) {
    use futures::StreamExt;
    use gloo_net::eventsource::futures::EventSource;
    let mut pause_ms = 1_000;
    loop {
        if let Ok(mut source) = EventSource::new("/api/credits/events") {
            if let Ok(mut stream) = source.subscribe("credits") {
                while let Some(Ok((_, message))) = stream.next().await {
                    pause_ms = 1_000;
                    let parsed = message.data().as_string().and_then(|text| serde_json::from_str(&text).ok());
                    if let Some(view) = parsed {
                        live.set(Some(view));
                    }
                }
            }
            source.close();
        }
        sleep(pause_ms).await;
        pause_ms = (pause_ms * 2).min(30_000);
    }
}

async fn sleep(ms: u32) {
    #[cfg(feature = "hydrate")]
    if ms > 0 {
        gloo_timers::future::TimeoutFuture::new(ms).await;
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = ms;
}

/// The app-wide credits hook (one per page, shared through context).
pub fn use_credits() -> UseCredits {
    match use_context::<UseCredits>() {
        Some(hook) => hook,
        None => {
            let hook = UseCredits::new();
            provide_context(hook);
            hook
        }
    }
}

/// The UI language, shared through context.
pub fn use_lang() -> RwSignal<Lang> {
    expect_context::<RwSignal<Lang>>()
}

/// The language this request renders in: the `lang` cookie or `?lang=`, else
/// `Accept-Language` (server); the `<html lang>` the server wrote (browser).
pub fn initial_lang() -> Lang {
    #[cfg(feature = "ssr")]
    {
        let parts = use_context::<http::request::Parts>();
        let headers = parts.as_ref().map(|parts| parts.headers.clone()).unwrap_or_default();
        let query = parts.as_ref().and_then(|parts| parts.uri.query().map(String::from)).unwrap_or_default();
        let from_query = query.split('&').find_map(|pair| pair.strip_prefix("lang=")).and_then(Lang::parse);
        let from_cookie = credits::auth::cookie(&headers, "lang").and_then(Lang::parse);
        let accept = headers.get(http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
        from_query.or(from_cookie).unwrap_or_else(|| Lang::from_accept_language(accept))
    }
    #[cfg(not(feature = "ssr"))]
    {
        document()
            .document_element()
            .and_then(|element| element.get_attribute("lang"))
            .and_then(|code| Lang::parse(&code))
            .unwrap_or_default()
    }
}
