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

/// One user as `GET /api/admin/users` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserSummary {
    pub user: UserView,
    /// `active` or `closed`.
    pub status: String,
    pub held: i64,
}

/// `GET /api/admin/users?q=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminUsers {
    pub users: Vec<AdminUserSummary>,
}

/// An open hold as the admin's view of a user lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenHold {
    pub hold_id: String,
    pub amount: i64,
    pub expires_at: String,
}

/// `GET /api/admin/users/{id}`: figures, ledger, open holds and audit entries.
#[cfg(feature = "ssr")]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserDetail {
    pub user: UserView,
    pub status: String,
    pub held: i64,
    pub ledger: Vec<EntryView>,
    pub open_holds: Vec<OpenHold>,
    pub audit: Vec<crate::audit::AuditEntry>,
}

/// `GET /api/admin/audit`.
#[cfg(feature = "ssr")]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditLog {
    pub entries: Vec<crate::audit::AuditEntry>,
}

/// The outcome of one line of a batch adjustment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustResult {
    pub line: usize,
    pub user_id: String,
    pub ok: bool,
    /// `{"code","message"}` of a refused line.
    pub error: Option<ErrorDetail>,
    pub credits: Option<CreditFigures>,
}

/// `POST /api/admin/adjust`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdjustReport {
    pub results: Vec<AdjustResult>,
    pub succeeded: usize,
    pub failed: usize,
}

/// `POST /api/admin/grants/{id}/void`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoidedGrant {
    pub grant_id: i64,
    pub user_id: String,
    /// The unspent rest that left the account.
    pub removed: i64,
    pub credits: CreditFigures,
}

/// One recorded payment, as `GET /api/admin/payments` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    pub id: i64,
    pub payment_key: String,
    pub product_id: String,
    pub plan: Option<String>,
    pub amount_cents: i64,
    pub currency: Option<String>,
    pub user_id: Option<String>,
    pub customer_email: Option<String>,
    pub credits: i64,
    pub clawed_back: i64,
    pub refunded_cents: i64,
    pub status: String,
    pub test: bool,
    pub created_at: String,
}

/// `GET /api/admin/payments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentList {
    pub payments: Vec<PaymentView>,
}

/// `GET /api/test-creem`: the self-test of the webhook path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreemSelfTest {
    pub ok: bool,
    pub webhook_secret_configured: bool,
    pub api_key_configured: bool,
    pub api_base: String,
    pub synthetic_event: SyntheticEventCheck,
    pub products: Vec<ProductCheck>,
    pub problems: Vec<String>,
    /// Always `false`: the self-test stores nothing.
    pub balances_changed: bool,
}

/// What the self-test's signed, synthetic `checkout.completed` went through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyntheticEventCheck {
    pub event_type: String,
    pub signature_verified: bool,
    pub tampered_body_rejected: bool,
    pub parsed: bool,
    pub product_id: String,
    pub plan: Option<String>,
    pub credits: Option<i64>,
}

/// One plan's Creem product, as the self-test lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductCheck {
    pub plan: String,
    pub product_id: String,
    pub credits: i64,
    pub price_cents: i64,
    pub configured: bool,
}

/// `POST /api/auth/sign-up` and `/api/auth/sign-in` (local accounts): the
/// session itself travels in cookies; the page echoes `csrfToken` in `x-csrf-token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStarted {
    pub user_id: String,
    pub email: String,
    pub csrf_token: String,
}

/// `POST /api/auth/sign-out`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedOut {
    pub signed_out: bool,
}
