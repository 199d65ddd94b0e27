//! Forwarding a request to a route's upstream and streaming the answer back (SPEC §3).
//!
//! The request arrives canonical (`front.rs`): its URI is the canonical path and query, and
//! the client's canonical host travels in the `Hop`. That is exactly what the upstream gets.
//! Bodies are never buffered: the client's body is handed to the upstream client as it arrives
//! and the upstream's body is handed back to hyper the same way, so memory stays bounded
//! whatever the size. Failures map by source: connect → 502, no headers in time → 504, a
//! malformed client body → 400.

mod balance;
mod client;
mod error;
pub mod headers;
mod http1;
mod upgrade;

use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::BodyExt;

pub use client::ClientError;
pub use error::{ClientFailure, ProxyError};
pub use upgrade::{Tunnel, Upgraded, UpgradedIo};

use self::balance::{Balancer, Target};
use self::client::UpstreamClient;
use crate::auth::Identity;
use crate::body::{self, Body, Inbound};
use crate::config::{RouteConfig, UpstreamProtocol};

/// A route's upstreams: the balancer over their URLs and a client per request-path worker.
#[derive(Debug)]
pub struct Upstream {
    /// Indexed by [`Hop::worker`] (modulo their number, which a reload may change).
    clients: Box<[UpstreamClient]>,
    balancer: Balancer,
    version: Version,
}

impl Upstream {
    /// Each upstream URL of the route (scheme, authority and path) and whether it is in
    /// rotation: not skipped after a failed connect.
    pub fn health(&self) -> impl Iterator<Item = (String, bool)> + '_ {
        self.balancer.health()
    }

    /// The upstreams of `route`, with a client for each of `workers`.
    pub fn new(route: &RouteConfig, workers: usize) -> Result<Self, ClientError> {
        let targets = route.upstreams.iter().filter_map(Target::new).collect();
        // Validation guarantees at least one upstream URL with scheme and authority.
        let balancer = Balancer::new(targets).ok_or(ClientError::NoUpstream)?;
        Ok(Self {
            clients: client::build(route, workers, balancer.len())?.into_boxed_slice(),
            balancer,
            version: match route.upstream_protocol {
                UpstreamProtocol::Http1 => Version::HTTP_11,
                UpstreamProtocol::Http2 => Version::HTTP_2,
            },
        })
    }
}

/// What one hop knows about the client it forwards for.
#[derive(Clone, Copy, Debug)]
pub struct Hop<'a> {
    /// The TCP peer's address, as appended to `X-Forwarded-For` (rendered once per
    /// connection).
    pub peer: &'a HeaderValue,
    /// Whether the peer is a trusted proxy, whose `X-Forwarded-*` are kept.
    pub trusted_peer: bool,
    /// `"https"` or `"http"`: how the client reached the gateway.
    pub scheme: &'static str,
    /// The client's canonical host, `name[:port]`.
    pub host: Option<&'a HeaderValue>,
    pub request_id: &'a HeaderValue,
    /// The time (Unix seconds), for `X-Token-Expires-In`.
    pub now: u64,
    /// The request-path worker serving the client: its upstream connections are used.
    pub worker: usize,
}

/// The upstream's response, and the tunnel to run if it switched protocols.
#[derive(Debug)]
pub struct Forwarded {
    pub response: Response<Body>,
    pub tunnel: Option<Tunnel>,
}

/// The upstream URI: `target`'s scheme, `authority`, and the canonical `path` (minus the
/// route's prefix when it strips it) under the target's base path, then the query.
fn upstream_uri(
    route: &RouteConfig,
    target: &Target,
    authority: &str,
    path: &str,
    query: Option<&str>,
) -> Result<Uri, http::Error> {
    let path = if route.strip_prefix {
        let prefix = route.path_prefix.trim_end_matches('/');
        let rest = path.get(prefix.len()..).unwrap_or(path);
        if rest.starts_with('/') {
            rest
        } else {
            "/"
        }
    } else {
        path
    };
    let mut pq =
        String::with_capacity(target.base_path.len() + path.len() + 2 + query.map_or(0, str::len));
    pq.push_str(&target.base_path);
    pq.push_str(path);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    Uri::builder()
        .scheme(target.scheme.clone())
        .authority(authority)
        .path_and_query(PathAndQuery::try_from(pq)?)
        .build()
}

