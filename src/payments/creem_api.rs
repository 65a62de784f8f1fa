//! The Creem API, for creating checkouts: `POST {CREEM_API_BASE}/v1/checkouts`
//! with `x-api-key`. Time-outs and Creem errors come back as `CreemApiError`.

use serde::Deserialize;
use std::time::Duration;

/// The live API; tests and Creem's test mode point `CREEM_API_BASE` elsewhere.
pub const DEFAULT_API_BASE: &str = "https://api.creem.io";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to reach Creem.
#[derive(Clone, Debug)]
pub struct CreemApi {
    base: String,
    api_key: Option<String>,
    client: reqwest::Client,
}

/// What a new checkout needs.
#[derive(Debug, Clone)]
pub struct CheckoutRequest<'a> {
    pub product_id: &'a str,
    pub request_id: &'a str,
    pub user_id: &'a str,
    pub email: Option<&'a str>,
    pub success_url: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutCreated {
    pub checkout_id: Option<String>,
    pub checkout_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreemApiError {
    #[error("CREEM_API_KEY is not configured")]
    NotConfigured,
    #[error("Creem did not answer in time")]
    Timeout,
    #[error("could not reach Creem: {0}")]
    Unreachable(String),
    #[error("Creem refused the checkout (status {status})")]
    Refused { status: u16 },
    #[error("Creem's answer had no checkout_url")]
    BadAnswer,
}

#[derive(Deserialize)]
struct CheckoutAnswer {
    id: Option<String>,
    checkout_url: Option<String>,
}

impl CreemApi {
    pub fn new(base: &str, api_key: Option<String>, timeout: Duration) -> Result<Self, String> {
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err("CREEM_API_BASE must be an http(s) URL".into());
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|error| format!("CREEM_API_BASE: {error}"))?;
        Ok(Self { base: base.trim_end_matches('/').to_string(), api_key, client })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn has_key(&self) -> bool {
        self.api_key.is_some()
    }

    pub async fn create_checkout(
        &self,
        request: &CheckoutRequest<'_>,
    ) -> Result<CheckoutCreated, CreemApiError> {
        let api_key = self.api_key.as_deref().ok_or(CreemApiError::NotConfigured)?;
        let mut body = serde_json::json!({
            "product_id": request.product_id,
            "request_id": request.request_id,
            "success_url": request.success_url,
            "metadata": {"userId": request.user_id},
        });
        if let Some(email) = request.email {
            body["customer"] = serde_json::json!({"email": email});
        }
        let response = self
            .client
            .post(format!("{}/v1/checkouts", self.base))
            .header("x-api-key", api_key)
            .json(&body)
            .send()
            .await
            .map_err(|error| {
                if error.is_timeout() {
                    CreemApiError::Timeout
                } else {
                    CreemApiError::Unreachable(error.to_string())
                }
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(CreemApiError::Refused { status: status.as_u16() });
        }
        let answer: CheckoutAnswer = response.json().await.map_err(|error| {
            if error.is_timeout() {
                CreemApiError::Timeout
            } else {
                CreemApiError::BadAnswer
            }
        })?;
        let checkout_url =
            answer.checkout_url.filter(|url| url.starts_with("http")).ok_or(CreemApiError::BadAnswer)?;
        Ok(CheckoutCreated { checkout_id: answer.id, checkout_url })
    }
}
