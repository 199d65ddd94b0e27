//! One client connection, from accept to close.
//!
//! The TLS handshake runs under the head deadline; after it, the connection speaks exactly the
//! protocol ALPN chose (`h2`: hyper's HTTP/2 server, so a bad preface gets a GOAWAY; else
//! HTTP/1.1). A plain listener that allows HTTP/2 sniffs the h2c preface. `Activity::watch`
//! enforces `header_read_timeout` and `idle_timeout`; the drain signal asks hyper for a
//! graceful shutdown. An idle HTTP/1.1 connection is parked: hyper's state is dropped until its
//! next byte (`Conn::serve_http1`). A connection that was upgraded (WebSocket) is handed to its
//! tunnel, and stays this task's until its tunnels end, so it keeps its permit, its gauge
//! count, its idle timeout and its drain.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{HeaderMap, Request, Version};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::idle::{Activity, Expired, Tracked};
use crate::config::ServerConfig;
use crate::ctx::ConnState;
use crate::gateway::{self, ConnInfo};
use crate::proxy::headers::connection_options;
use crate::state::Shared;

/// hyper's smallest allowed HTTP/1 read buffer.
const MIN_BUF: usize = 8192;
/// How long an HTTP/1 connection stays idle before its hyper state is dropped (it is rebuilt
/// when the next request's first byte arrives): long enough that a connection under load
/// never pays for the rebuild.
const PARK_AFTER: Duration = Duration::from_secs(1);
/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a listener serves.
#[derive(Clone, Debug)]
pub(super) enum Service {
    Gateway,
    Admin,
}

/// What one listener serves and how, decided when it starts.
#[derive(Clone)]
pub(super) struct Listening {
    pub(super) service: Service,
    pub(super) acceptor: Option<TlsAcceptor>,
    /// Whether HTTP/2 is offered (ALPN `h2`, or h2c prior knowledge on a plain listener).
    pub(super) http2: bool,
}

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening")
            .field("service", &self.service)
            .field("tls", &self.acceptor.is_some())
            .field("http2", &self.http2)
            .finish()
    }
}

/// One connection's deadlines and header size limit, from the snapshot current when it was
/// accepted.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub(super) header_read_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) max_header_bytes: usize,
}

impl Limits {
    pub(super) fn new(server: &ServerConfig) -> Self {
        Self {
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
            max_header_bytes: server.max_header_bytes,
        }
    }
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Protocol {
    Http1,
    Http2,
}

/// Serves one accepted connection until it closes, expires or is drained.
///
/// In two phases, each its own allocation: the opening (TLS handshake, protocol) and the
/// serving. The connection's task holds only a pointer to either, so an idle connection does
/// not keep room for the handshake's state, nor the handshake room for hyper's.
pub(super) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    listening: Arc<Listening>,
    limits: Limits,
    drain: watch::Receiver<bool>,
    worker: usize,
) {
    let parts = Parts {
        peer,
        worker,
        shared,
        listening,
        limits,
        activity: Activity::new(tokio::time::Instant::now()),
        drain,
    };
    if let Some(serving) = open(stream, parts).await {
        serving.await;
    }
}

/// A connection being served, boxed.
type Serving = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The opening of a connection: the TLS handshake and the protocol (ALPN, or the h2c preface
/// on a plain listener that allows HTTP/2), under the head deadline. `None` when the
/// connection ended there.
fn open(stream: TcpStream, parts: Parts) -> Pin<Box<dyn Future<Output = Option<Serving>> + Send>> {
    Box::pin(async move {
        let head = parts.limits.header_read_timeout;
        let listening = parts.listening.clone();
        let Some(acceptor) = listening.acceptor.clone() else {
            if !listening.http2 {
                return Some(Conn::new(parts, "http").serve(stream, Protocol::Http1));
            }
            let sniffed = tokio::time::timeout(head, sniff(stream)).await;
            let Ok(Ok((protocol, stream))) = sniffed else {
                tracing::debug!("no request head in time");
                return None;
            };
            return Some(Conn::new(parts, "http").serve(stream, protocol));
        };
        let tls = match tokio::time::timeout(head, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(failure = %e, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(failure = "timeout", "TLS handshake failed");
                return None;
            }
        };
        let mut conn = Conn::new(parts, "https");
        conn.tls_version = tls_version(tls.get_ref().1.protocol_version());
        if !(listening.http2 && tls.get_ref().1.alpn_protocol() == Some(b"h2")) {
            return Some(conn.serve(tls, Protocol::Http1));
        }
        // After ALPN `h2` the connection speaks only HTTP/2: anything else than the preface is
        // a connection error (RFC 9113 §3.4), answered with a GOAWAY (hyper's h2 closes
        // without one).
        match tokio::time::timeout(head, sniff(tls)).await {
            Ok(Ok((Protocol::Http2, tls))) => Some(conn.serve(tls, Protocol::Http2)),
            Ok(Ok((Protocol::Http1, mut tls))) => {
                let _ = tls.inner.write_all(&GOAWAY_PROTOCOL_ERROR).await;
                let _ = tls.inner.shutdown().await;
                None
            }
            Ok(Err(_)) | Err(_) => {
                tracing::debug!("no HTTP/2 preface in time");
                None
            }
        }
    })
}

/// The access log's name of a negotiated TLS version (rustls speaks only these two).
fn tls_version(version: Option<rustls::ProtocolVersion>) -> Option<&'static str> {
    match version? {
        rustls::ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
        rustls::ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
        _ => None,
    }
}