/// Forwards `req` to one of `route`'s upstreams; `identity` is the verified caller, if the
/// route required one. `used` is set to the upstream tried (the last one, after a retry), for
/// the access log. A request without a body that fails to connect is retried once on another
/// healthy upstream; a request with a body is not (its body cannot be replayed).
pub async fn forward(
    hop: &Hop<'_>,
    route: &RouteConfig,
    upstream: &Upstream,
    identity: Option<&Identity>,
    req: Request<Inbound>,
    used: &mut Option<Authority>,
) -> Result<Forwarded, ProxyError> {
    let switch = route
        .websocket
        .then(|| upgrade::requested(req.headers(), req.version()))
        .flatten();
    let (mut parts, inbound) = req.into_parts();
    // A cheap clone (shared bytes): the canonical target, kept while `parts.uri` is rewritten.
    let target_pq = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.version = upstream.version;
    headers::rewrite_request(hop, route, identity, &mut parts.headers);
    let http2 = upstream.version == Version::HTTP_2;
    // HTTP/1.1: the client's host in `Host` (or the client library fills in the upstream's).
    // HTTP/2: never a `host` header; the host travels as `:authority` (RFC 9113 §8.3.1).
    let preserved = hop.host.filter(|_| route.preserve_host);
    match preserved.filter(|_| !http2) {
        Some(host) => {
            parts.headers.insert(HOST, host.clone());
        }
        None => {
            parts.headers.remove(HOST);
        }
    }
    if let Some(protocol) = &switch {
        upgrade::restore(&mut parts.headers, protocol.clone());
    }
    let replayable = inbound.is_done();

    let client = &upstream.clients[hop.worker % upstream.clients.len()];
    let balancer = &upstream.balancer;
    let mut target = balancer.pick();
    let mut body = Some(inbound.clone().boxed());
    let timeout = route.timeout;
    let mut head = parts;
    let mut response = loop {
        *used = Some(target.authority.clone());
        let authority = match preserved.filter(|_| http2).map(HeaderValue::to_str) {
            Some(Ok(host)) => host,
            Some(Err(_)) | None => target.authority.as_str(),
        };
        head.uri = upstream_uri(
            route,
            target,
            authority,
            target_pq.path(),
            target_pq.query(),
        )
        .map_err(ProxyError::Target)?;
        // A copy of the head only when a failed connect could be retried elsewhere.
        let next = replayable.then(|| balancer.other_than(target)).flatten();
        let spare = next.map(|_| head.clone());
        let request = Request::from_parts(head, body.take().unwrap_or_else(body::empty));
        match tokio::time::timeout(timeout, client.send(target, request)).await {
            Err(_) => return Err(ProxyError::Timeout),
            Ok(Ok(response)) => break response,
            Ok(Err(e)) if e.connect => {
                balancer.mark_down(target);
                match next.zip(spare) {
                    Some((next, spare)) => {
                        tracing::debug!(upstream = %target.authority, "connect failed; retrying elsewhere");
                        target = next;
                        head = spare;
                    }
                    None => return Err(ProxyError::Connect(e.failure)),
                }
            }
            Ok(Err(e)) if inbound.failed() => return Err(ProxyError::Downstream(e.failure)),
            Ok(Err(e)) => return Err(ProxyError::Upstream(e.failure)),
        }
    };
    let switched = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    let upstream_upgrade = switched.then(|| hyper::upgrade::on(&mut response));
    let (mut parts, body) = response.into_parts();
    let protocol = parts.headers.get(http::header::UPGRADE).cloned();
    headers::rewrite_response(hop, identity, &mut parts.headers);
    let tunnel = match (switch, upstream_upgrade, protocol) {
        (Some(_), Some(upstream), Some(protocol)) => {
            upgrade::restore(&mut parts.headers, protocol);
            Some(Tunnel { upstream })
        }
        _ => None,
    };
    Ok(Forwarded {
        response: Response::from_parts(parts, body),
        tunnel,
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use http::HeaderMap;
    use http_body_util::Empty;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::config::Config;

    /// One route to `upstream`, from the configuration a user would write.
    fn route(upstream: std::net::SocketAddr) -> RouteConfig {
        let text = format!(
            "[[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nstrip_prefix = true\n\
             upstreams = [\"http://{upstream}/base\"]\n"
        );
        let config = Config::parse(&text, Path::new("/x/portcullis.toml")).unwrap();
        config.routes.into_iter().next().unwrap()
    }

    /// An upstream on 127.0.0.1 that answers 200 and keeps the head of what it received.
    async fn upstream() -> (std::net::SocketAddr, Arc<Mutex<Vec<(Uri, HeaderMap)>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let log = log.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    log.lock()
                        .unwrap()
                        .push((req.uri().clone(), req.headers().clone()));
                    async { Ok::<_, Infallible>(Response::new(Empty::<bytes::Bytes>::new())) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service),
                );
            }
        });
        (addr, seen)
    }

    /// `forward`, with every argument built here (no snapshot, no gateway), on a request that
    /// a real client sent to a real connection: a spoofed identity header and a spoofed
    /// `X-Forwarded-For` from an untrusted peer.
    #[tokio::test]
    async fn forward_sends_the_identity_and_the_hop_and_reports_the_upstream() {
        let (upstream_addr, seen) = upstream().await;
        let route = Arc::new(route(upstream_addr));
        let upstream = Arc::new(Upstream::new(&route, 2).unwrap());
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        let used = Arc::new(Mutex::new(None));
        let reported = used.clone();
        tokio::spawn(async move {
            let (tcp, peer) = front.accept().await.unwrap();
            let service = service_fn(move |req: Request<Incoming>| {
                let (route, upstream, used) = (route.clone(), upstream.clone(), used.clone());
                async move {
                    let (parts, incoming) = req.into_parts();
                    let req = Request::from_parts(parts, Inbound::new(incoming));
                    let request_id = HeaderValue::from_static("req-1");
                    let host = HeaderValue::from_static("api.example");
                    let peer_ip = HeaderValue::from_str(&peer.ip().to_string()).unwrap();
                    let hop = Hop {
                        peer: &peer_ip,
                        trusted_peer: false,
                        scheme: "https",
                        host: Some(&host),
                        request_id: &request_id,
                        now: 1_000,
                        worker: 1,
                    };
                    let identity = Identity::new(
                        "alice",
                        vec!["admin".to_owned(), "user".to_owned()],
                        "s-1".to_owned(),
                        1_060,
                    );
                    let mut upstream_used = None;
                    let forwarded = forward(
                        &hop,
                        &route,
                        &upstream,
                        Some(&identity),
                        req,
                        &mut upstream_used,
                    )
                    .await
                    .unwrap();
                    *used.lock().unwrap() = upstream_used;
                    Ok::<_, Infallible>(forwarded.response)
                }
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await
                .unwrap();
        });

        let tcp = TcpStream::connect(front_addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let request = Request::get("/api/items?q=1")
            .header("host", "api.example")
            .header("x-auth-user", "mallory")
            .header("x_auth_roles", "admin")
            .header("x-forwarded-for", "203.0.113.9")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = send.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);

        let seen = seen.lock().unwrap();
        let (uri, headers) = &seen[0];
        assert_eq!(uri.path_and_query().unwrap().as_str(), "/base/items?q=1");
        let all = |name: &str| -> Vec<&str> {
            (headers.get_all(name).iter())
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        assert_eq!(all("x-auth-user"), ["alice"]);
        assert_eq!(all("x-auth-roles"), ["admin,user"]);
        assert_eq!(all("x-auth-session"), ["s-1"]);
        assert!(all("x_auth_roles").is_empty());
        assert_eq!(
            all("x-forwarded-for"),
            ["127.0.0.1"],
            "an untrusted peer's XFF is dropped"
        );
        assert_eq!(all("x-forwarded-proto"), ["https"]);
        assert_eq!(all("x-forwarded-host"), ["api.example"]);
        assert_eq!(all("x-request-id"), ["req-1"]);
        drop(seen);
        // The client learns how long its token has left, from `hop.now`.
        assert_eq!(response.headers()["x-token-expires-in"], "60");
        assert_eq!(
            reported.lock().unwrap().as_ref().map(Authority::as_str),
            Some(upstream_addr.to_string().as_str())
        );
    }
}
