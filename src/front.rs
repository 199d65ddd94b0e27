//! The front door: every request is made canonical here, once, before anything looks at it.
//!
//! `admit` replaces the request target by its canonical path (origin form, query unchanged)
//! when it is not canonical already, picks and canonicalises the host by the rules of RFC 9112 §3.2 and
//! RFC 9113 §8.3.1, and works out the client's address behind trusted proxies. From then on the
//! request's URI *is* the canonical request: endpoint dispatch, routing, roles, logs and the
//! forwarded request line all read the same value. Everything here is attacker-controlled and
//! must not panic.

use std::borrow::Cow;
use std::net::IpAddr;

use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Uri, Version};

use crate::canonical::{self, Host};
use crate::proxy::headers::X_FORWARDED_FOR;
use crate::route::RouteError;

/// What the front door learnt about a request.
#[derive(Clone, Debug)]
pub(crate) struct Admitted {
    /// The canonical host; `None` for an HTTP/1.0 request without one.
    pub host: Option<Host>,
    /// The client's address: the TCP peer, or the right-most untrusted `X-Forwarded-For` entry
    /// when the peer is a trusted proxy.
    pub client: IpAddr,
    /// Whether the TCP peer is a trusted proxy (its `X-Forwarded-*` are believed).
    pub trusted_peer: bool,
}

/// Makes `req` canonical in place; see the module doc.
pub(crate) fn admit<B>(
    req: &mut Request<B>,
    peer: IpAddr,
    trusted_proxies: &[ipnet::IpNet],
) -> Result<Admitted, RouteError> {
    let host = host(req)?;
    // The URI's scheme and authority (absolute form, HTTP/2) are left in place when the path
    // needs no change: nothing after this point reads them, and it saves an allocation.
    if let Cow::Owned(path) = canonical::canonical_path(req.uri().path())? {
        let target = match req.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let target = PathAndQuery::try_from(target).map_err(|_| RouteError::BadPath)?;
        *req.uri_mut() = Uri::from(target);
    }
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    let trusted_peer = trusted(&peer);
    let client = if trusted_peer {
        client_behind(peer, req.headers(), trusted)
    } else {
        peer
    };
    Ok(Admitted {
        host,
        client,
        trusted_peer,
    })
}

/// The request's canonical host. HTTP/1.1 needs exactly one `Host`; an absolute-form target's
/// authority wins over it (RFC 9112 §3.2.2). HTTP/2's `:authority` and `host` must agree.
pub(crate) fn host<B>(req: &Request<B>) -> Result<Option<Host>, RouteError> {
    let mut values = req.headers().get_all(HOST).iter();
    let header = values.next();
    if values.next().is_some() {
        return Err(RouteError::BadHost);
    }
    let header = header.map(canonical::canonical_host_header).transpose()?;
    let authority = req
        .uri()
        .authority()
        .map(|a| canonical::canonical_host(a.as_str()))
        .transpose()?;
    match req.version() {
        Version::HTTP_2 | Version::HTTP_3 => match (authority, header) {
            (Some(a), Some(h)) if a != h => Err(RouteError::BadHost),
            (a, h) => Ok(a.or(h)),
        },
        Version::HTTP_11 if header.is_none() => Err(RouteError::BadHost),
        _ => Ok(authority.or(header)),
    }
}

/// The right-most `X-Forwarded-For` entry that is not a trusted proxy; the left-most if all
/// are; the last trusted hop walked if an entry does not parse.
fn client_behind(peer: IpAddr, headers: &HeaderMap, trusted: impl Fn(&IpAddr) -> bool) -> IpAddr {
    let mut client = peer;
    let values: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    for entry in values.iter().rev().flat_map(|v| v.rsplit(',')) {
        match parse_forwarded_ip(entry.trim()) {
            Some(ip) => {
                client = ip;
                if !trusted(&ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]` or either with a port.
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));

    fn request(version: Version, target: &str, hosts: &[&str]) -> Request<()> {
        let mut req = Request::builder()
            .version(version)
            .uri(target)
            .body(())
            .unwrap();
        for h in hosts {
            req.headers_mut()
                .append(HOST, HeaderValue::from_str(h).unwrap());
        }
        req
    }

    fn admit_host(
        version: Version,
        target: &str,
        hosts: &[&str],
    ) -> Result<Option<String>, RouteError> {
        let mut req = request(version, target, hosts);
        admit(&mut req, PEER, &[]).map(|a| a.host.map(|h| h.authority().to_owned()))
    }

    #[test]
    fn the_target_becomes_its_canonical_origin_form() {
        let mut req = request(Version::HTTP_11, "/%61dmin/x?q=%61", &["h"]);
        admit(&mut req, PEER, &[]).unwrap();
        assert_eq!(req.uri().to_string(), "/admin/x?q=%61");
        let mut req = request(
            Version::HTTP_11,
            "https://Secure.Test./%61",
            &["other.test"],
        );
        let admitted = admit(&mut req, PEER, &[]).unwrap();
        assert_eq!(req.uri().to_string(), "/a");
        assert_eq!(admitted.host.unwrap().name(), "secure.test");
        let mut req = request(Version::HTTP_11, "/a?b", &["h"]);
        admit(&mut req, PEER, &[]).unwrap();
        assert_eq!(req.uri().to_string(), "/a?b");
    }

    #[test]
    fn host_rules() {
        let bad = Err(RouteError::BadHost);
        assert_eq!(admit_host(Version::HTTP_11, "/", &[]), bad);
        assert_eq!(admit_host(Version::HTTP_11, "/", &["a", "a"]), bad);
        assert_eq!(admit_host(Version::HTTP_11, "/", &["x@y"]), bad);
        assert_eq!(admit_host(Version::HTTP_10, "/", &[]), Ok(None));
        assert_eq!(
            admit_host(Version::HTTP_11, "/", &["A.test.:81"]),
            Ok(Some("a.test:81".into()))
        );
        assert_eq!(
            admit_host(Version::HTTP_2, "https://a.test/", &["b.test"]),
            bad
        );
        assert_eq!(
            admit_host(Version::HTTP_2, "https://a.test/", &["A.TEST"]),
            Ok(Some("a.test".into()))
        );
        assert_eq!(
            admit_host(Version::HTTP_2, "/", &["b.test"]),
            Ok(Some("b.test".into()))
        );
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let trusted: Vec<ipnet::IpNet> = vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let client = |xff: &[&str], peer: IpAddr| {
            let mut req = request(Version::HTTP_11, "/", &["h"]);
            for v in xff {
                req.headers_mut()
                    .append(&X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
            }
            admit(&mut req, peer, &trusted).unwrap().client.to_string()
        };
        assert_eq!(client(&["203.0.113.1"], PEER), "203.0.113.1");
        assert_eq!(client(&["198.51.100.7, 10.1.1.1"], PEER), "198.51.100.7");
        assert_eq!(
            client(&["6.6.6.6", "198.51.100.7, 10.1.1.1"], PEER),
            "198.51.100.7"
        );
        assert_eq!(client(&["10.0.0.2, 10.0.0.3"], PEER), "10.0.0.2");
        assert_eq!(client(&["junk, 10.0.0.3"], PEER), "10.0.0.3");
        assert_eq!(client(&["[2001:db8::1]:443"], PEER), "2001:db8::1");
        assert_eq!(client(&[], PEER), "127.0.0.1");
        let outsider: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(client(&["203.0.113.1"], outsider), "192.0.2.9");
    }
}
