//! The Leptos application: pages, the `#[server]` functions behind the credits
//! and user-sync endpoints, and the error type they answer with.

pub mod api;
pub mod components;
pub mod error;
pub mod i18n;
pub mod pages;
pub mod state;

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, Lazy, SsrMode};

/// The HTML document around the app (server-rendered).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let lang = state::initial_lang();
    view! {
        <!DOCTYPE html>
        <html lang=lang.code()>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                // In the shell (server-only) rather than through leptos_meta:
                // the title and stylesheet never change, and leaving
                // leptos_meta out keeps its code out of the WASM.
                <title>"Credits"</title>
                <link rel="stylesheet" id="leptos" href="/pkg/credits.css" />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_context(RwSignal::new(state::initial_lang()));
    provide_context(Resource::new(|| (), |_| api::ui::get_session()));
    state::use_credits();
    // Async rendering: the server waits for the page's data (one view
    // statement and the session, both in-process) and sends complete HTML in
    // one piece, so a page reads (and its forms work) before the WASM has
    // loaded, or without it; one piece is also one gzip stream and one write,
    // cheaper than the many small writes of in-order streaming.
    view! {
        <Router>
            <components::Header />
            <main>
                <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                    <Route path=path!("/") view=pages::home::HomePage ssr=SsrMode::Async />
                    <Route path=path!("/history") view={Lazy::<pages::HistoryRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/test-credits") view={Lazy::<pages::TestCreditsRoute>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin") view={Lazy::<pages::AdminRoute>::new()} ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
    }
}
