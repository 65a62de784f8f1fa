//! What the pages need beyond the contract's endpoints: who is signed in, the
//! language cookie, the "generate video" demo (a hold, then its capture), a
//! signed test webhook. (The admin page reads `/api/admin/*` itself: `api::admin`.)

use crate::error::ApiError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The signed-in user as the pages see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub signed_in: bool,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub is_admin: bool,
    /// Sign-in uses local accounts (no Clerk configured): show the forms.
    pub local_accounts: bool,
    pub plans: Vec<credits::plans::Plan>,
    pub cost_per_video: i64,
}

#[server(prefix = "/api/ui", endpoint = "session", input = GetUrl, output = crate::api::codec::JsonText)]
pub async fn get_session() -> Result<SessionInfo, ApiError> {
    use super::{request_headers, service};
    let service = service()?;
    let settings = service.settings();
    let mut session = SessionInfo {
        local_accounts: service.local_accounts(),
        plans: settings.plans.clone(),
        cost_per_video: settings.cost_per_video,
        ..SessionInfo::default()
    };
    if let Ok(caller) = service.authenticate(&http::Method::GET, &request_headers()).await {
        session.signed_in = caller.api_key.is_none();
        session.user_id = Some(caller.user_id);
        session.email = caller.email;
        session.is_admin = caller.is_admin;
    }
    Ok(session)
}

/// Remembers the language in a cookie.
#[server(prefix = "/api/ui", endpoint = "language", output = crate::api::codec::JsonText)]
pub async fn set_language(lang: String) -> Result<(), ApiError> {
    let lang = crate::i18n::Lang::parse(&lang).unwrap_or_default();
    if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
        let cookie = format!("lang={}; Path=/; Max-Age=31536000; SameSite=Lax", lang.code());
        if let Ok(value) = http::HeaderValue::from_str(&cookie) {
            options.append_header(http::header::SET_COOKIE, value);
        }
    }
    Ok(())
}

/// The demo "generate video": reserve the cost with a hold, do the work, capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoResult {
    pub hold_id: String,
    pub spent: i64,
    pub remaining: i64,
}

#[server(prefix = "/api/ui", endpoint = "generate-video", output = crate::api::codec::JsonText)]
pub async fn generate_video() -> Result<VideoResult, ApiError> {
    use super::{caller, fail, service};
    let service = service()?;
    let caller = caller(&service).await?;
    let cost = service.settings().cost_per_video;
    let body = serde_json::json!({"amount": cost, "ttlSeconds": 600, "reason": "video generation"});
    let hold = service.create_hold(&caller, body.as_object().expect("object"), None).await.map_err(fail)?;
    // The real work would run here, between the hold and its capture.
    let done = service
        .resolve_hold(&caller, &hold.value.hold_id, true, &serde_json::Map::new(), None)
        .await
        .map_err(fail)?;
    Ok(VideoResult {
        hold_id: done.value.hold_id,
        spent: done.value.captured,
        remaining: done.value.credits.remaining,
    })
}

/// Admin: sends the caller a signed `checkout.completed` for `plan` through the
/// real webhook path; audited, and its credits a test, never revenue.
#[server(prefix = "/api/ui", endpoint = "test-webhook", output = crate::api::codec::JsonText)]
pub async fn send_test_webhook(plan: String) -> Result<Value, ApiError> {
    use super::{admin, fail, service};
    let service = service()?;
    let caller = admin(&service).await?;
    let outcome = service.send_test_webhook(&caller, &plan).await.map_err(fail)?;
    Ok(serde_json::to_value(outcome).unwrap_or_default())
}
