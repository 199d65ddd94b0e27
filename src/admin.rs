//! The admin listener (plain HTTP, loopback by default): `/healthz`, `/readyz`, `/metrics`
//! (Prometheus text format), `/openapi.json` (the OpenAPI 3.1 document of the gateway's own
//! endpoints and of this listener, `docs/openapi.json`) and session administration under
//! `/admin/` (list, revoke one, revoke every session of a user). It has no authentication of its
//! own: keep it on loopback or a private network, as with Envoy's and HAProxy's admin interfaces.
//! It answers only requests whose `Host` names it (`host_allowed`), against DNS rebinding.

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{self, json, Body};
use crate::reject::Rejection;
use crate::state::Shared;

/// `docs/openapi.json`, served as is at `/openapi.json`.
pub(crate) const OPENAPI: &str = include_str!("../docs/openapi.json");

/// Serves one admin request (the accept loop is `server::serve_admin`'s).
pub(crate) async fn handle(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    if !host_allowed(req, &shared.snapshot().config.admin.allowed_hosts) {
        return Rejection::foreign_host().into_response();
    }
    let path = req.uri().path();
    match path {
        "/healthz" => json(StatusCode::OK, r#"{"status":"ok"}"#),
        "/readyz" if shared.is_draining() => json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"not ready","reason":"shutting down"}"#,
        ),
        "/readyz" if shared.sessions.is_ready() => json(StatusCode::OK, r#"{"status":"ready"}"#),
        "/readyz" => json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"not ready","reason":"the session store is unreachable"}"#,
        ),
        "/metrics" => metrics(shared),
        "/openapi.json" => json(StatusCode::OK, OPENAPI),
        _ => match sessions::route(path) {
            Some(target) => sessions::handle(shared, req, target).await,
            None => Rejection::not_found("The admin listener has no such path").into_response(),
        },
    }
}

/// Whether the request's `Host` names this listener: an IP literal, `localhost` or a
/// `*.localhost` name, or one of `allowed`. A browser lured to a hostile page whose name
/// resolves to the admin listener's address (DNS rebinding) sends that page's name, which is
/// none of those, so it cannot list or revoke sessions. IP literals are safe: a page served
/// from an IP literal is the listener's own origin.
fn host_allowed<B>(req: &Request<B>, allowed: &[String]) -> bool {
    let host = match crate::front::host(req) {
        Ok(Some(host)) => host,
        // HTTP/1.0 without a Host: not a browser.
        Ok(None) => return req.version() < http::Version::HTTP_11,
        Err(_) => return false,
    };
    let name = host.name();
    name.starts_with('[')
        || name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || allowed.iter().any(|a| a == name)
}

fn metrics(shared: &Shared) -> Response<Body> {
    let metrics = &shared.metrics;
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    metrics.active_sessions.set(gauge(shared.sessions.len()));
    metrics.login_queue.set(gauge(shared.hashing.depth()));
    // The current configuration's upstreams only: a route a reload removed goes.
    metrics.upstream_up.clear();
    for route in shared.snapshot().router.routes() {
        for (upstream, up) in route.upstream.health() {
            let target = crate::metrics::UpstreamTarget {
                route: route.label().clone(),
                upstream,
            };
            metrics
                .upstream_up
                .get_or_create(&target)
                .set(i64::from(up));
        }
    }
    let mut response = Response::new(body::full(metrics.render()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Session administration: list sessions, revoke one, revoke all of a user.
mod sessions {
    use http::{Method, Request, Response, StatusCode};
    use hyper::body::Incoming;
    use percent_encoding::percent_decode_str;
    use serde::Serialize;

    use crate::body::{json, Body};
    use crate::reject::Rejection;
    use crate::session::StoreError;
    use crate::state::Shared;

    /// What an admin path names.
    pub(super) enum Target {
        /// `/admin/sessions`
        All,
        /// `/admin/sessions/{sid}`
        Session(String),
        /// `/admin/users/{user}/sessions`
        User(String),
    }

    pub(super) fn route(path: &str) -> Option<Target> {
        if path == "/admin/sessions" {
            return Some(Target::All);
        }
        if let Some(sid) = path.strip_prefix("/admin/sessions/") {
            return segment(sid).map(Target::Session);
        }
        let user = path
            .strip_prefix("/admin/users/")?
            .strip_suffix("/sessions")?;
        segment(user).map(Target::User)
    }

    /// One percent-decoded, non-empty path segment.
    fn segment(raw: &str) -> Option<String> {
        if raw.is_empty() || raw.contains('/') {
            return None;
        }
        percent_decode_str(raw)
            .decode_utf8()
            .ok()
            .map(|s| s.into_owned())
    }

    #[derive(Serialize)]
    struct Listed<'a> {
        sid: &'a str,
        user: &'a str,
        created_at: u64,
        expires_at: u64,
    }

    pub(super) async fn handle(
        shared: &Shared,
        req: &Request<Incoming>,
        target: Target,
    ) -> Response<Body> {
        let result = match (req.method(), target) {
            (&Method::GET, Target::All) => list(shared, user_param(req).as_deref()).await,
            (&Method::DELETE, Target::Session(sid)) => revoke_one(shared, &sid).await,
            (&Method::DELETE, Target::User(user)) => revoke_user(shared, &user).await,
            (_, target) => {
                let allow = match target {
                    Target::All => "GET",
                    Target::Session(_) | Target::User(_) => "DELETE",
                };
                return Rejection::method_not_allowed(allow).into_response();
            }
        };
        result.unwrap_or_else(|e| {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "session admin request failed");
            Rejection::from(e).into_response()
        })
    }

    fn user_param(req: &Request<Incoming>) -> Option<String> {
        let query = req.uri().query()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "user")
            .map(|(_, v)| v.into_owned())
    }

    async fn list(shared: &Shared, user: Option<&str>) -> Result<Response<Body>, StoreError> {
        let sessions = shared.sessions.list(user, shared.clock.unix()).await?;
        let listed: Vec<Listed<'_>> = sessions
            .iter()
            .map(|s| Listed {
                sid: &s.sid,
                user: &s.user,
                created_at: s.created_at,
                expires_at: s.expires_at,
            })
            .collect();
        let body = serde_json::json!({ "sessions": listed }).to_string();
        Ok(json(StatusCode::OK, body))
    }

    async fn revoke_one(shared: &Shared, sid: &str) -> Result<Response<Body>, StoreError> {
        let now = shared.clock.unix();
        let live = shared
            .sessions
            .get(sid)
            .await?
            .filter(|s| s.expires_at > now);
        let Some(session) = live else {
            return Ok(Rejection::not_found("No live session has that id").into_response());
        };
        let until =
            crate::token::revocation_deadline(&shared.snapshot().config, shared.clock.unix());
        shared.sessions.revoke(sid, until).await?;
        tracing::info!(target: "audit", event = "admin_revoke", user = ?session.user, sid = %sid);
        Ok(json(StatusCode::OK, r#"{"revoked":1}"#))
    }

    async fn revoke_user(shared: &Shared, user: &str) -> Result<Response<Body>, StoreError> {
        let until =
            crate::token::revocation_deadline(&shared.snapshot().config, shared.clock.unix());
        let mut revoked = 0_u64;
        for session in shared
            .sessions
            .list(Some(user), shared.clock.unix())
            .await?
        {
            if shared.sessions.revoke(&session.sid, until).await? {
                revoked += 1;
            }
        }
        tracing::info!(target: "audit", event = "admin_revoke_user", user = ?user, sessions = revoked);
        Ok(json(StatusCode::OK, format!(r#"{{"revoked":{revoked}}}"#)))
    }
}
