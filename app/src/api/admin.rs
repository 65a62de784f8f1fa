//! The admin page's calls to `/api/admin/*`. Those routes are plain axum
//! routes, all in the server's `routes::admin` (no server functions, no
//! `/api/ui/admin-*` twins): the page calls them from the browser with the
//! session cookie, as any client of the contract does. On the server these
//! calls are never made (the page reads them through `LocalResource`s and
//! click handlers, which run in the browser only).

use crate::error::ApiError;
use credits::dto::{AdjustReport, AdminUsers};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// `GET /api/admin/users?q=`.
pub async fn search_users(q: String) -> Result<AdminUsers, ApiError> {
    get("/api/admin/users", &[("q", q.as_str())]).await
}

/// `GET /api/admin/users/{id}`: figures, ledger, open holds and audit entries.
pub async fn user(id: String) -> Result<Value, ApiError> {
    get(&format!("/api/admin/users/{}", path_segment(&id)), &[]).await
}

/// `GET /api/admin/stats?from=&to=`.
pub async fn stats(from: String, to: String) -> Result<Value, ApiError> {
    get("/api/admin/stats", &[("from", from.as_str()), ("to", to.as_str())]).await
}

/// `GET /api/admin/check`.
pub async fn check() -> Result<Value, ApiError> {
    get("/api/admin/check", &[]).await
}

/// `GET /api/admin/webhooks?limit=`.
pub async fn webhooks(limit: i64) -> Result<Value, ApiError> {
    get("/api/admin/webhooks", &[("limit", limit.to_string().as_str())]).await
}

/// `POST /api/admin/adjust` with a CSV body (`userId,action,amount,reason`).
pub async fn adjust_csv(csv: String) -> Result<AdjustReport, ApiError> {
    send(Call { method: "POST", path: "/api/admin/adjust", query: &[], csv: Some(csv) }).await
}

async fn get<T: DeserializeOwned>(path: &str, query: &[(&str, &str)]) -> Result<T, ApiError> {
    send(Call { method: "GET", path, query, csv: None }).await
}

/// One request to the admin API.
struct Call<'a> {
    method: &'static str,
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    csv: Option<String>,
}

/// Sends `call` with the page's cookies; a refusal comes back as the
/// contract's error, a failure to reach the server as `network_error`.
#[cfg(feature = "hydrate")]
async fn send<T: DeserializeOwned>(call: Call<'_>) -> Result<T, ApiError> {
    use gloo_net::http::RequestBuilder;
    let network = |error: gloo_net::Error| ApiError::new("network_error", error.to_string());
    let mut request = RequestBuilder::new(call.path).method(match call.method {
        "POST" => gloo_net::http::Method::POST,
        _ => gloo_net::http::Method::GET,
    });
    if !call.query.is_empty() {
        request = request.query(call.query.iter().copied());
    }
    let response = match call.csv {
        Some(csv) => request.header("content-type", "text/csv").body(csv).map_err(network)?.send().await,
        None => request.send().await,
    }
    .map_err(network)?;
    let text = response.text().await.map_err(network)?;
    if response.ok() {
        serde_json::from_str(&text).map_err(|error| ApiError::new("internal", error.to_string()))
    } else {
        Err(serde_json::from_str::<ApiError>(&text)
            .unwrap_or_else(|_| ApiError::new("internal", format!("HTTP {}", response.status()))))
    }
}

#[cfg(not(feature = "hydrate"))]
async fn send<T: DeserializeOwned>(call: Call<'_>) -> Result<T, ApiError> {
    let _ = (call.method, call.query, call.csv);
    Err(ApiError::new("internal", format!("{} is called from the browser only", call.path)))
}

/// `text` as one URL path segment: everything but unreserved characters percent-encoded.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(super::path_segment("user_1.a-b~"), "user_1.a-b~");
        assert_eq!(super::path_segment("a/b c%é"), "a%2Fb%20c%25%C3%A9");
    }
}
