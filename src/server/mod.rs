//! The accept loop: connection permits, transient accept errors, graceful drain with a deadline.
//!
//! `serve` takes a bound listener and a shutdown future; it never binds and never installs
//! signal handlers (that is `main.rs`'s and the tests' business).

mod conn;
mod idle;
pub mod signal;
pub mod tls;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::state::Shared;

/// Serves `listener` until `shutdown` completes, then drains open connections for at most
/// `server.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tls::TlsError> {
    let snapshot = shared.snapshot();
    let server = &snapshot.config.server;
    let acceptor = match &shared.certs {
        Some(resolver) => Some(TlsAcceptor::from(Arc::new(tls::server_config(
            resolver.clone(),
            server.http2,
        )?))),
        None => None,
    };
    let permits = Arc::new(Semaphore::new(server.max_connections));
    let graceful = GracefulShutdown::new();
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
        let task = conn::serve_connection(
            stream,
            peer,
            shared.clone(),
            acceptor.clone(),
            graceful.watcher(),
        );
        let open = shared.metrics.open_connections.clone();
        open.inc();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                task.await;
                open.dec();
                drop(permit);
            },
            span,
        ));
    }

    drop(listener);
    let grace = shared.snapshot().config.server.shutdown_grace;
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace = ?grace, "shutdown grace elapsed; closing remaining connections");
        }
    }
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
