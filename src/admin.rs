//! The admin listener (plain HTTP, loopback by default): `/healthz`, `/readyz`, `/metrics`
//! (Prometheus text format) and `/openapi.json` (the OpenAPI 3.1 document of the gateway's own
//! endpoints and of this listener, `docs/openapi.json`).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::state::Shared;

/// `docs/openapi.json`, served as is at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../docs/openapi.json");

/// Serves the admin endpoints on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(error = %e, "admin accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, &req)) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .http1_only()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn handle(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    let (status, text) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, r#"{"status":"ok"}"#),
        "/readyz" => {
            // The in-memory store is always reachable; backends with a network add a check here.
            let _ = shared.sessions.len();
            (StatusCode::OK, r#"{"status":"ready"}"#)
        }
        "/metrics" => {
            let metrics = &shared.metrics;
            metrics
                .active_sessions
                .set(i64::try_from(shared.sessions.len()).unwrap_or(i64::MAX));
            let mut response = Response::new(body::full(metrics.render()));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return response;
        }
        "/openapi.json" => (StatusCode::OK, OPENAPI),
        _ => (StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#),
    };
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
