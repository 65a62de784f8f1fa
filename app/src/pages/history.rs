//! `/history`: the ledger, newest first, a page at a time.

use crate::api::credits::credits_history;
use crate::components::{short_time, ErrorLine};
use crate::i18n::Key;
use crate::state::use_lang;
use leptos::prelude::*;

#[component]
pub fn HistoryPage() -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let before = RwSignal::new(None::<i64>);
    let page = Resource::new(move || before.get(), |before| credits_history(Some(20), before));
    view! {
        <section class="card">
            <h1>{move || t(Key::History)}</h1>
            <Transition fallback=move || view! { <p class="muted" data-testid="credits-loading">{t(Key::Loading)}</p> }>
                {move || page.get().map(|result| match result {
                    Err(error) => view! { <ErrorLine error /> }.into_any(),
                    Ok(page) => {
                        let next = page.next_before;
                        view! {
                            <table class="ledger">
                                <thead><tr>
                                    <th>{move || t(Key::When)}</th><th>{move || t(Key::Kind)}</th>
                                    <th class="num">{move || t(Key::Change)}</th><th class="num">{move || t(Key::BalanceAfter)}</th>
                                    <th>{move || t(Key::Reason)}</th>
                                </tr></thead>
                                <tbody>
                                    {page.entries.into_iter().map(|entry| view! {
                                        <tr data-testid="history-row" class=format!("kind-{}", entry.kind)>
                                            <td>{short_time(&entry.created_at)}</td>
                                            <td><span class="tag">{entry.kind.clone()}</span></td>
                                            <td class="num">{move || {
                                                let sign = if entry.amount > 0 { "+" } else { "" };
                                                format!("{sign}{}", lang.get().amount(entry.amount))
                                            }}</td>
                                            <td class="num">{move || lang.get().amount(entry.balance_after)}</td>
                                            <td class="muted">{entry.reason.clone().unwrap_or_default()}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            {next.map(|id| view! {
                                <button class="ghost" data-testid="history-older" on:click=move |_| before.set(Some(id))>
                                    {move || t(Key::Older)}
                                </button>
                            })}
                        }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}
