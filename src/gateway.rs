//! The hyper service: every request passes through here, and every request gets a response.
//!
//! Phases, in order: request id → the gateway's own endpoints (token, logout, revoke,
//! introspect, JWKS, metadata), else path check and route match
//! → authenticate → authorize → forward (rewrite request, call upstream, rewrite response) →
//! access log. `handle` never fails: `handle_inner` returns `Result<_, Rejection>` and the
//! rejection is rendered here, in one place. An `Err` reaching hyper would close the connection
//! without a response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use crate::auth;
use crate::body::Body;
use crate::config::AuthMode;
use crate::ctx::RequestCtx;
use crate::metrics::{ErrorCode, RouteLabel, RouteStatus, UpstreamError};
use crate::proxy::{self, headers};
use crate::reject::Rejection;
use crate::route;
use crate::state::Shared;
use crate::token;

/// What the connection knows about its client.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// `"https"` or `"http"`.
    pub scheme: &'static str,
    /// The logins in flight on this connection (at most 4).
    pub logins: Arc<crate::login::ConnLogins>,
}

/// Serves one request. Never fails.
pub async fn handle(shared: Arc<Shared>, conn: ConnInfo, req: Request<Incoming>) -> Response<Body> {
    let mut ctx = RequestCtx {
        request_id: headers::request_id(req.headers()),
        peer: conn.peer,
        scheme: conn.scheme,
        snapshot: shared.snapshot(),
        shared,
        logins: conn.logins,
        start: Instant::now(),
        route: None,
        user: None,
        upstream: None,
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let http1 = req.version() < Version::HTTP_2;
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let (mut response, cause) = match handle_inner(&mut ctx, req).await {
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
    response
        .headers_mut()
        .insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());
    let metrics = &ctx.shared.metrics;
    let route = ctx.route.clone().unwrap_or_else(|| "-".to_owned());
    metrics
        .duration
        .get_or_create(&RouteLabel {
            route: route.clone(),
        })
        .observe(ctx.start.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RouteStatus {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    access_log(&ctx, &method, &path, response.status(), cause.as_deref());
    response
}

async fn handle_inner(
    ctx: &mut RequestCtx,
    req: Request<Incoming>,
) -> Result<Response<Body>, Rejection> {
    let snapshot = ctx.snapshot.clone();
    let endpoints = &snapshot.config.endpoints;
    let path = req.uri().path();
    if path == endpoints.token {
        let result = token::handle_token(ctx, req).await;
        if let Err(rejection) = &result {
            let error = ErrorCode {
                error: rejection.error,
            };
            ctx.shared.metrics.token_errors.get_or_create(&error).inc();
        }
        return result;
    }
    if path == endpoints.logout {
        return token::handle_logout(ctx, req).await;
    }
    if path == endpoints.revoke {
        return token::handle_revoke(ctx, req).await;
    }
    if path == endpoints.introspect {
        return token::handle_introspect(ctx, req).await;
    }
    if path == endpoints.jwks {
        return token::discovery::handle_jwks(ctx, &req);
    }
    if path == endpoints.metadata {
        return token::discovery::handle_metadata(ctx, &req);
    }

    route::check_path(path)?;
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let route = snapshot.router.find(host, path)?;
    ctx.route = Some(route.config.name.clone());

    let metrics = &ctx.shared.metrics;
    let identity = match route.config.auth {
        AuthMode::Public => None,
        AuthMode::Required => {
            let deny = ctx.shared.sessions.deny_list();
            let identity = auth::authenticate(&snapshot, deny, req.headers())
                .inspect_err(|e| metrics.auth_failure(*e))?;
            ctx.user = Some(identity.user.clone());
            auth::authorize(&identity, &route.config.roles)
                .inspect_err(|e| metrics.auth_failure(*e))?;
            Some(identity)
        }
    };
    let forwarded =
        proxy::forward(ctx, &route.config, &route.upstream, identity.as_ref(), req).await;
    Ok(forwarded.inspect_err(|e| {
        let kind = match e {
            proxy::ProxyError::Connect(_) => "connect",
            proxy::ProxyError::Timeout => "timeout",
            proxy::ProxyError::Upstream(_) | proxy::ProxyError::Target(_) => "other",
        };
        let labels = UpstreamError {
            route: route.config.name.clone(),
            kind,
        };
        ctx.shared
            .metrics
            .upstream_errors
            .get_or_create(&labels)
            .inc();
    })?)
}

/// One line per request: method, path without query, status, duration, user, route, upstream
/// (absent when the gateway answered itself), request id. Never the query string, a header value,
/// a token or a password.
fn access_log(
    ctx: &RequestCtx,
    method: &Method,
    path: &str,
    status: StatusCode,
    cause: Option<&str>,
) {
    if !ctx.snapshot.config.log.access_log {
        return;
    }
    tracing::info!(
        target: "access",
        method = %method,
        path,
        status = status.as_u16(),
        duration_ms = ctx.start.elapsed().as_secs_f64() * 1000.0,
        user = ctx.user.as_deref().unwrap_or("-"),
        route = ctx.route.as_deref().unwrap_or("-"),
        upstream = ctx.upstream.as_deref(),
        request_id = ctx.request_id.to_str().unwrap_or("-"),
        peer = %ctx.peer,
        cause,
    );
}