/// The server's connection preface (an empty SETTINGS frame), then GOAWAY with last stream 0
/// and PROTOCOL_ERROR.
const GOAWAY_PROTOCOL_ERROR: [u8; 26] = [
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, no parameters
    0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, 8 bytes, stream 0
    0, 0, 0, 0, // last stream id
    0, 0, 0, 1, // PROTOCOL_ERROR
];

/// Reads until the bytes are known to be, or not to be, the HTTP/2 preface; hands them back.
async fn sniff<I: AsyncRead + Unpin>(mut stream: I) -> io::Result<(Protocol, Rewind<I>)> {
    let mut seen = Vec::with_capacity(PREFACE.len());
    while seen.len() < PREFACE.len() && PREFACE.starts_with(&seen) {
        let mut chunk = [0u8; 24];
        let want = PREFACE.len() - seen.len();
        let n = stream.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        seen.extend_from_slice(&chunk[..n]);
    }
    let protocol = if seen == PREFACE {
        Protocol::Http2
    } else {
        Protocol::Http1
    };
    Ok((
        protocol,
        Rewind {
            prefix: Bytes::from(seen),
            inner: stream,
        },
    ))
}

/// One request's future, as the service gives it to hyper.
type Responding =
    Pin<Box<dyn Future<Output = Result<http::Response<crate::body::Body>, Infallible>> + Send>>;

/// What a connection is served with, whatever its protocol.
struct Parts {
    peer: SocketAddr,
    worker: usize,
    shared: Arc<Shared>,
    listening: Arc<Listening>,
    limits: Limits,
    activity: Arc<Activity>,
    drain: watch::Receiver<bool>,
}

/// One connection's parts, once its protocol is known.
struct Conn {
    peer: SocketAddr,
    worker: usize,
    scheme: &'static str,
    /// The negotiated TLS version; `None` on a plain listener.
    tls_version: Option<&'static str>,
    shared: Arc<Shared>,
    listening: Arc<Listening>,
    limits: Limits,
    activity: Arc<Activity>,
    state: Arc<ConnState>,
    drain: watch::Receiver<bool>,
}

/// Whether an HTTP/1 request closes its connection after its response (RFC 9112 §9.3, §9.6):
/// a `close` option, or HTTP/1.0 without `keep-alive`.
fn request_closes(version: Version, headers: &HeaderMap) -> bool {
    let mut keep_alive = false;
    for option in connection_options(headers) {
        if option.eq_ignore_ascii_case("close") {
            return true;
        }
        keep_alive |= option.eq_ignore_ascii_case("keep-alive");
    }
    version < Version::HTTP_11 && !keep_alive
}

impl Conn {
    fn new(parts: Parts, scheme: &'static str) -> Self {
        Self {
            peer: parts.peer,
            worker: parts.worker,
            scheme,
            tls_version: None,
            shared: parts.shared,
            listening: parts.listening,
            limits: parts.limits,
            activity: parts.activity,
            state: Arc::new(ConnState::default()),
            drain: parts.drain,
        }
    }

