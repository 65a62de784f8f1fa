//! Admin reads of the payment path: webhook deliveries and recorded payments.

use crate::error::ApiError;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
use serde_json::Value;

/// Page size bound for admin lists.
pub const MAX_ADMIN_PAGE: i64 = 500;

#[cfg(feature = "ssr")]
fn page(limit: Option<i64>) -> Result<i64, credits::service::ServiceError> {
    let limit = limit.unwrap_or(100);
    if (1..=MAX_ADMIN_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(credits::service::ServiceError::Invalid(format!("`limit` must be 1 to {MAX_ADMIN_PAGE}")))
    }
}

/// `GET /api/admin/webhooks`: the newest deliveries (accepted, duplicate, ignored,
/// and the newest rejected ones) and how many were rejected, per provider and reason.
#[server(prefix = "/api", endpoint = "admin/webhooks", input = GetUrl, output = crate::api::codec::JsonText)]
pub async fn webhook_deliveries(#[server(default)] limit: Option<i64>) -> Result<Value, ApiError> {
    use super::{admin, fail, service};
    let service = service()?;
    admin(&service).await?;
    let deliveries = service.deliveries(page(limit).map_err(fail)?).await.map_err(fail)?;
    let rejected = service.rejection_counts().await.map_err(fail)?;
    Ok(serde_json::json!({ "deliveries": deliveries, "rejected": rejected }))
}

/// `GET /api/admin/payments?status=unknown_product`: recorded payments.
#[server(prefix = "/api", endpoint = "admin/payments", input = GetUrl, output = crate::api::codec::JsonText)]
pub async fn payments(
    #[server(default)] status: Option<String>,
    #[server(default)] limit: Option<i64>,
) -> Result<Value, ApiError> {
    use super::{admin, fail, service};
    let service = service()?;
    admin(&service).await?;
    let payments = service.payments(status.as_deref(), page(limit).map_err(fail)?).await.map_err(fail)?;
    Ok(serde_json::json!({ "payments": payments }))
}
