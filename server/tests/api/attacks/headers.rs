//! Attacks: headers. A page that an attacker frames, sniffs into a script or
//! injects a script into must be refused by the browser, and a user's figures
//! must never be kept by a shared cache: every response carries the headers
//! of contract §8, pages a Content-Security-Policy whose nonce is new on each
//! request and matches every script the page contains.

use crate::both;
use crate::support::{token, unique, Backend, TestApp, ADMIN};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map(|value| value.to_str().unwrap()).unwrap_or("")
}

/// The nonce a page's policy allows, from `'nonce-…'` in its script-src.
fn nonce_of(policy: &str) -> String {
    let scripts = policy.split(';').map(str::trim).find(|d| d.starts_with("script-src")).unwrap();
    let start = scripts.find("'nonce-").unwrap_or_else(|| panic!("no nonce in {policy}")) + "'nonce-".len();
    scripts[start..].split('\'').next().unwrap().to_string()
}

/// Every response, page or not, forbids sniffing and framing and limits the referrer.
fn assert_base_headers(path: &str, headers: &HeaderMap) {
    assert_eq!(header(headers, "x-content-type-options"), "nosniff", "{path}");
    assert_eq!(header(headers, "x-frame-options"), "DENY", "{path}");
    assert_eq!(header(headers, "referrer-policy"), "strict-origin-when-cross-origin", "{path}");
}

async fn pages_carry_csp_with_a_nonce_nosniff_and_no_framing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut nonces = Vec::new();
    for path in ["/", "/history", "/", "/no-such-page"] {
        let response = app.get(path, None).await;
        let headers = response.headers().clone();
        assert!(header(&headers, "content-type").starts_with("text/html"), "{path}");
        assert_base_headers(path, &headers);
        let policy = header(&headers, "content-security-policy").to_string();
        for directive in [
            "default-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "'wasm-unsafe-eval'",
        ] {
            assert!(policy.contains(directive), "{path}: {directive} missing from {policy}");
        }
        assert!(!policy.contains("unsafe-inline") && !policy.contains('*'), "{path}: {policy}");
        let nonce = nonce_of(&policy);
        let body = response.text().await.unwrap();
        let scripts: Vec<&str> =
            body.split("<script").skip(1).map(|tag| tag.split('>').next().unwrap()).collect();
        assert!(!scripts.is_empty(), "{path}: the page hydrates through an inline script");
        for tag in scripts {
            assert!(
                tag.contains(&format!("nonce=\"{nonce}\"")),
                "{path}: <script{tag}> lacks the nonce {nonce}"
            );
        }
        nonces.push(nonce);
    }
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 4, "each page gets a fresh nonce");

    let user = unique("framed");
    for (path, bearer) in
        [("/api/credits", Some(token(&user))), ("/api/no-such-fn", None), ("/healthz", None)]
    {
        let response = app.get(path, bearer.as_deref()).await;
        assert_base_headers(path, response.headers());
        let policy = header(response.headers(), "content-security-policy");
        assert_eq!(policy, "default-src 'none'; frame-ancestors 'none'", "{path}");
    }
}
both!(pages_carry_csp_with_a_nonce_nosniff_and_no_framing);

async fn with_clerk_pages_load_scripts_only_from_its_frontend_api(backend: Backend) {
    use base64::Engine;
    let host = "clerk.credits.example";
    let key = format!("pk_test_{}", base64::engine::general_purpose::STANDARD.encode(format!("{host}$")));
    let app = TestApp::spawn_with(backend, &[("CLERK_PUBLISHABLE_KEY", key)]).await;
    let response = app.get("/", None).await;
    let policy = header(response.headers(), "content-security-policy").to_string();
    let scripts = policy.split(';').map(str::trim).find(|d| d.starts_with("script-src")).unwrap();
    let nonce = nonce_of(&policy);
    let allowed = format!(
        "script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval' https://{host} https://challenges.cloudflare.com"
    );
    assert_eq!(scripts, allowed);
    assert!(policy.contains(&format!("connect-src 'self' https://{host}")), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
}
both!(with_clerk_pages_load_scripts_only_from_its_frontend_api);

/// A site root with one static file, so `/pkg/*` can be asked for.
fn site_root_with_a_stylesheet() -> String {
    let root = std::env::temp_dir().join("credits-tests").join(unique("site"));
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::write(root.join("pkg").join("credits.css"), "body { color: black }\n").unwrap();
    root.display().to_string()
}

async fn user_data_is_never_cached(backend: Backend) {
    let app = TestApp::spawn_with(backend, &[("LEPTOS_SITE_ROOT", site_root_with_a_stylesheet())]).await;
    let user = unique("cached");
    let (user_token, admin_token) = (token(&user), token(ADMIN));
    app.credits(&user).await;
    let requests = [
        (Method::GET, "/", None, None),
        (Method::GET, "/history", None, None),
        (Method::GET, "/admin", None, None),
        (Method::GET, "/api/credits", Some(&user_token), None),
        (Method::GET, "/api/credits", None, None),
        (Method::POST, "/api/credits", Some(&user_token), Some(json!({"action": "deduct", "amount": 1}))),
        (Method::GET, "/api/credits/history", Some(&user_token), None),
        (Method::GET, "/api/credits/history.csv", Some(&user_token), None),
        (Method::GET, "/api/credits/purchases", Some(&user_token), None),
        (Method::GET, "/api/user/sync", Some(&user_token), None),
        (Method::POST, "/api/user/sync", Some(&user_token), None),
        (Method::POST, "/api/holds", Some(&user_token), Some(json!({"amount": 1}))),
        (Method::POST, "/api/checkout", Some(&user_token), Some(json!({"plan": "starter"}))),
        (Method::GET, "/api/admin/users?q=cached", Some(&admin_token), None),
        (Method::GET, "/api/admin/audit", Some(&admin_token), None),
        (Method::POST, "/api/auth/sign-in", None, Some(json!({"email": "a@example.com", "password": "x"}))),
        (Method::GET, "/metrics", None, None),
    ];
    for (method, path, bearer, body) in requests {
        let mut request = app.client.request(method.clone(), app.url(path));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        assert_eq!(header(response.headers(), "cache-control"), "no-store", "{method} {path} ({status})");
    }

    let file = app.get("/pkg/credits.css", None).await;
    assert_eq!(file.status(), StatusCode::OK);
    assert!(!header(file.headers(), "cache-control").contains("no-store"), "static files stay cacheable");
    assert_base_headers("/pkg/credits.css", file.headers());
}
both!(user_data_is_never_cached);

async fn hsts_only_with_an_https_public_url(backend: Backend) {
    let https =
        TestApp::spawn_with(backend, &[("CREDITS_PUBLIC_URL", "https://credits.example".into())]).await;
    let plain =
        TestApp::spawn_with(backend, &[("CREDITS_PUBLIC_URL", "http://credits.example".into())]).await;
    let unset = TestApp::spawn(backend).await;
    let user = unique("hsts");
    for path in ["/", "/api/credits", "/healthz", "/api/no-such-fn"] {
        let bearer = Some(token(&user));
        let response = https.get(path, bearer.as_deref()).await;
        let hsts = header(response.headers(), "strict-transport-security");
        assert_eq!(hsts, "max-age=31536000; includeSubDomains", "{path}");
        for app in [&plain, &unset] {
            let response = app.get(path, bearer.as_deref()).await;
            assert!(response.headers().get("strict-transport-security").is_none(), "{path} over http");
        }
    }
}
both!(hsts_only_with_an_https_public_url);