    /// Serves the connection in `protocol` until it ends (boxed: see [`serve_connection`]).
    fn serve<I>(self, io: I, protocol: Protocol) -> Serving
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Box::pin(self.serve_inner(io, protocol))
    }

    async fn serve_inner<I>(mut self, io: I, protocol: Protocol)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = Tracked::new(io, self.activity.clone(), self.state.clone());
        let activity = self.activity.clone();
        let shared = self.shared.clone();
        let service = self.listening.service.clone();
        // An IP address is ASCII: always a valid header value.
        let peer_ip = http::HeaderValue::from_str(&self.peer.ip().to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("-"));
        let info = ConnInfo {
            peer: self.peer,
            peer_ip,
            scheme: self.scheme,
            tls_version: self.tls_version,
            state: self.state.clone(),
            worker: self.worker,
        };
        // Each request's future is boxed: hyper keeps the slot of a connection's request future
        // for the connection's lifetime, and unboxed that slot would be as large as the whole
        // request path (≈ 10 KiB, upstream client included), idle or not.
        let service = service_fn(move |req: Request<Incoming>| -> Responding {
            let in_flight = activity.request();
            // hyper closes an HTTP/1 connection after this exchange: it is never read again,
            // even if it is parked meanwhile (`serve_http1`).
            if req.version() < Version::HTTP_2 && request_closes(req.version(), req.headers()) {
                info.state.set_closing();
            }
            let shared = shared.clone();
            let info = info.clone();
            let service = service.clone();
            Box::pin(async move {
                let response = match service {
                    Service::Gateway => gateway::handle(shared, info, req).await,
                    Service::Admin => crate::admin::handle(&shared, &req).await,
                };
                drop(in_flight);
                Ok::<_, Infallible>(response)
            })
        });
        let limits = self.limits;
        match protocol {
            Protocol::Http1 => {
                self.activity.time_every_head();
                let mut builder = http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    // Head deadlines are `Activity::watch`'s: from accept for the first
                    // request, from the first byte for later ones.
                    .header_read_timeout(None)
                    .max_buf_size(limits.max_header_bytes.max(MIN_BUF))
                    .max_header_size(limits.max_header_bytes);
                self.serve_http1(&builder, io, service).await;
            }
            Protocol::Http2 => {
                let mut builder = http2::Builder::new(TokioExecutor::new());
                builder
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(256)
                    .max_header_list_size(
                        u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX),
                    );
                let conn = builder.serve_connection(TokioIo::new(io), service);
                // Boxed: the connection task's future is then as large as the protocol it
                // speaks, not as the largest of them.
                Box::pin(self.drive(conn)).await;
            }
        }
        self.state.abandon_upgrade();
        self.run_tunnels().await;
    }

    /// Serves HTTP/1.1 on `io` until the connection ends, parking it while it is idle.
    ///
    /// hyper keeps a read and a write buffer of 8 KiB each, and its connection state, for as
    /// long as it serves a connection, idle or not. So once a connection has been idle for
    /// [`PARK_AFTER`], hyper is asked to stop after the exchange in progress (there is none),
    /// gives back the socket and the bytes it had read but not parsed, and is dropped; the
    /// connection then waits for its next byte with only the socket's state, and is served
    /// by a new hyper connection from that byte on. A switched connection (WebSocket) is
    /// handed to its tunnel the same way.
    async fn serve_http1<I, S>(&mut self, builder: &http1::Builder, io: Tracked<I>, service: S)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Http1Service,
    {
        let (head, idle) = (self.limits.header_read_timeout, self.limits.idle_timeout);
        let (mut io, mut service) = (
            Rewind {
                prefix: Bytes::new(),
                inner: io,
            },
            service,
        );
        loop {
            let conn = Box::new(builder.serve_connection(TokioIo::new(io), service));
            let Some((rest, back, parked)) = Box::pin(self.drive_http1(conn)).await else {
                return;
            };
            service = back;
            if self.state.upgrading() {
                self.state.upgraded(Box::new(rest));
                return;
            }
            let mut tracked = rest;
            // A connection whose last response said it closes is never read again: the bytes
            // behind (an unread body) are not a request.
            if !parked || self.state.closing() {
                // Closed (by the client, or after `Connection: close`, or by the drain):
                // shut down, lingering if a response went out before its request's body.
                let _ = tracked.shutdown().await;
                return;
            }
            if !tracked.prefix.is_empty() {
                // A head had begun: serve it at once.
                io = tracked;
                continue;
            }
            // Parked: nothing of hyper's is kept while waiting for the next byte. A few bytes
            // suffice to know a head has begun; hyper reads the rest.
            let mut first = [0u8; 64];
            let read = tokio::select! {
                read = tracked.inner.read(&mut first) => read,
                expired = self.activity.watch(head, idle) => {
                    match expired {
                        Expired::Head => tracing::debug!("request head not received in time; closing"),
                        Expired::Idle | Expired::Settled => tracing::debug!("idle connection closed"),
                    }
                    return;
                }
                () = drained(&mut self.drain) => {
                    let _ = tracked.shutdown().await;
                    return;
                }
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    io = Rewind {
                        prefix: Bytes::copy_from_slice(&first[..n]),
                        inner: tracked.inner,
                    };
                }
            }
        }
    }

    /// Runs one hyper HTTP/1 connection until it ends, as `drive` does, and also parks it once
    /// idle. Hands back the socket (with the bytes hyper read but did not parse in front), the
    /// service, and whether it ended because it was parked; `None` when the connection is
    /// done (failed, or a deadline passed).
    async fn drive_http1<I, S>(
        &mut self,
        mut conn: Box<http1::Connection<TokioIo<Rewind<I>>, S>>,
    ) -> Option<(Rewind<I>, S, bool)>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Http1Service,
    {
        let (head, idle) = (self.limits.header_read_timeout, self.limits.idle_timeout);
        let mut draining = false;
        let mut parked = false;
        loop {
            tokio::select! {
                ended = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "connection ended with an error");
                        return None;
                    }
                    let parts = conn.into_parts();
                    let mut rest = parts.io.into_inner();
                    if !parts.read_buf.is_empty() {
                        rest.prefix = if rest.prefix.is_empty() {
                            parts.read_buf
                        } else {
                            [parts.read_buf, rest.prefix].concat().into()
                        };
                    }
                    return Some((rest, parts.service, parked && !draining));
                }
                expired = self.activity.watch_or_settle(head, idle, (!parked).then_some(PARK_AFTER)) => {
                    match expired {
                        Expired::Head => tracing::debug!("request head not received in time; closing"),
                        Expired::Idle => tracing::debug!("idle connection closed"),
                        Expired::Settled => {
                            parked = true;
                            Pin::new(&mut *conn).graceful_shutdown();
                            continue;
                        }
                    }
                    return None;
                }
                () = drained(&mut self.drain), if !draining => {
                    draining = true;
                    Pin::new(&mut *conn).graceful_shutdown();
                }
            }
        }
    }

    /// Runs hyper's connection until it ends, a deadline passes (the connection is dropped,
    /// which closes it) or the drain asks for a graceful shutdown.
    async fn drive<C: Drainable>(&mut self, conn: C) {
        let (head, idle) = (self.limits.header_read_timeout, self.limits.idle_timeout);
        tokio::pin!(conn);
        let mut draining = false;
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                expired = self.activity.watch(head, idle) => {
                    match expired {
                        Expired::Head => tracing::debug!("request head not received in time; closing"),
                        Expired::Idle | Expired::Settled => tracing::debug!("idle connection closed"),
                    }
                    return;
                }
                () = drained(&mut self.drain), if !draining => {
                    draining = true;
                    conn.as_mut().drain();
                }
            }
        }
    }

    /// Waits for the tunnels the connection was upgraded into; closes them when they go idle
    /// or the drain starts.
    async fn run_tunnels(&mut self) {
        let tunnels = self.state.take_tunnels();
        if tunnels.is_empty() {
            return;
        }
        self.activity.stop_timing_heads();
        let aborts: Vec<_> = tunnels.iter().map(|t| t.abort_handle()).collect();
        let all = async {
            for tunnel in tunnels {
                let _ = tunnel.await;
            }
        };
        let (head, idle) = (self.limits.header_read_timeout, self.limits.idle_timeout);
        tokio::select! {
            () = all => return,
            _ = self.activity.watch(head, idle) => tracing::debug!("idle tunnel closed"),
            () = drained(&mut self.drain) => tracing::debug!("tunnel closed by the drain"),
        }
        for abort in aborts {
            abort.abort();
        }
    }
}

