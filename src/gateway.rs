//! The hyper service: every request passes through here, and every request gets a response.
//!
//! Phases, in order: request id → the front door (`front.rs`: head size, canonical path and
//! host, client address) → the gateway's own endpoints (token, logout, revoke, introspect,
//! JWKS, metadata), else route match → authenticate → authorize → forward (rewrite request,
//! call upstream, rewrite response) → access log. `handle` never fails: `handle_inner` returns
//! `Result<_, Rejection>` and the rejection is rendered here, in one place. An `Err` reaching
//! hyper would close the connection without a response.
//!
//! A response that goes out before its request's body was read must still reach a client that
//! is busy sending: on HTTP/1 the connection closes after lingering (`ConnState`); on HTTP/2
//! the body is kept open until the response has been sent and then read and discarded
//! (bounded), so the stream ends normally instead of being reset.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{CONNECTION, USER_AGENT};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use crate::auth;
use crate::body::{self, Body, Inbound};
use crate::canonical::Host;
use crate::config::{AuthMode, Endpoint};
use crate::ctx::{AccessRecord, ConnState, RequestCtx};
use crate::front;
use crate::metrics::{ErrorCode, UpstreamError};
use crate::proxy::{self, headers, Hop};
use crate::reject::Rejection;
use crate::state::Shared;
use crate::telemetry::{self, AccessLine, RequestLine};
use crate::token;

/// What the connection knows about its client.
#[derive(Clone, Debug)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    /// The peer's address as a header value (`X-Forwarded-For`), rendered once.
    pub peer_ip: HeaderValue,
    /// `"https"` or `"http"`.
    pub scheme: &'static str,
    /// `"TLSv1.3"` or `"TLSv1.2"`; `None` on a plain listener.
    pub tls_version: Option<&'static str>,
    pub state: Arc<ConnState>,
    /// The request-path worker the connection was accepted on.
    pub worker: usize,
}

/// Serves one request. Never fails.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Response<Body> {
    let (parts, incoming) = req.into_parts();
    let inbound = Inbound::new(incoming);
    let mut req = Request::from_parts(parts, inbound.clone());
    let mut ctx = RequestCtx {
        request_id: headers::request_id(req.headers()),
        peer: conn.peer,
        peer_ip: conn.peer_ip,
        client: conn.peer.ip(),
        trusted_peer: false,
        scheme: conn.scheme,
        tls_version: conn.tls_version,
        host: None,
        snapshot: shared.snapshot(),
        shared,
        conn: conn.state,
        worker: conn.worker,
        start: Instant::now(),
    };
    let mut record = AccessRecord::default();
    let http1 = req.version() < Version::HTTP_2;
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let server = &ctx.snapshot.config.server;
    let admitted = front::admit(&mut req, conn.peer.ip(), &server.trusted_proxies);
    // Canonical once admitted; as sent when refused (the log shows what was refused). Kept
    // only for the access log: nothing is copied when it is off.
    let request_line = (ctx.snapshot.config.log.access_log).then(|| RequestLine {
        method: req.method().clone(),
        path: req.uri().path().to_owned(),
        user_agent: req.headers().get(USER_AGENT).cloned(),
        protocol: telemetry::protocol(req.version()),
        body: inbound.clone(),
    });
    let result = match admitted {
        Ok(admitted) => {
            if admitted.trusted_peer {
                ctx.scheme = forwarded_proto(req.headers()).unwrap_or(ctx.scheme);
            }
            ctx.client = admitted.client;
            ctx.trusted_peer = admitted.trusted_peer;
            ctx.host = admitted.host;
            handle_inner(&ctx, &mut record, req).await
        }
        Err(e) => Err(e.into()),
    };
    let (mut response, cause) = match result {
        Ok(response) => (response, None),
        Err(mut rejection) => {
            rejection.close &= http1;
            let cause = rejection.cause.take();
            let response = if grpc {
                rejection.into_grpc_response()
            } else {
                rejection.into_response()
            };
            (response, cause)
        }
    };
    if !inbound.is_done() {
        // 408: the body did not come; waiting for it any longer is pointless.
        let gave_up = response.status() == StatusCode::REQUEST_TIMEOUT;
        if http1 {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            if !gave_up {
                ctx.conn.set_linger();
            }
        } else if !gave_up {
            response = response.map(|b| body::holding(b, inbound));
        }
    }
    if http1
        && response
            .headers()
            .get(CONNECTION)
            .is_some_and(|v| v == "close")
    {
        ctx.conn.set_closing();
    }
    // Never indexed by HPACK (a never-indexed literal): the id is new on every response, so
    // indexing it would only evict the table's entries that do repeat.
    let mut request_id = ctx.request_id.clone();
    request_id.set_sensitive(true);
    response
        .headers_mut()
        .insert(headers::X_REQUEST_ID.clone(), request_id);
    let route = (record.route.as_ref()).unwrap_or_else(|| ctx.shared.metrics.unmatched());
    route.observe(response.status().as_u16(), ctx.start.elapsed());
    if let Some(request) = request_line {
        let status = response.status().as_u16();
        let line = access_line(&ctx, record, request, status, cause);
        response = response.map(|b| telemetry::logged(b, line));
    }
    response
}

