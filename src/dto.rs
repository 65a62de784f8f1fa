//! The JSON shapes of the contract (§3), shared by the server and the browser.

use serde::{Deserialize, Serialize};

/// The `credits` object: the figures a user sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreditFigures {
    pub remaining: i64,
    pub total: i64,
    pub used: i64,
    pub bonus: i64,
    pub initial: i64,
}

/// `GET /api/credits` and the answer of `POST /api/credits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreditsView {
    pub user_id: String,
    pub credits: CreditFigures,
    pub held: i64,
    pub cost_per_video: i64,
    pub can_generate_video: bool,
    pub recent: Vec<EntryView>,
    pub updated_at: String,
    /// Live and future grants, in the order spends draw from them.
    #[serde(default)]
    pub grants: Vec<GrantView>,
    /// The soonest expiry among live grants, and how much it takes.
    #[serde(default)]
    pub next_expiry: Option<NextExpiry>,
    /// Recent low-balance, depleted and expiring notices, newest first.
    #[serde(default)]
    pub notices: Vec<NoticeView>,
}

/// One grant as `GET /api/credits` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct GrantView {
    pub id: i64,
    pub kind: String,
    pub category: String,
    pub amount: i64,
    pub remaining: i64,
    pub priority: i64,
    pub effective_at: String,
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NextExpiry {
    pub at: String,
    pub amount: i64,
}

/// A notice for the user (`credits.low`, `credits.depleted`, `credits.expiring`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct NoticeView {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[cfg_attr(feature = "ssr", schema(value_type = Object))]
    pub data: serde_json::Value,
    pub created_at: String,
}

/// One ledger entry as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EntryView {
    pub id: i64,
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub created_at: String,
}

/// `GET /api/credits/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    pub entries: Vec<EntryView>,
    pub next_before: Option<i64>,
}

/// `GET /api/user/sync` and the `user` of `POST /api/user/sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at: String,
    pub credits: CreditFigures,
}

/// `POST /api/user/sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SyncResponse {
    pub created: bool,
    pub user: UserView,
}

/// A hold, as `POST /api/holds`, `/capture` and `/release` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HoldView {
    pub hold_id: String,
    pub user_id: String,
    pub amount: i64,
    pub captured: i64,
    pub released: i64,
    /// `open`, `captured`, `released` or `expired`.
    pub status: String,
    pub reason: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    pub resolved_at: Option<String>,
    /// The user's figures right after this change.
    pub credits: CreditFigures,
    pub held: i64,
}

/// `POST /api/checkout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CheckoutResponse {
    pub checkout_url: String,
}

/// The contract's error body: `{"error":{"code","message",…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    /// Credits the refused spend needed (402 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<i64>,
    /// Credits the account had when the spend was refused (402 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<i64>,
}
