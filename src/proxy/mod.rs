//! Forwarding a request to a route's upstream and streaming the answer back (SPEC §3).
//!
//! Bodies are never buffered: the client's body is handed to the upstream client as it arrives
//! and the upstream's body is handed back to hyper the same way, so memory stays bounded
//! whatever the size. Failures map by source: connect → 502, no headers in time → 504.

mod balance;
mod client;
mod error;
pub mod headers;
mod upgrade;

use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};

pub use client::ClientError;
pub use error::ProxyError;

use self::balance::{Balancer, Target};
use self::client::UpstreamClient;
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::config::{RouteConfig, UpstreamProtocol};
use crate::ctx::RequestCtx;

/// A route's upstreams: the balancer over their URLs and one pooled client.
#[derive(Debug)]
pub struct Upstream {
    client: UpstreamClient,
    balancer: Balancer,
    version: Version,
}

impl Upstream {
    pub fn new(route: &RouteConfig) -> Result<Self, ClientError> {
        let targets = route.upstreams.iter().filter_map(Target::new).collect();
        Ok(Self {
            client: client::build(route)?,
            // Validation guarantees at least one upstream URL with scheme and authority.
            balancer: Balancer::new(targets).ok_or(ClientError::NoUpstream)?,
            version: match route.upstream_protocol {
                UpstreamProtocol::Http1 => Version::HTTP_11,
                UpstreamProtocol::Http2 => Version::HTTP_2,
            },
        })
    }
}

/// The upstream URI for a client request to `path_and_query` on `route`, sent to `target`.
fn upstream_uri(
    route: &RouteConfig,
    target: &Target,
    path_and_query: &str,
) -> Result<Uri, http::Error> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let path = if route.strip_prefix {
        let rest = path
            .strip_prefix(route.path_prefix.trim_end_matches('/'))
            .unwrap_or(path);
        if rest.starts_with('/') {
            rest
        } else {
            "/"
        }
    } else {
        path
    };
    let mut pq = String::with_capacity(target.base_path.len() + path_and_query.len() + 1);
    pq.push_str(&target.base_path);
    pq.push_str(path);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(PathAndQuery::try_from(pq)?)
        .build()
}

/// Forwards `req` to one of `route`'s upstreams (recorded in `ctx.upstream` for the access log);
/// `identity` is the verified caller, if the route required one. A request without a body that fails to connect is retried once on
/// another healthy upstream; a request with a body is not (its body cannot be replayed).
pub async fn forward(
    ctx: &mut RequestCtx,
    route: &RouteConfig,
    upstream: &Upstream,
    identity: Option<&Identity>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let switch = route
        .websocket
        .then(|| upgrade::requested(req.headers(), req.version()))
        .flatten()
        .map(|protocol| (protocol, hyper::upgrade::on(&mut req)));
    let (mut parts, incoming) = req.into_parts();
    let host = parts.headers.get(http::header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    });
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    parts.version = upstream.version;
    headers::rewrite_request(ctx, route, identity, host.as_ref(), &mut parts.headers);
    if let Some((protocol, _)) = &switch {
        upgrade::restore(&mut parts.headers, protocol.clone());
    }
    let replayable = incoming.is_end_stream();

    let balancer = &upstream.balancer;
    let mut target = balancer.pick();
    let mut body = Some(incoming.boxed());
    let timeout = route.timeout;
    let mut response = loop {
        ctx.upstream = Some(target.authority.to_string());
        parts.uri = upstream_uri(route, target, &path_and_query).map_err(ProxyError::Target)?;
        let request = Request::from_parts(parts.clone(), body.take().unwrap_or_else(body::empty));
        match tokio::time::timeout(timeout, upstream.client.request(request)).await {
            Err(_) => return Err(ProxyError::Timeout),
            Ok(Ok(response)) => break response,
            Ok(Err(e)) if e.is_connect() => {
                balancer.mark_down(target);
                match balancer.other_than(target).filter(|_| replayable) {
                    Some(next) => {
                        tracing::debug!(upstream = %target.authority, "connect failed; retrying elsewhere");
                        target = next;
                    }
                    None => return Err(ProxyError::Connect(e)),
                }
            }
            Ok(Err(e)) => return Err(ProxyError::Upstream(e)),
        }
    };
    let switched = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    let upstream_upgrade = switched.then(|| hyper::upgrade::on(&mut response));
    let (mut parts, body) = response.into_parts();
    let protocol = parts.headers.get(http::header::UPGRADE).cloned();
    headers::rewrite_response(ctx, identity, &mut parts.headers);
    if let (Some((_, client)), Some(upstream), Some(protocol)) =
        (switch, upstream_upgrade, protocol)
    {
        upgrade::restore(&mut parts.headers, protocol);
        let sid = identity.map(|id| id.sid.clone());
        tokio::spawn(upgrade::tunnel(client, upstream, ctx.shared.clone(), sid));
    }
    Ok(Response::from_parts(parts, body.boxed()))
}
