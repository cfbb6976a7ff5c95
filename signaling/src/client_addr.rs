//! Who is really calling: the client's address behind the documented reverse proxy.
//!
//! Behind a proxy every TCP connection comes from the proxy (127.0.0.1), so limits keyed
//! on the TCP peer would put the whole province in one bucket: ten wrong logins would
//! lock everyone out. The proxy names the client in `X-Forwarded-For`; that header is
//! believed only when the TCP peer is a configured trusted proxy, and then the client is
//! the right-most entry that is not itself a trusted proxy (entries further left were
//! written by the client and prove nothing).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl Default for TrustedProxies {
    /// Loopback only: the proxy on the same machine, as `deploy/README.md` sets it up. A
    /// process on the bridge's own machine can already do anything a client can.
    fn default() -> Self {
        let v4 = IpNet::new(IpAddr::from([127, 0, 0, 0]), 8);
        let v6 = IpNet::new(IpAddr::from(Ipv6Addr::LOCALHOST), 128);
        Self(v4.into_iter().chain(v6).collect())
    }
}

impl TrustedProxies {
    pub fn none() -> Self {
        Self(Vec::new())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request that came over TCP from `peer`.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if !self.contains(peer.ip()) {
            return peer;
        }
        // Several headers concatenate in order; each may list several hops.
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .map(parse_hop)
            .collect::<Option<Vec<_>>>()
            // An unreadable entry: the chain cannot be followed; the proxy is the client.
            .unwrap_or_default();
        match hops.iter().rev().find(|ip| !self.contains(**ip)) {
            Some(ip) => SocketAddr::new(canonical(*ip), 0),
            None => peer,
        }
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port or in brackets.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key a rate limit counts under: the address, or for IPv6 its /64, since one
/// subscriber (and one attacker) usually holds a whole /64 and can pick any address in it.
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(seg))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_anyone_else_does_not() {
        let t = TrustedProxies::default();
        let proxy = addr("127.0.0.1:40000");
        assert_eq!(
            t.client(proxy, &headers(&["203.0.113.7"])).ip(),
            "203.0.113.7".parse::<IpAddr>().expect("ip")
        );
        // Spoofed entries on the left, appended to by the proxy: the right-most counts.
        assert_eq!(
            t.client(proxy, &headers(&["1.2.3.4, 198.51.100.9"])).ip(),
            "198.51.100.9".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            t.client(proxy, &headers(&["1.2.3.4", "198.51.100.9, 127.0.0.1"]))
                .ip(),
            "198.51.100.9".parse::<IpAddr>().expect("ip"),
            "a second header and a trusted hop on the right"
        );
        // A client that is not a trusted proxy cannot choose its own address.
        let direct = addr("198.51.100.20:5000");
        assert_eq!(t.client(direct, &headers(&["10.9.9.9"])), direct);
        assert_eq!(
            TrustedProxies::none().client(proxy, &headers(&["10.9.9.9"])),
            proxy
        );
        // No header, garbage, or only trusted hops: the proxy itself.
        assert_eq!(t.client(proxy, &HeaderMap::new()), proxy);
        assert_eq!(t.client(proxy, &headers(&["not an address"])), proxy);
        assert_eq!(t.client(proxy, &headers(&["127.0.0.2"])), proxy);
        // Ports and brackets as some proxies write them.
        assert_eq!(
            t.client(proxy, &headers(&["[2001:db8::1]:443"])).ip(),
            "2001:db8::1".parse::<IpAddr>().expect("ip")
        );
        assert!(t.contains("::ffff:127.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn ipv6_is_limited_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(rate_key(a), rate_key(b));
        assert_ne!(rate_key(a), rate_key(c));
        assert_eq!(
            rate_key("::ffff:10.0.0.1".parse().expect("ip")),
            "10.0.0.1".parse::<IpAddr>().expect("ip")
        );
    }
}
