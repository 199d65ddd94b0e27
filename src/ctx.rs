//! `RequestCtx`: what one request carries through the phases of `gateway.rs`, read-only;
//! `AccessRecord`: what the phases learn of it for the access log; and
//! `ConnState`: what the requests of one connection tell that connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use http::HeaderValue;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::canonical::Host;
use crate::proxy::Upgraded;
use crate::state::{Shared, Snapshot};
use crate::token::TokenCtx;

/// Per-request data, read-only once the front door has admitted the request. The snapshot is
/// taken once at entry, so every phase of one request sees the same configuration even if a
/// reload happens meanwhile. What the phases learn for the access log goes to an
/// [`AccessRecord`] beside it.
#[derive(Debug)]
pub(crate) struct RequestCtx {
    pub request_id: HeaderValue,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Its address, as a header value.
    pub peer_ip: HeaderValue,
    /// The client: the peer, or the address a trusted proxy in front reports (`front.rs`).
    pub client: IpAddr,
    /// Whether the peer is a trusted proxy.
    pub trusted_peer: bool,
    /// `"https"` or `"http"`: how the client reached us (or the trusted proxy in front).
    pub scheme: &'static str,
    /// `"TLSv1.3"` or `"TLSv1.2"`: the TLS version of the connection; `None` on plain HTTP.
    pub tls_version: Option<&'static str>,
    /// The request's canonical host, once the front door has admitted it.
    pub host: Option<Host>,
    pub snapshot: Arc<Snapshot>,
    pub shared: Arc<Shared>,
    /// The connection the request came on.
    pub conn: Arc<ConnState>,
    /// The request-path worker serving the connection.
    pub worker: usize,
    pub start: Instant,
}

impl RequestCtx {
    /// The parts the token endpoints use, lent for this request.
    pub(crate) fn tokens(&self) -> TokenCtx<'_> {
        let (snapshot, shared) = (&*self.snapshot, &*self.shared);
        TokenCtx {
            config: &snapshot.config,
            keys: &snapshot.keys,
            users: &snapshot.users,
            verifier: &snapshot.verifier,
            refresh_rules: &snapshot.refresh_rules,
            jwks: &snapshot.jwks,
            sessions: &shared.sessions,
            throttle: &shared.throttle,
            hashing: &shared.hashing,
            replays: &shared.replays,
            metrics: &shared.metrics,
            clock: &shared.clock,
            client: self.client,
            logins: &self.conn.logins,
            scheme: self.scheme,
            host: self.host.as_ref(),
        }
    }
}

/// What the access log says of one request, filled in by the phases as they learn it.
#[derive(Debug, Default)]
pub(crate) struct AccessRecord {
    /// The route that matched (or the gateway's own endpoint), with its metric handles and
    /// its name.
    pub route: Option<Arc<crate::metrics::RouteMetrics>>,
    /// Whom the request was for: the token's user, or the user a token endpoint served.
    pub user: Option<Arc<str>>,
    /// The upstream (`host:port`) the request was forwarded to, or last tried when none
    /// answered; `None` for requests the gateway answered itself.
    pub upstream: Option<http::uri::Authority>,
}

/// State one connection shares with the requests it carries.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    /// A response went out before its request's body was read: the connection must linger
    /// (read and discard) before closing, or the client's unread writes make the kernel reset
    /// it and the client never reads the response.
    linger: AtomicBool,
    /// An HTTP/1 exchange closes the connection (`Connection: close` in its request or
    /// response, or HTTP/1.0 without keep-alive): it is never served again, parked or not.
    closing: AtomicBool,
    /// The tunnels (upgraded connections) this connection turned into; the connection's task
    /// owns their lifetime, so they keep its permit and are closed by its idle timeout and the
    /// drain.
    tunnels: Mutex<Vec<JoinHandle<()>>>,
    /// Where the client's side of a switched connection goes once hyper is done with it.
    upgrade: Mutex<Option<oneshot::Sender<Upgraded>>>,
    /// The logins in flight on this connection (at most 4).
    pub logins: crate::login::ConnLogins,
}

impl ConnState {
    pub(crate) fn set_linger(&self) {
        self.linger.store(true, Ordering::Relaxed);
    }

    pub(crate) fn lingers(&self) -> bool {
        self.linger.load(Ordering::Relaxed)
    }

    pub(crate) fn set_closing(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    /// Whether an exchange closes the connection (its request or response said so, or it must
    /// linger, which closes it too).
    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed) || self.lingers()
    }

    /// Hands a running tunnel to the connection.
    pub(crate) fn adopt(&self, tunnel: JoinHandle<()>) {
        self.tunnels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tunnel);
    }

    /// The client's side of the connection, once the `101` has gone out and hyper has handed
    /// the connection back (`server::conn`).
    pub(crate) fn expect_upgrade(&self) -> oneshot::Receiver<Upgraded> {
        let (tx, rx) = oneshot::channel();
        *self.upgrade.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
        rx
    }

    /// Whether a tunnel waits for the client's side of the connection.
    pub(crate) fn upgrading(&self) -> bool {
        (self.upgrade.lock().unwrap_or_else(PoisonError::into_inner)).is_some()
    }

    /// Hands the client's side of the connection to the tunnel waiting for it.
    pub(crate) fn upgraded(&self, io: Upgraded) {
        let waiting = self
            .upgrade
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(tx) = waiting {
            let _ = tx.send(io);
        }
    }

    /// Fails the tunnel still waiting for the client's side: the connection ended without
    /// switching.
    pub(crate) fn abandon_upgrade(&self) {
        drop(
            self.upgrade
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }

    /// The tunnels adopted so far.
    pub(crate) fn take_tunnels(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *self.tunnels.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