/// What `serve_http1` can hand to hyper and take back from it (`poll_without_shutdown` wants
/// the service and its futures `Unpin`): the connection's `service_fn`.
trait Http1Service:
    hyper::service::HttpService<
        Incoming,
        ResBody = crate::body::Body,
        Future: Unpin,
        Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    > + Unpin
{
}

impl<S> Http1Service for S where
    S: hyper::service::HttpService<
            Incoming,
            ResBody = crate::body::Body,
            Future: Unpin,
            Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        > + Unpin
{
}

/// Completes once the drain has started (or the listener is gone).
async fn drained(drain: &mut watch::Receiver<bool>) {
    let _ = drain.wait_for(|draining| *draining).await;
}

/// A hyper server connection that can be asked to finish gracefully.
trait Drainable: Future<Output = Result<(), hyper::Error>> {
    fn drain(self: Pin<&mut Self>);
}

impl<I, S, B, E> Drainable for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// IO that first replays the bytes read while sniffing the protocol.
#[derive(Debug)]
struct Rewind<I> {
    prefix: Bytes,
    inner: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::CONNECTION;
    use http::HeaderValue;

    fn closes(version: Version, fields: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for field in fields {
            headers.append(CONNECTION, HeaderValue::from_str(field).unwrap());
        }
        request_closes(version, &headers)
    }

    #[test]
    fn a_request_closes_by_option_or_as_http_1_0_without_keep_alive() {
        assert!(!closes(Version::HTTP_11, &[]));
        assert!(!closes(Version::HTTP_11, &["keep-alive, Upgrade"]));
        assert!(closes(Version::HTTP_11, &["Upgrade", " Close "]));
        assert!(closes(Version::HTTP_10, &[]));
        assert!(!closes(Version::HTTP_10, &["foo, Keep-Alive"]));
        assert!(closes(Version::HTTP_10, &["keep-alive, close"]));
    }
}
