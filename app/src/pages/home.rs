//! `/`: the signed-in user's balance.

use crate::api::credits::get_credits;
use leptos::prelude::*;

#[component]
pub fn HomePage() -> impl IntoView {
    let credits = Resource::new(|| (), |_| get_credits(None));
    view! {
        <section class="card balance">
            <h1>"Your credits"</h1>
            <Suspense fallback=|| view! { <p data-testid="credits-loading">"Loading…"</p> }>
                {move || credits.get().map(|result| match result {
                    Ok(view) => view! {
                        <dl class="figures">
                            <div class="figure main"><dt>"Remaining"</dt>
                                <dd data-testid="credits-remaining">{view.credits.remaining}</dd></div>
                            <div class="figure"><dt>"Total"</dt>
                                <dd data-testid="credits-total">{view.credits.total}</dd></div>
                            <div class="figure"><dt>"Used"</dt>
                                <dd data-testid="credits-used">{view.credits.used}</dd></div>
                            <div class="figure"><dt>"Bought"</dt>
                                <dd data-testid="credits-bonus">{view.credits.bonus}</dd></div>
                            <div class="figure"><dt>"Free"</dt>
                                <dd data-testid="credits-initial">{view.credits.initial}</dd></div>
                            <div class="figure"><dt>"Held"</dt>
                                <dd data-testid="credits-held">{view.held}</dd></div>
                        </dl>
                    }.into_any(),
                    Err(error) => view! {
                        <p class="error" data-testid="credits-error">{error.message().to_string()}</p>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}
