//! `POST /api/checkout` and `GET /api/test-creem`.

use crate::error::ApiError;
use credits::dto::{CheckoutResponse, CreemSelfTest};
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};
use serde_json::{Map, Value};

/// `{"plan": "starter" | "standard" | "premium"}` → `{"checkoutUrl"}` at Creem.
#[server(prefix = "/api", endpoint = "checkout", input = Json, output = crate::api::codec::JsonText)]
pub async fn create_checkout(
    #[server(flatten)] body: Map<String, Value>,
) -> Result<CheckoutResponse, ApiError> {
    use super::{caller, fail, service};
    let service = service()?;
    let caller = caller(&service).await?;
    service.checkout(&caller, &body).await.map_err(fail)
}

/// The admin's self-test of the Creem webhook path; changes no balance.
#[server(prefix = "/api", endpoint = "test-creem", input = GetUrl, output = crate::api::codec::JsonText)]
pub async fn test_creem() -> Result<CreemSelfTest, ApiError> {
    use super::{admin, service};
    let service = service()?;
    admin(&service).await?;
    Ok(service.test_creem())
}
