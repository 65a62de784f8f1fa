//! Where a request says it comes from: `Origin`/`Referer` parsing and the
//! origin check (`security::origin`), and the client behind trusted proxies
//! from `X-Forwarded-For`/`X-Forwarded-Proto` (`security::client_ip`).
//! Input: newline-separated origin, referer, forwarded-for, trusted list,
//! forwarded-proto. Never panics; a parsed origin is normalised and only
//! ever equal to itself; the client is the peer or one of the forwarded hops.
#![no_main]

use credits::security::client_ip::TrustedProxies;
use credits::security::origin::{is_allowed, Origin, Provenance};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

fn check_origin(text: &str) {
    let Some(origin) = Origin::parse(text) else {
        assert!(!is_allowed(text, &[Origin::parse("https://app.example.com").unwrap()]), "unparsed yet allowed");
        return;
    };
    let normal = origin.as_str();
    assert!(normal.starts_with("http://") || normal.starts_with("https://"), "{normal}");
    let authority = normal.split_once("://").unwrap().1;
    assert!(!authority.contains(['/', '@', '?', '#']), "{normal}");
    assert_eq!(Origin::parse(normal).as_ref(), Some(&origin), "parsing is idempotent");
    assert!(is_allowed(text, &[origin.clone()]));
    assert!(!is_allowed(text, &[Origin::parse("https://other.invalid").unwrap()]) || normal == "https://other.invalid");
}

/// Every address a forwarded-for entry could name, read leniently.
fn hop_addresses(forwarded: &str) -> Vec<IpAddr> {
    let mut addresses = Vec::new();
    for hop in forwarded.split(',').map(str::trim) {
        let inner = hop.strip_prefix('[').and_then(|rest| rest.split_once(']')).map(|(inside, _)| inside);
        let without_port = hop.rsplit_once(':').map(|(address, _)| address);
        for candidate in [Some(hop), inner, without_port].into_iter().flatten() {
            if let Ok(address) = candidate.parse::<IpAddr>() {
                addresses.push(address.to_canonical());
            }
        }
    }
    addresses
}

fn check_client(forwarded: &str, trusted: &str, proto: &str) {
    let Ok(proxies) = TrustedProxies::parse(trusted) else { return };
    let hops = hop_addresses(forwarded);
    for peer in ["127.0.0.1", "10.0.0.1", "2001:db8::1", "::ffff:10.0.0.1"] {
        let peer: IpAddr = peer.parse().unwrap();
        let client = proxies.client(peer, &[forwarded]);
        if !proxies.trusts(peer) {
            assert_eq!(client, peer.to_canonical(), "an untrusted peer's header is ignored");
            assert_eq!(proxies.forwarded_https(peer, Some(proto)), None);
            continue;
        }
        assert!(
            client == peer.to_canonical() || hops.contains(&client),
            "client {client} is neither the peer nor a hop of {forwarded:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(5, '\n');
    let mut next = || parts.next().unwrap_or_default();
    let (origin, referer, forwarded, trusted, proto) = (next(), next(), next(), next(), next());
    check_origin(origin);
    check_origin(referer);
    if let Provenance::Stated(stated) = Provenance::of(Some(origin).filter(|o| !o.is_empty()), Some(referer)) {
        check_origin(stated);
    }
    check_client(forwarded, trusted, proto);
});