/// A trusted proxy's `X-Forwarded-Proto` (its first value), when it is `http` or `https`.
fn forwarded_proto(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get(&headers::X_FORWARDED_PROTO)?.as_bytes();
    let first = value.split(|b| *b == b',').next()?.trim_ascii();
    if first.eq_ignore_ascii_case(b"https") {
        Some("https")
    } else if first.eq_ignore_ascii_case(b"http") {
        Some("http")
    } else {
        None
    }
}

async fn handle_inner(
    ctx: &RequestCtx,
    record: &mut AccessRecord,
    req: Request<Inbound>,
) -> Result<Response<Body>, Rejection> {
    let snapshot = ctx.snapshot.clone();
    let path = req.uri().path();
    let endpoint = snapshot.config.endpoints.find(path);
    if let Some(endpoint) = endpoint {
        record.route = Some(ctx.shared.metrics.endpoint(endpoint).clone());
    }
    match endpoint {
        Some(Endpoint::Token) => {
            let result = token::handle_token(&ctx.tokens(), &mut record.user, req)
                .await
                .map_err(Rejection::from);
            if let Err(rejection) = &result {
                let error = ErrorCode {
                    error: rejection.error,
                };
                ctx.shared.metrics.token_errors.get_or_create(&error).inc();
            }
            return result;
        }
        Some(Endpoint::Logout) => {
            return Ok(token::handle_logout(&ctx.tokens(), &mut record.user, req).await?)
        }
        Some(Endpoint::Revoke) => {
            return Ok(token::handle_revoke(&ctx.tokens(), &mut record.user, req).await?)
        }
        Some(Endpoint::Introspect) => {
            return Ok(token::handle_introspect(&ctx.tokens(), &mut record.user, req).await?)
        }
        Some(Endpoint::Jwks) => return Ok(token::discovery::handle_jwks(&ctx.tokens(), &req)?),
        Some(Endpoint::Metadata) => {
            return Ok(token::discovery::handle_metadata(&ctx.tokens(), &req)?)
        }
        None => {}
    }

    let host = ctx.host.as_ref().map(Host::name);
    let route = snapshot.router.find(host, path)?;
    record.route = Some(route.metrics.clone());

    let metrics = &ctx.shared.metrics;
    // One reading of the wall clock per request: the token's expiry and the hop's time.
    let now = ctx.shared.clock.unix();
    let identity = match route.config.auth {
        AuthMode::Public => None,
        AuthMode::Required => {
            let deny = ctx.shared.sessions.deny_list();
            let identity = (snapshot.verifier.authenticate(deny, req.headers(), now))
                .inspect_err(|e| metrics.auth_failure(e.reason()))?;
            record.user = Some(identity.user.clone());
            auth::authorize(&identity, &route.config.roles)
                .inspect_err(|e| metrics.auth_failure(e.reason()))?;
            Some(identity)
        }
    };
    let hop = Hop {
        peer: &ctx.peer_ip,
        trusted_peer: ctx.trusted_peer,
        scheme: ctx.scheme,
        host: ctx.host.as_ref().map(Host::header_value),
        request_id: &ctx.request_id,
        now,
        worker: ctx.worker,
    };
    let forwarded = proxy::forward(
        &hop,
        &route.config,
        &route.upstream,
        identity.as_deref(),
        req,
        &mut record.upstream,
    )
    .await
    .inspect_err(|e| {
        if let Some(kind) = e.upstream_kind() {
            let labels = UpstreamError {
                route: route.label().clone(),
                kind,
            };
            ctx.shared
                .metrics
                .upstream_errors
                .get_or_create(&labels)
                .inc();
        }
    })?;
    if let Some(tunnel) = forwarded.tunnel {
        let shared = ctx.shared.clone();
        let sid = identity.map(|id| id.sid.clone());
        let client = ctx.conn.expect_upgrade();
        let task = tokio::spawn(async move {
            let revoked = async {
                match &sid {
                    Some(sid) => shared.sessions.deny_list().revoked(sid).await,
                    None => std::future::pending().await,
                }
            };
            tunnel.run(async { client.await.ok() }, revoked).await;
        });
        ctx.conn.adopt(task);
    }
    Ok(forwarded.response)
}

/// The access line of the request `ctx` served: what `request` said, what the phases learnt
/// (`record`), the response's `status` and the rejection's `cause`. `bytes_out` is added when
/// the response body ends (`telemetry::logged`). Never the query string, a header value other
/// than the user agent, a token or a password.
fn access_line(
    ctx: &RequestCtx,
    record: AccessRecord,
    request: RequestLine,
    status: u16,
    cause: Option<Box<str>>,
) -> AccessLine {
    AccessLine {
        fields: ctx.snapshot.config.log.access_fields.clone(),
        request,
        status,
        duration_ms: ctx.start.elapsed().as_secs_f64() * 1000.0,
        user: record.user,
        route: record.route.map(|route| route.label().clone()),
        upstream: record.upstream,
        request_id: ctx.request_id.clone(),
        peer: ctx.peer,
        client: ctx.client,
        host: ctx.host.clone(),
        tls_version: ctx.tls_version,
        cause,
    }
}
