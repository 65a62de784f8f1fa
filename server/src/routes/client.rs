//! Who sent a request: the client address (behind trusted proxies, the
//! right-most untrusted `X-Forwarded-For` hop) and whether it arrived over
//! https. Computed once per request and left in its extensions for the rate
//! limits, the sign-in throttle and the cookie flags.

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use credits::security::client_ip::TrustedProxies;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The client of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    /// The browser reached us over https: cookies it gets are `Secure`.
    pub https: bool,
}

/// What the operator told us about the network in front of the server.
#[derive(Debug, Clone)]
pub struct Network {
    pub proxies: TrustedProxies,
    /// `CREDITS_PUBLIC_URL` is https.
    pub public_https: bool,
}

/// Looks a request's client up; every later layer reads it with `client_of`.
pub async fn identify(State(network): State<Arc<Network>>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let headers = request.headers();
    let forwarded_for: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok()).collect();
    let ip = network.proxies.client(peer, &forwarded_for);
    let proto = headers.get("x-forwarded-proto").and_then(|value| value.to_str().ok());
    let https = network.public_https || network.proxies.forwarded_https(peer, proto).unwrap_or(false);
    request.extensions_mut().insert(Client { ip, https });
    next.run(request).await
}

/// The client `identify` found (the unspecified address if it did not run).
pub fn client_of(extensions: &axum::http::Extensions) -> Client {
    extensions
        .get::<Client>()
        .copied()
        .unwrap_or(Client { ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED), https: false })
}
