//! `GET/POST /api/credits` and `GET /api/credits/history`.

use crate::error::ApiError;
use credits::dto::{CreditsView, HistoryPage};
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};
use serde_json::{Map, Value};

/// The caller's figures and recent entries; creates the account on first use.
/// Admins and API keys may pass `?userId=` to read an existing user.
#[server(prefix = "/api", endpoint = "credits", input = GetUrl, output = crate::api::codec::JsonText)]
pub async fn get_credits(
    #[server(default)]
    #[server(rename = "userId")]
    user_id: Option<String>,
) -> Result<CreditsView, ApiError> {
    use super::{caller, fail, service};
    let service = service()?;
    let caller = caller(&service).await?;
    service.credits_view(&caller, user_id.as_deref()).await.map_err(fail)
}

/// `{"action":"add"|"deduct"|"set","amount","reason"?,"userId"?}`, honouring
/// `Idempotency-Key`. The body arrives as a JSON object and is parsed strictly
/// by the core, so unknown fields and bad amounts get the contract's 400.
#[server(prefix = "/api", endpoint = "credits", input = Json, output = crate::api::codec::JsonText)]
pub async fn post_credits(#[server(flatten)] body: Map<String, Value>) -> Result<CreditsView, ApiError> {
    use super::{caller, fail, request_headers, service, set_header};
    let service = service()?;
    let caller = caller(&service).await?;
    let headers = request_headers();
    let key = match headers.get("idempotency-key").map(|value| value.to_str()) {
        Some(Ok(key)) => Some(key.to_string()),
        Some(Err(_)) => {
            let error = credits::service::ServiceError::Invalid("Idempotency-Key must be ASCII".into());
            return Err(fail(error));
        }
        None => None,
    };
    let outcome = service.change_credits(&caller, &body, key.as_deref()).await.map_err(fail)?;
    if outcome.replayed {
        set_header("idempotent-replayed", "true");
    }
    Ok(outcome.value)
}

/// One page of the caller's ledger, newest first; `before` is the previous page's `nextBefore`.
#[server(prefix = "/api", endpoint = "credits/history", input = GetUrl, output = crate::api::codec::JsonText)]
pub async fn credits_history(
    #[server(default)] limit: Option<i64>,
    #[server(default)] before: Option<i64>,
) -> Result<HistoryPage, ApiError> {
    use super::{caller, fail, service};
    let service = service()?;
    let caller = caller(&service).await?;
    service.history(&caller, limit, before).await.map_err(fail)
}
