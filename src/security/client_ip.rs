//! Which client sent a request (contract §8): the TCP peer, unless the peer
//! is a trusted proxy (`CREDITS_TRUSTED_PROXIES`), in which case it is the
//! right-most `X-Forwarded-For` address that is not itself a trusted proxy.
//! Everything left of that address was written by the client and proves
//! nothing; believing the left-most entry would let anyone pick their own
//! rate-limit key.

use std::net::IpAddr;

/// One trusted address or CIDR block, e.g. `10.0.0.0/8` or `::1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr =
            address.parse().map_err(|_| format!("`{text}` is not an IP address or CIDR"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= bits)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {bits}"))?,
        };
        Ok(Self { network, prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, canonical(address)) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                masked(u128::from(u32::from(network)), 32, self.prefix)
                    == masked(u128::from(u32::from(address)), 32, self.prefix)
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                masked(u128::from(network), 128, self.prefix) == masked(u128::from(address), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    bits >> (width - prefix)
}

/// An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, what a dual-stack socket
/// reports) is the IPv4 address it carries.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(address),
        v4 => v4,
    }
}

/// The parsed `CREDITS_TRUSTED_PROXIES` (empty by default: no header is believed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

/// Entries of `CREDITS_TRUSTED_PROXIES` accepted at most (a bound on the
/// work per request).
pub const MAX_TRUSTED_PROXIES: usize = 64;
/// `X-Forwarded-For` entries looked at per request, from the right.
pub const MAX_FORWARDED_HOPS: usize = 32;

impl TrustedProxies {
    /// Parses the comma-separated list.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cidrs = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(Cidr::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if cidrs.len() > MAX_TRUSTED_PROXIES {
            return Err(format!("at most {MAX_TRUSTED_PROXIES} entries"));
        }
        Ok(Self(cidrs))
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(address))
    }

    /// The client of a request from `peer` carrying these `X-Forwarded-For`
    /// header values (in the order received).
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_for.iter().rev().flat_map(|value| value.rsplit(',')).take(MAX_FORWARDED_HOPS);
        let mut nearest = peer;
        for hop in hops {
            let Some(address) = parse_hop(hop) else { return nearest };
            if !self.trusts(address) {
                return address;
            }
            nearest = address;
        }
        nearest
    }

    /// Whether the request reached the first proxy over https, as the
    /// nearest trusted proxy reports in `X-Forwarded-Proto`.
    pub fn forwarded_https(&self, peer: IpAddr, forwarded_proto: Option<&str>) -> Option<bool> {
        if !self.trusts(canonical(peer)) {
            return None;
        }
        let proto = forwarded_proto?.rsplit(',').next()?.trim();
        Some(proto.eq_ignore_ascii_case("https"))
    }
}

/// One `X-Forwarded-For` entry: an address, maybe bracketed, maybe with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok().map(canonical);
    }
    let (address, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    address.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The key a client's requests are counted under: its address, or for IPv6
/// its /64 (one subscriber's network, whose addresses it can rotate at will).
pub fn rate_limit_key(client: IpAddr) -> String {
    match canonical(client) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidrs_match_their_block() {
        let block = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(block.contains(ip("10.1.255.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped addresses count as IPv4");
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains(ip("2001:db8:1::1")));
        assert!(!Cidr::parse("2001:db8::/32").unwrap().contains(ip("10.0.0.1")));
        for bad in ["10.0.0.0/33", "::/129", "nope", "10.0.0.0/x", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("203.0.113.9"), &["1.2.3.4"]), ip("203.0.113.9"));
        assert_eq!(none.forwarded_https(ip("203.0.113.9"), Some("https")), None);
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        let peer = ip("10.0.0.2");
        // The client wrote "6.6.6.6" itself; the proxies appended the rest.
        assert_eq!(proxies.client(peer, &["6.6.6.6, 198.51.100.7, 192.168.1.1"]), ip("198.51.100.7"));
        assert_eq!(proxies.client(peer, &["6.6.6.6", "198.51.100.7"]), ip("198.51.100.7"));
        assert_eq!(proxies.client(peer, &[]), peer, "no header: the proxy itself");
        assert_eq!(proxies.client(peer, &["10.0.0.9"]), ip("10.0.0.9"));
        assert_eq!(proxies.client(peer, &["garbage, 10.0.0.9"]), ip("10.0.0.9"));
        assert_eq!(proxies.client(peer, &["[2001:db8::5]:443"]), ip("2001:db8::5"));
        assert_eq!(proxies.client(peer, &["198.51.100.7:5050"]), ip("198.51.100.7"));
        // An untrusted peer's header is ignored.
        assert_eq!(proxies.client(ip("198.51.100.1"), &["1.1.1.1"]), ip("198.51.100.1"));
    }

    #[test]
    fn forwarded_proto_is_believed_only_from_trusted_peers() {
        let proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        assert_eq!(proxies.forwarded_https(ip("127.0.0.1"), Some("https")), Some(true));
        assert_eq!(proxies.forwarded_https(ip("127.0.0.1"), Some("http")), Some(false));
        assert_eq!(proxies.forwarded_https(ip("127.0.0.2"), Some("https")), None);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_slash_64() {
        assert_eq!(rate_limit_key(ip("2001:db8:1:2:aaaa::1")), rate_limit_key(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(rate_limit_key(ip("2001:db8:1:2::1")), rate_limit_key(ip("2001:db8:1:3::1")));
        assert_eq!(rate_limit_key(ip("::ffff:1.2.3.4")), "1.2.3.4");
    }

    #[test]
    fn too_many_trusted_entries_are_refused() {
        let list = vec!["10.0.0.1"; MAX_TRUSTED_PROXIES + 1].join(",");
        assert!(TrustedProxies::parse(&list).is_err());
    }
}
