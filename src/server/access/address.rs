//! Where a request comes from, for the limits that hold per client address.
//!
//! Identities are free (any page load mints one), so per-user limits alone
//! do not stop one client; per-address limits do. The address is the TCP
//! peer's, which the server's accept loop puts in every request
//! (`ConnectInfo`). Only when that peer is one of `TRUSTED_PROXIES` is
//! `X-Forwarded-For` read: from its right end (the hop the proxy itself
//! added) leftwards, skipping trusted proxies, the first other address is
//! the client. Anything a client wrote further left is never believed.
//!
//! IPv6 addresses are counted per `/64`, the block one host or household
//! is usually given, so a client cannot rotate through its own block.

use std::{
    convert::Infallible,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use axum::{
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::{request::Parts, Extensions, HeaderMap},
};

use super::AccessPolicy;
use crate::server::config::{canonical_ip, TrustedProxies};

/// The key of a client address in the per-address limits: an IPv4 address,
/// or the `/64` of an IPv6 one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrKey(IpAddr);

impl AddrKey {
    pub fn of(ip: IpAddr) -> Self {
        match canonical_ip(ip) {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                Self(IpAddr::V6(Ipv6Addr::from(bits)))
            }
            v4 => Self(v4),
        }
    }

    /// A request without a known peer (never from the server's own accept
    /// loop; a router driven in memory).
    pub const UNKNOWN: AddrKey = AddrKey(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
}

impl fmt::Display for AddrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

/// The client address of a request, as an extractor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub AddrKey);

impl<S> FromRequestParts<S> for ClientAddr
where
    S: Send + Sync,
    AccessPolicy: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        let policy = AccessPolicy::from_ref(state);
        let trusted = &policy.config.trusted_proxies;
        Ok(ClientAddr(client_addr(
            &parts.extensions,
            &parts.headers,
            trusted,
        )))
    }
}

/// The client address of a request (see the module doc).
pub fn client_addr(
    extensions: &Extensions,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> AddrKey {
    match extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => AddrKey::of(client_ip(peer.ip(), headers, trusted)),
        None => AddrKey::UNKNOWN,
    }
}

/// The client's IP: the peer's, or, from a trusted proxy, the rightmost
/// untrusted hop of `X-Forwarded-For`. An unreadable hop ends the walk at
/// the last address that was read (a proxy would not have written it).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let mut client = canonical_ip(peer);
    if !trusted.trusts(client) {
        return client;
    }
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            return client;
        };
        for hop in value.rsplit(',') {
            let Some(ip) = parse_hop(hop.trim()) else {
                return client;
            };
            client = canonical_ip(ip);
            if !trusted.trusts(client) {
                return client;
            }
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`[v6]:port`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).expect("ascii"));
        }
        headers
    }

    #[test]
    fn without_trusted_proxies_the_header_is_never_read() {
        let none = TrustedProxies::default();
        let headers = xff(&["203.0.113.9"]);
        assert_eq!(
            client_ip(ip("198.51.100.1"), &headers, &none),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_rightmost_untrusted_hop() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().expect("valid");
        // The client forged the first entry; the proxy chain appended the rest.
        let headers = xff(&["1.1.1.1, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &trusted),
            ip("203.0.113.9")
        );
        // From an untrusted peer the header is ignored.
        assert_eq!(
            client_ip(ip("192.0.2.7"), &headers, &trusted),
            ip("192.0.2.7")
        );
        // No header: the proxy is the client.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        // Garbage ends the walk at the last address read; ports are allowed.
        let headers = xff(&["1.1.1.1, not-an-ip, 10.0.0.3"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &trusted),
            ip("10.0.0.3")
        );
        let headers = xff(&["[2001:db8::1]:443"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &trusted),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            AddrKey::of(ip("2001:db8:1:2:aaaa::1")),
            AddrKey::of(ip("2001:db8:1:2::9"))
        );
        assert_ne!(
            AddrKey::of(ip("2001:db8:1:2::1")),
            AddrKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            AddrKey::of(ip("::ffff:192.0.2.1")),
            AddrKey::of(ip("192.0.2.1"))
        );
        assert_eq!(
            AddrKey::of(ip("2001:db8:1:2::1")).to_string(),
            "2001:db8:1:2::/64"
        );
    }
}
