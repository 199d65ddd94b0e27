//! `RequestCtx`: what one request carries through the phases of `gateway.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;

use crate::state::{Shared, Snapshot};

/// Per-request data. The snapshot is taken once at entry, so every phase of one request sees
/// the same configuration even if a reload happens meanwhile.
#[derive(Debug)]
pub struct RequestCtx {
    pub request_id: HeaderValue,
    pub peer: SocketAddr,
    /// `"https"` or `"http"`: how the client reached us.
    pub scheme: &'static str,
    pub snapshot: Arc<Snapshot>,
    pub shared: Arc<Shared>,
    /// The logins in flight on this request's connection.
    pub logins: Arc<crate::login::ConnLogins>,
    pub start: Instant,
    /// Filled in by the phases, for the access log.
    pub route: Option<String>,
    pub user: Option<String>,
    /// The upstream (`host:port`) the request was forwarded to, or last tried when none
    /// answered; `None` for requests the gateway answered itself.
    pub upstream: Option<String>,
}
