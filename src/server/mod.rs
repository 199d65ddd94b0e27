//! The accept loops, for the gateway and the admin listener alike: connection permits,
//! transient accept errors, and a drain with a deadline.
//!
//! The gateway has `server.workers` threads, each with a listener (`SO_REUSEPORT`, one
//! address) and a single-threaded runtime of its own (nginx's workers, Pingora's no-steal runtimes): a connection is accepted,
//! read, checked, forwarded over that worker's own upstream connections and answered on one
//! thread, with no wake-up across threads. Shared state (the snapshot, sessions, the deny list,
//! the metrics) is the one `Shared` every worker reads. The admin listener runs on the caller's
//! runtime.
//!
//! `serve` and `serve_admin` take a bound listener and a shutdown future; they never bind and
//! never install signal handlers (that is `run.rs`'s business, for the binary and the tests).
//! Each connection holds one of `max_connections` permits (one pool for all the gateway's
//! workers) for as long as it lives, tunnels included; on shutdown every accept loop drops its
//! listener, tells its connections to drain and waits for them, at most `shutdown_grace`.

mod conn;
mod idle;
pub mod signal;
pub mod tls;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use self::conn::{Limits, Listening, Service};
use crate::state::Shared;

/// Serves the gateway on `listeners`, one worker thread each, until `shutdown` completes,
/// then drains open connections for at most `server.shutdown_grace`. TLS, HTTP/2, the worker
/// count and the connection cap are the listener's (`shared.listener`, decided at start); each
/// connection's head and idle deadlines and header size limit are those of the snapshot current
/// when it is accepted.
pub async fn serve(
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let settings = &shared.listener;
    let acceptor = match &shared.certs {
        Some(resolver) => Some(TlsAcceptor::from(Arc::new(tls::server_config(
            resolver.clone(),
            settings.http2,
        )?))),
        None => None,
    };
    let listening = Arc::new(Listening {
        service: Service::Gateway,
        acceptor,
        http2: settings.http2,
    });
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (release_tx, release_rx) = watch::channel(false);
    let mut workers = Vec::with_capacity(listeners.len());
    for (index, listener) in listeners.into_iter().enumerate() {
        let worker = Worker {
            index,
            // Registered again with the worker's own runtime.
            listener: listener.into_std().map_err(ServeError::Listener)?,
            shared: shared.clone(),
            listening: listening.clone(),
            permits: permits.clone(),
            stop: stop_rx.clone(),
            release: release_rx.clone(),
        };
        workers.push(worker.start()?);
    }

    shutdown.await;
    let _ = stop_tx.send(true);
    let mut drained = true;
    for worker in &mut workers {
        // `false` when the grace ran out; an error when the worker could not run at all.
        drained &= (&mut worker.drained).await.unwrap_or(true);
    }
    if drained {
        tracing::info!("all connections closed");
    } else {
        let grace = shared.snapshot().config.server.shutdown_grace;
        tracing::warn!(grace = ?grace, "shutdown grace elapsed; closing remaining connections");
    }
    // Only now may a worker's runtime go, with the connections and tasks it still drives: a
    // worker that drained early may hold what another still uses (a Redis connection, say).
    let _ = release_tx.send(true);
    for worker in workers {
        let _ = worker.exited.await;
    }
    Ok(())
}

/// Serves the admin endpoints on `listener` (plain HTTP/1.1, the gateway's header and idle
/// timeouts and connection cap, permits of its own) on the caller's runtime until `shutdown`
/// completes.
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
    let permits = Arc::new(Semaphore::new(shared.listener.max_connections));
    accept_loop(
        listener,
        &shared,
        &Arc::new(listening),
        &permits,
        0,
        shutdown,
    )
    .await;
}

/// One request-path worker: a thread, its runtime, and its accept loop on its own listener.
struct Worker {
    index: usize,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    listening: Arc<Listening>,
    permits: Arc<Semaphore>,
    /// Stop accepting and drain.
    stop: watch::Receiver<bool>,
    /// Every worker has drained: the runtime may go.
    release: watch::Receiver<bool>,
}

/// A started worker: it says when it has drained (whether in time), and when it has exited.
struct Running {
    drained: oneshot::Receiver<bool>,
    exited: oneshot::Receiver<()>,
}

impl Worker {
    fn start(self) -> Result<Running, ServeError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ServeError::Runtime)?;
        let (drained_tx, drained) = oneshot::channel();
        let (exited_tx, exited) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("portcullis-worker-{}", self.index))
            .spawn(move || {
                self.run(&runtime, drained_tx);
                // Blocking tasks still running (a password hash) are let go after this.
                runtime.shutdown_timeout(Duration::from_secs(1));
                let _ = exited_tx.send(());
            })
            .map_err(ServeError::Thread)?;
        Ok(Running { drained, exited })
    }

    fn run(self, runtime: &Runtime, drained: oneshot::Sender<bool>) {
        let Self {
            index,
            listener,
            shared,
            listening,
            permits,
            stop,
            mut release,
        } = self;
        runtime.block_on(async move {
            let listener = match TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(e) => {
                    return tracing::error!(worker = index, error = %e, "worker cannot listen")
                }
            };
            let span = tracing::info_span!("worker", worker = index);
            let done = tracing::Instrument::instrument(
                accept_loop(
                    listener,
                    &shared,
                    &listening,
                    &permits,
                    index,
                    stopped(stop),
                ),
                span,
            );
            let _ = drained.send(done.await);
            let _ = release.wait_for(|released| *released).await;
        });
    }
}

/// Completes once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Accepts connections on `listener` and serves each on its own task of the current runtime,
/// until `shutdown` completes; then drains them. Whether they all closed within
/// `shutdown_grace`.
async fn accept_loop(
    listener: TcpListener,
    shared: &Arc<Shared>,
    listening: &Arc<Listening>,
    permits: &Arc<Semaphore>,
    worker: usize,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let (drain_tx, drain_rx) = watch::channel(false);
    // Every connection task holds a sender; `recv` returns `None` once they are all gone.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    let gateway = matches!(listening.service, Service::Gateway);
    let accepted = gateway.then(|| shared.metrics.accepted_by(worker));
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
        if let Some(accepted) = &accepted {
            accepted.inc();
        }
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
            worker,
        );
        let open = gateway.then(|| shared.metrics.open_connections.clone());
        if let Some(open) = &open {
            open.inc();
        }
        let open_tx = open_tx.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                task.await;
                if let Some(open) = open {
                    open.dec();
                }
                drop(permit);
                drop(open_tx);
            },
            span,
        ));
    }

    drop(listener);
    drop(open_tx);
    let _ = drain_tx.send(true);
    let grace = shared.snapshot().config.server.shutdown_grace;
    tokio::select! {
        _ = open_rx.recv() => true,
        () = tokio::time::sleep(grace) => false,
    }
}

/// Why the gateway's listener could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot hand a listener to its worker")]
    Listener(#[source] io::Error),
    #[error("cannot start a worker's runtime")]
    Runtime(#[source] io::Error),
    #[error("cannot start a worker thread")]
    Thread(#[source] io::Error),
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
