//! Forwarding a request to a route's upstream and streaming the answer back (SPEC §3).
//!
//! Bodies are never buffered: the client's body is handed to the upstream client as it arrives
//! and the upstream's body is handed back to hyper the same way, so memory stays bounded
//! whatever the size. Failures map by source: connect → 502, no headers in time → 504.

mod error;
pub mod headers;

use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub use error::ProxyError;

use crate::auth::Identity;
use crate::body::Body;
use crate::config::{RouteConfig, UpstreamProtocol};
use crate::ctx::RequestCtx;

/// A route's upstream: a pooled keep-alive client and the base URL requests go to.
#[derive(Debug)]
pub struct Upstream {
    client: Client<HttpConnector, Incoming>,
    scheme: Scheme,
    authority: Authority,
    /// The upstream URL's path without a trailing `/` (`""` for the root).
    base_path: String,
    version: Version,
    timeout: Duration,
}

impl Upstream {
    /// `None` when the route has no usable upstream (validation rules that out).
    pub fn new(route: &RouteConfig) -> Option<Self> {
        let uri = route.upstreams.first()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(route.connect_timeout));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256);
        let version = match route.upstream_protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::Http2 => {
                builder.http2_only(true);
                Version::HTTP_2
            }
        };
        Some(Self {
            client: builder.build(connector),
            scheme: uri.scheme()?.clone(),
            authority: uri.authority()?.clone(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            version,
            timeout: route.timeout,
        })
    }

    /// The upstream URI for a client request to `path_and_query` on `route`.
    fn uri(&self, route: &RouteConfig, path_and_query: &str) -> Result<Uri, http::Error> {
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
        let mut pq = String::with_capacity(self.base_path.len() + path_and_query.len() + 1);
        pq.push_str(&self.base_path);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::try_from(pq)?)
            .build()
    }
}

/// Forwards `req` to `route`'s upstream; `identity` is the verified caller, if the route
/// required one.
pub async fn forward(
    ctx: &RequestCtx,
    route: &RouteConfig,
    upstream: &Upstream,
    identity: Option<&Identity>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    let host = parts.headers.get(http::header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    });
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = upstream
        .uri(route, path_and_query)
        .map_err(ProxyError::Target)?;
    parts.version = upstream.version;
    headers::rewrite_request(ctx, route, identity, host.as_ref(), &mut parts.headers);

    let request = Request::from_parts(parts, body);
    let response =
        match tokio::time::timeout(upstream.timeout, upstream.client.request(request)).await {
            Err(_) => return Err(ProxyError::Timeout),
            Ok(Err(e)) if e.is_connect() => return Err(ProxyError::Connect(e)),
            Ok(Err(e)) => return Err(ProxyError::Upstream(e)),
            Ok(Ok(response)) => response,
        };
    let (mut parts, body) = response.into_parts();
    headers::rewrite_response(ctx, identity, &mut parts.headers);
    Ok(Response::from_parts(parts, body.boxed()))
}
