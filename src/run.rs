//! The process lifecycle, one for `portcullis serve`, `portcullis demo` and the integration-test
//! fixture: the runtime, the first snapshot, binding the two listeners once (from the
//! [`ListenerSettings`]), the signals, the reload loop (SIGHUP) and the shutdown (SIGTERM,
//! SIGINT: `/readyz` fails at once, both listeners keep serving for `server.drain_delay`, then
//! they stop accepting and drain, each for at most `server.shutdown_grace`).
//!
//! The pieces are separate so that a caller can do something between them (the demo prints its
//! walk-through once the port is bound; the tests bind `127.0.0.1:0` and inject signals).
//! `server::serve` stays the entry for one listener: it never binds and never installs signal
//! handlers. This file does both, and nothing below the process layer imports it.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::runtime::Runtime;

use crate::config::{Config, ConfigErrors};
use crate::server::signal::{Signal, Signals};
use crate::server::ServeError;
use crate::session::StoreError;
use crate::state::{ListenerSettings, Shared, Snapshot};

/// `portcullis serve -c path`: serves the configuration at `path` until SIGTERM or SIGINT;
/// SIGHUP reloads it.
pub fn serve_file(path: &Path) -> Result<(), RunError> {
    let snapshot = first_snapshot(path)?;
    runtime()?.block_on(async {
        let (shared, listeners) = start(snapshot, crate::clock::Clock::system()).await?;
        let signals = Signals::install().map_err(RunError::Signals)?;
        serve(shared, listeners, signals, path.to_path_buf()).await
    })
}

/// The runtime of the process's own work: signals, reloads, maintenance, the admin listener.
/// The request path runs on the gateway's workers, each with a runtime of its own
/// (`server::serve`), so one thread is enough here.
pub fn runtime() -> Result<Runtime, RunError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)
}

/// Reads and validates the configuration at `path`, installs logging in its `log.format` (once
/// per process: a reload does not change it), and builds the first snapshot. When the
/// configuration is refused, logging is installed in the format it asks for as far as that can
/// be told ([`Config::lenient_log_format`]), so that the refusal is reported in it.
pub fn first_snapshot(path: &Path) -> Result<Snapshot, RunError> {
    let config = Config::load(path)
        .inspect_err(|_| crate::telemetry::init(Config::lenient_log_format(path)))?;
    crate::telemetry::init(config.log.format);
    Ok(Snapshot::build(config)?)
}

/// Binds the listeners `snapshot` names, then opens its session store (reading the time from
/// `clock`, an adjustable one in tests): the gateway, ready to
/// [`serve`].
pub async fn start(
    snapshot: Snapshot,
    clock: crate::clock::Clock,
) -> Result<(Arc<Shared>, Listeners), RunError> {
    // `Shared` captures the same settings from the same configuration.
    let listeners = bind(&ListenerSettings::of(&snapshot.config)).await?;
    let shared = Shared::with_clock(snapshot, clock)?;
    Ok((shared, listeners))
}

/// The gateway's listeners (one per request-path worker, on one address) and the admin
/// listener.
#[derive(Debug)]
pub struct Listeners {
    pub gateway: Vec<TcpListener>,
    pub admin: TcpListener,
}

impl Listeners {
    /// The address the gateway listens on.
    pub fn gateway_addr(&self) -> io::Result<SocketAddr> {
        match self.gateway.first() {
            Some(listener) => listener.local_addr(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// Binds `server.listen` once per worker (`SO_REUSEPORT`: the kernel spreads new connections
/// over the workers' accept queues) and `admin.listen` once.
pub async fn bind(settings: &ListenerSettings) -> Result<Listeners, RunError> {
    let listen = |key, addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Bind { key, addr, source })
    };
    let key = "server.listen";
    let bound = |addr, source| RunError::Bind { key, addr, source };
    let first = reuse_port(settings.listen).map_err(|e| bound(settings.listen, e))?;
    // With port 0 the first socket chose the port; the others share it.
    let addr = first.local_addr().map_err(RunError::Address)?;
    let mut gateway = vec![first];
    for _ in 1..settings.workers {
        gateway.push(reuse_port(addr).map_err(|e| bound(addr, e))?);
    }
    Ok(Listeners {
        gateway,
        admin: listen("admin.listen", settings.admin_listen).await?,
    })
}

/// A listener on `addr` that other sockets of this process may bind too.
fn reuse_port(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The accept queue of each gateway listener (tokio's and Rust's default is 1024 and 128).
const LISTEN_BACKLOG: u32 = 1024;

/// Serves both listeners until `signals` says `Terminate`, then drains them. `Reload` re-reads
/// `config` and makes it current, or logs why it was refused.
pub async fn serve(
    shared: Arc<Shared>,
    listeners: Listeners,
    mut signals: Signals,
    config: PathBuf,
) -> Result<(), RunError> {
    let local = |l: &TcpListener| l.local_addr().map_err(RunError::Address);
    let listen = listeners.gateway_addr().map_err(RunError::Address)?;
    let admin = local(&listeners.admin)?;
    let snapshot = shared.snapshot();
    for notice in &snapshot.config.notices {
        tracing::warn!(key = %notice.key, "{}", notice.problem);
    }
    let scheme = if shared.listener.tls { "https" } else { "http" };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %format!("{scheme}://{listen}"),
        admin = %admin,
        users = snapshot.users.len(),
        routes = snapshot.config.routes.len(),
        "portcullis ready"
    );
    drop(snapshot);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    shared.spawn_maintenance();
    let admin = tokio::spawn(crate::server::serve_admin(
        listeners.admin,
        shared.clone(),
        stopped(stop_rx.clone()),
    ));
    let mut gateway = tokio::spawn(crate::server::serve(
        listeners.gateway,
        shared.clone(),
        stopped(stop_rx),
    ));
    let ended = loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                Signal::Reload => reload(&shared, &config),
                Signal::Terminate => break None,
            },
            // Only when it could not start (its TLS configuration).
            ended = &mut gateway => break Some(ended),
        }
    };
    // Readiness fails at once; both listeners keep serving for `drain_delay`, so that load
    // balancers notice and stop sending before the listeners close.
    shared.start_draining();
    let delay = shared.snapshot().config.server.drain_delay;
    if ended.is_none() && !delay.is_zero() {
        tracing::info!(drain_delay = ?delay, "shutting down: /readyz answers 503; still serving until the delay ends");
        tokio::time::sleep(delay).await;
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let gateway = match ended {
        Some(ended) => ended,
        None => gateway.await,
    };
    let admin = admin.await;
    gateway.map_err(RunError::Task)??;
    admin.map_err(RunError::Task)
}

/// One SIGHUP: reloads `config` and logs the outcome.
fn reload(shared: &Shared, path: &Path) {
    match crate::reload::reload(shared, path) {
        Ok(()) => tracing::info!(config = %path.display(), "configuration reloaded"),
        Err(e) => tracing::error!(config = %path.display(), "reload refused: {e}"),
    }
}

/// Why the gateway could not start, or stopped other than by a signal.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error("{key}: cannot listen on {addr}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot read a listener's address")]
    Address(#[source] io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot install signal handlers")]
    Signals(#[source] io::Error),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("server task failed")]
    Task(#[source] tokio::task::JoinError),
}
