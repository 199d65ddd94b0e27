//! The accept loop, for the gateway and the admin listener alike: connection permits, transient
//! accept errors, and a drain with a deadline.
//!
//! `serve` and `serve_admin` take a bound listener and a shutdown future; they never bind and
//! never install signal handlers (that is `run.rs`'s business, for the binary and the tests).
//! Each connection holds one of `max_connections` permits for as long as it lives, tunnels
//! included; on shutdown the listener is dropped, every connection is told to drain, and the
//! loop waits for the permits to come back, at most `shutdown_grace`.

mod conn;
mod idle;
pub mod signal;
pub mod tls;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use self::conn::{Limits, Listening, Service};
use crate::state::Shared;

/// Serves the gateway on `listener` until `shutdown` completes, then drains open connections
/// for at most `server.shutdown_grace`. TLS, HTTP/2 and the connection cap are the listener's
/// (`shared.listener`, decided at start); each connection's head and idle deadlines and header
/// size limit are those of the snapshot current when it is accepted.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tls::TlsError> {
    let settings = &shared.listener;
    let acceptor = match &shared.certs {
        Some(resolver) => Some(TlsAcceptor::from(Arc::new(tls::server_config(
            resolver.clone(),
            settings.http2,
        )?))),
        None => None,
    };
    let listening = Listening {
        service: Service::Gateway,
        acceptor,
        http2: settings.http2,
    };
    let max_connections = settings.max_connections;
    accept_loop(listener, shared, listening, max_connections, shutdown).await;
    Ok(())
}

/// Serves the admin endpoints on `listener` (plain HTTP/1.1, the gateway's header and idle
/// timeouts and connection cap, permits of its own) until `shutdown` completes.
pub async fn serve_admin(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    let listening = Listening {
        service: Service::Admin,
        acceptor: None,
        http2: false,
    };
    let max_connections = shared.listener.max_connections;
    accept_loop(listener, shared, listening, max_connections, shutdown).await;
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    listening: Listening,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let listening = Arc::new(listening);
    let permits = Arc::new(Semaphore::new(max_connections));
    let (drain_tx, drain_rx) = watch::channel(false);
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // the semaphore is never closed
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let span = tracing::info_span!("conn", %peer);
        // A reload applies these to the connections accepted after it.
        let limits = Limits::new(&shared.snapshot().config.server);
        let task = conn::serve_connection(
            stream,
            peer,
            shared.clone(),
            listening.clone(),
            limits,
            drain_rx.clone(),
        );
        let open = matches!(listening.service, Service::Gateway)
            .then(|| shared.metrics.open_connections.clone());
        if let Some(open) = &open {
            open.inc();
        }
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                task.await;
                if let Some(open) = open {
                    open.dec();
                }
                drop(permit);
            },
            span,
        ));
    }

    drop(listener);
    let _ = drain_tx.send(true);
    let grace = shared.snapshot().config.server.shutdown_grace;
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = permits.acquire_many(all) => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace = ?grace, "shutdown grace elapsed; closing remaining connections");
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
