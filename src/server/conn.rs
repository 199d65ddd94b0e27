//! One client connection: the TLS handshake under a timeout, then HTTP/1.1 or HTTP/2 (ALPN or
//! prior knowledge) through hyper-util's auto builder, watched for graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::idle::{Activity, Tracked};
use crate::config::ServerConfig;
use crate::gateway::{self, ConnInfo};
use crate::state::Shared;

/// hyper's smallest allowed HTTP/1 read buffer.
const MIN_BUF: usize = 8192;

pub(super) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<TlsAcceptor>,
    watcher: Watcher,
) {
    let server = shared.snapshot().config.server.clone();
    match acceptor {
        None => {
            let info = ConnInfo {
                peer,
                scheme: "http",
                logins: Default::default(),
            };
            serve_http(stream, &server, shared, info, watcher).await;
        }
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(server.header_read_timeout, acceptor.accept(stream));
            match handshake.await {
                Ok(Ok(tls)) => {
                    let info = ConnInfo {
                        peer,
                        scheme: "https",
                        logins: Default::default(),
                    };
                    serve_http(tls, &server, shared, info, watcher).await;
                }
                Ok(Err(e)) => tracing::debug!(failure = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(failure = "timeout", "TLS handshake failed"),
            }
        }
    }
}

async fn serve_http<I>(
    io: I,
    server: &ServerConfig,
    shared: Arc<Shared>,
    info: ConnInfo,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .max_buf_size(server.max_header_bytes.max(MIN_BUF));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX));
    if !server.http2 {
        builder = builder.http1_only();
    }
    let activity = Activity::new();
    let requests = activity.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        let in_flight = requests.request();
        let info = info.clone();
        async move {
            let response = gateway::handle(shared, info, req).await;
            drop(in_flight);
            Ok::<_, Infallible>(response)
        }
    });
    let io = TokioIo::new(Tracked::new(io, activity.clone()));
    let conn = watcher.watch(builder.serve_connection_with_upgrades(io, service));
    tokio::select! {
        ended = conn => {
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        // Dropping the connection closes it; nothing is in progress on it.
        () = activity.idle(server.idle_timeout) => tracing::debug!("idle connection closed"),
    }
}
