//! One module per route. Only `/` is in the main WASM module; the other
//! pages are lazy routes: with `cargo leptos build --split` each becomes its
//! own chunk, fetched when the page is first shown (the server preloads it
//! for a page it renders), so the first load of `/` does not carry them.

pub mod admin;
pub mod history;
pub mod home;
pub mod test_credits;

use leptos::prelude::*;
use leptos_router::{lazy_route, LazyRoute};

/// A lazy route for a page component that loads its own data.
macro_rules! lazy_page {
    ($(#[$doc:meta])* $route:ident => $page:path) => {
        $(#[$doc])*
        pub struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                Self
            }

            fn view(_this: Self) -> AnyView {
                view! { <$page /> }.into_any()
            }
        }
    };
}

lazy_page!(
    /// `/history`, lazily loaded.
    HistoryRoute => history::HistoryPage
);
lazy_page!(
    /// `/test-credits`, lazily loaded.
    TestCreditsRoute => test_credits::TestCreditsPage
);
lazy_page!(
    /// `/admin`, lazily loaded.
    AdminRoute => admin::AdminPage
);
