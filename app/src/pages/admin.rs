//! `/admin`: user search, a user's figures and ledger, adjust/set with a reason,
//! batch upload, webhook deliveries, the consistency check and a daily chart.

use crate::api::admin;
use crate::api::credits::post_credits;
use crate::components::{short_time, ErrorLine};
use crate::error::ApiError;
use crate::i18n::Key;
use crate::state::use_lang;
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{json, Value};

#[component]
pub fn AdminPage() -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    view! {
        <h1>{move || t(Key::Admin)}</h1>
        <Users />
        <StatsChart />
        <div class="two-columns">
            <Batch />
            <CheckAndDeliveries />
        </div>
    }
}

#[component]
fn Users() -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let query = RwSignal::new(String::new());
    // Read in the browser only: `/api/admin/*` are plain routes, not server functions.
    let found = LocalResource::new(move || admin::search_users(query.get()));
    let selected = RwSignal::new(None::<String>);
    let detail = LocalResource::new(move || {
        let id = selected.get();
        async move {
            match id {
                Some(id) => admin::user(id).await.map(Some),
                None => Ok(None),
            }
        }
    });
    view! {
        <section class="card">
            <h2>{move || t(Key::Search)}</h2>
            <input type="search" data-testid="admin-search" placeholder="user id / email"
                on:input=move |ev| query.set(event_target_value(&ev)) />
            <Transition fallback=|| ()>
                <ul class="users">
                    {move || found.get().and_then(Result::ok).map(|found| {
                        found.users.into_iter().map(|found| {
                            let id = found.user.user_id;
                            let label = format!("{} · {}", id, found.user.email.as_deref().unwrap_or("-"));
                            let remaining = found.user.credits.remaining;
                            view! {
                                <li><button class="link" data-testid="admin-user" on:click=move |_| selected.set(Some(id.clone()))>
                                    {label}</button> <span class="muted">{move || lang.get().amount(remaining)}</span></li>
                            }
                        }).collect_view()
                    })}
                </ul>
                {move || detail.get().map(|result| match result {
                    Err(error) => view! { <ErrorLine error /> }.into_any(),
                    Ok(None) => ().into_any(),
                    Ok(Some(value)) => view! { <UserDetail value on_change=move || detail.refetch() /> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn UserDetail(value: Value, on_change: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let user_id = value["user"]["userId"].as_str().unwrap_or_default().to_string();
    let figures = value["user"]["credits"].clone();
    let action = RwSignal::new("add".to_string());
    let amount = RwSignal::new(0_i64);
    let reason = RwSignal::new(String::new());
    let failure = RwSignal::new(None::<ApiError>);
    let apply = {
        let user_id = user_id.clone();
        move |_| {
            let body = json!({"action": action.get_untracked(), "amount": amount.get_untracked(),
                              "reason": reason.get_untracked(), "userId": user_id});
            let on_change = on_change.clone();
            let body = body.as_object().cloned().unwrap_or_default();
            // Not through `use_credits`: that hook holds the admin's own figures.
            spawn_local(async move {
                match post_credits(body).await {
                    Ok(_) => failure.set(None),
                    Err(error) => failure.set(Some(error)),
                }
                on_change();
            });
        }
    };
    let rows = value["ledger"].as_array().cloned().unwrap_or_default();
    view! {
        <div class="detail" data-testid="admin-user-detail">
            <h3>{user_id.clone()}</h3>
            <p class="figures-line">
                {["remaining", "total", "used", "bonus", "initial"].map(|name| {
                    let figure = figures[name].as_i64().unwrap_or(0);
                    view! { <span data-testid=format!("admin-{name}")><b>{name}</b> " " {move || lang.get().amount(figure)}</span> }
                })}
            </p>
            <form class="controls" on:submit=|ev| ev.prevent_default()>
                <select data-testid="admin-action" on:change=move |ev| action.set(event_target_value(&ev))>
                    <option value="add">{move || t(Key::Add)}</option>
                    <option value="deduct">{move || t(Key::Deduct)}</option>
                    <option value="set">{move || t(Key::Set)}</option>
                </select>
                <input type="number" min="0" data-testid="admin-amount" on:input=move |ev| amount.set(event_target_value(&ev).parse().unwrap_or(0)) />
                <input type="text" required data-testid="admin-reason" placeholder=move || t(Key::Reason)
                    on:input=move |ev| reason.set(event_target_value(&ev)) />
                <button class="primary" data-testid="admin-apply" on:click=apply>{move || t(Key::Apply)}</button>
            </form>
            {move || failure.get().map(|error| view! { <ErrorLine error /> })}
            <table class="ledger">
                <tbody>
                    {rows.into_iter().map(|entry| view! {
                        <tr>
                            <td>{short_time(entry["createdAt"].as_str().unwrap_or_default())}</td>
                            <td><span class="tag">{entry["kind"].as_str().unwrap_or_default().to_string()}</span></td>
                            <td class="num">{entry["amount"].as_i64().unwrap_or(0)}</td>
                            <td class="num">{entry["balanceAfter"].as_i64().unwrap_or(0)}</td>
                            <td class="muted">{entry["reason"].as_str().unwrap_or_default().to_string()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// Granted, purchased and spent per day, drawn as grouped SVG bars.
#[component]
fn StatsChart() -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let from = RwSignal::new(String::new());
    let to = RwSignal::new(String::new());
    let report = LocalResource::new(move || {
        let (from, to) = (from.get(), to.get());
        async move {
            if from.is_empty() || to.is_empty() {
                return Ok(None);
            }
            admin::stats(from, to).await.map(Some)
        }
    });
    view! {
        <section class="card">
            <h2>{move || t(Key::Stats)}</h2>
            <div class="controls">
                <input type="date" data-testid="stats-from" on:change=move |ev| from.set(event_target_value(&ev)) />
                <input type="date" data-testid="stats-to" on:change=move |ev| to.set(event_target_value(&ev)) />
                <span class="legend"><i class="granted"></i>{move || t(Key::Granted)} <i class="purchased"></i>{move || t(Key::Purchased)} <i class="spent"></i>{move || t(Key::Spent)}</span>
            </div>
            <Transition fallback=|| ()>
                {move || report.get().map(|result| match result {
                    Err(error) => view! { <ErrorLine error /> }.into_any(),
                    Ok(None) => ().into_any(),
                    Ok(Some(value)) => chart(value).into_any(),
                })}
            </Transition>
        </section>
    }
}

fn chart(report: Value) -> impl IntoView {
    let days = report["days"].as_array().cloned().unwrap_or_default();
    let series = ["granted", "purchased", "spent"];
    let max =
        days.iter().flat_map(|day| series.map(|s| day[s].as_i64().unwrap_or(0))).max().unwrap_or(0).max(1);
    // Integer arithmetic in tenths of a unit (no float formatting in the WASM).
    let (width, height, pad) = (7200_i64, 2200_i64, 240_i64);
    let slot = (width - pad) / days.len().max(1) as i64;
    let bar = (slot / 4).max(10);
    let bars = days
        .iter()
        .enumerate()
        .flat_map(|(index, day)| {
            series.iter().enumerate().map(move |(k, name)| {
                let value = day[*name].as_i64().unwrap_or(0);
                let h = (height - pad) * value.clamp(0, max) / max;
                let x = pad + index as i64 * slot + k as i64 * bar;
                let title = format!("{} {name}: {value}", day["date"].as_str().unwrap_or_default());
                view! {
                    <rect class=*name x=tenths(x) y=tenths(height - pad - h)
                        width=tenths(bar * 9 / 10) height=tenths(h)><title>{title}</title></rect>
                }
            })
        })
        .collect_view();
    view! {
        <svg class="chart" data-testid="stats-chart" viewBox=format!("0 0 {} {}", tenths(width), tenths(height)) role="img">
            <line x1=tenths(pad) y1=tenths(height - pad) x2=tenths(width) y2=tenths(height - pad) class="axis" />
            <text x="0" y="12" class="axis-label">{max}</text>
            {bars}
        </svg>
    }
}

/// A non-negative length in tenths, as SVG reads it: `123` → `12.3`.
fn tenths(value: i64) -> String {
    format!("{}.{}", value / 10, value % 10)
}

#[component]
fn Batch() -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let csv = RwSignal::new("userId,action,amount,reason\n".to_string());
    let result = RwSignal::new(None::<String>);
    let run = move |_| {
        spawn_local(async move {
            let text = match admin::adjust_csv(csv.get_untracked()).await {
                Ok(report) => report
                    .results
                    .iter()
                    .map(|row| {
                        let outcome = match (&row.error, row.ok) {
                            (_, true) => "ok",
                            (Some(error), false) => error.message.as_str(),
                            (None, false) => "",
                        };
                        format!("#{} {} {outcome}", row.line, row.user_id)
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                Err(error) => error.message().to_string(),
            };
            result.set(Some(text));
        });
    };
    view! {
        <section class="card">
            <h2>{move || t(Key::Batch)}</h2>
            <input type="file" accept=".csv,text/csv" data-testid="batch-file" on:change=move |ev| read_file(ev, csv) />
            <textarea rows="5" data-testid="batch-input" prop:value=move || csv.get()
                on:input=move |ev| csv.set(event_target_value(&ev))></textarea>
            <button data-testid="batch-apply" on:click=run>{move || t(Key::Apply)}</button>
            {move || result.get().map(|text| view! { <pre class="report" data-testid="batch-result">{text}</pre> })}
        </section>
    }
}

#[component]
fn CheckAndDeliveries() -> impl IntoView {
    let lang = use_lang();
    let t = move |key| lang.get().t(key);
    let check = RwSignal::new(None::<String>);
    let run_check = move |_| {
        spawn_local(async move {
            let text = match admin::check().await {
                Ok(value) => format!(
                    "ok: {} · {} accounts · {} entries · {} problems",
                    value["ok"],
                    value["accountsChecked"],
                    value["entriesChecked"],
                    value["discrepancies"].as_array().map_or(0, Vec::len)
                ),
                Err(error) => error.message().to_string(),
            };
            check.set(Some(text));
        });
    };
    let deliveries = LocalResource::new(|| admin::webhooks(20));
    view! {
        <section class="card">
            <h2>{move || t(Key::Check)}</h2>
            <button data-testid="run-check" on:click=run_check>{move || t(Key::Check)}</button>
            {move || check.get().map(|text| view! { <p data-testid="check-result">{text}</p> })}
            <h2>{move || t(Key::Deliveries)}</h2>
            <Transition fallback=|| ()>
                <ul class="deliveries">
                    {move || deliveries.get().and_then(Result::ok).map(|value| {
                        value["deliveries"].as_array().cloned().unwrap_or_default().into_iter().map(|d| view! {
                            <li><span class=format!("tag {}", d["outcome"].as_str().unwrap_or(""))>{d["outcome"].as_str().unwrap_or("").to_string()}</span>
                                " " {d["provider"].as_str().unwrap_or("").to_string()} " "
                                {d["eventType"].as_str().unwrap_or("-").to_string()} " "
                                <span class="muted">{d["reason"].as_str().unwrap_or("").to_string()}</span></li>
                        }).collect_view()
                    })}
                </ul>
                <ul class="deliveries" data-testid="rejected-counts">
                    {move || deliveries.get().and_then(Result::ok).map(|value| {
                        value["rejected"].as_array().cloned().unwrap_or_default().into_iter().map(|r| view! {
                            <li><span class="tag rejected">{format!("rejected × {}", r["count"])}</span>
                                " " {r["provider"].as_str().unwrap_or("").to_string()} " "
                                <span class="muted">{r["reason"].as_str().unwrap_or("").to_string()}</span></li>
                        }).collect_view()
                    })}
                </ul>
            </Transition>
        </section>
    }
}

/// Loads an uploaded CSV file into the batch text.
fn read_file(ev: leptos::ev::Event, csv: RwSignal<String>) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let Some(input) = ev.target().and_then(|target| target.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(file) = input.files().and_then(|files| files.get(0)) else { return };
        spawn_local(async move {
            if let Ok(text) = wasm_bindgen_futures::JsFuture::from(file.text()).await {
                csv.set(text.as_string().unwrap_or_default());
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (ev, csv);
}
