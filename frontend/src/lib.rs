//! The browser entry point: hydrate the server-rendered app.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    use leptos::prelude::*;
    // Panic messages in the console in debug builds only: the hook and the
    // message formatting it keeps cost ~1 KB of the release first load.
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
    // Asynchronous hydration: a lazily loaded page (its own WASM chunk)
    // hydrates once its chunk has arrived.
    _ = any_spawner::Executor::init_wasm_bindgen();
    leptos::task::spawn_local(async {
        let owner =
            leptos::mount::hydrate_from_async(document().body().expect("a body"), credits_app::App).await;
        owner.forget();
        // Tests (and curious users) can tell when the page has become interactive.
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}
