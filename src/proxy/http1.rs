//! The HTTP/1.1 upstream client: hyper's `client::conn` connections, pooled per worker and per
//! upstream, each driven by the request that is using it.
//!
//! hyper-util's pooled client runs every upstream connection as a task of its own and hands
//! each request to it through a channel: a request costs a wake-up of that task and one back.
//! Here the connection is polled by the request's own future while the response head is
//! awaited, then by the response body it is carrying, and goes back to the pool when that
//! body has ended, so a proxied request runs on one task from the client's bytes to the
//! upstream's and back, as nginx's event loop does it.
//!
//! A connection in the pool is polled by no task. It is checked when taken: one poll notices
//! an upstream that closed it meanwhile. Every few seconds [`reap`] does the same for all of
//! them and drops the closed and the expired. Its socket is left registered with a no-op
//! waker, never with the task of a request that has finished.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::{Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tower_service::Service;

use super::balance::Target;
use super::client::SendError;
use super::error::ClientFailure;
use crate::body::Body;

/// Idle connections kept per upstream, per worker.
const MAX_IDLE: usize = 256;
/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often idle connections are looked at for an upstream that closed them, or expiry.
const REAP_EVERY: Duration = if cfg!(test) {
    Duration::from_millis(50)
} else {
    Duration::from_secs(5)
};

type Io = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;
/// Boxed: a connection moves from the pool into the request's future and on into the
/// response body, and hyper's connection state is kilobytes. Unboxed, it made every request's
/// future that much larger, copied on each move (callgrind: ≈ 16,000 more instructions of
/// `memcpy` per request than boxed).
type Conn = Box<http1::Connection<Io, Body>>;

/// One worker's HTTP/1.1 connections to one route's upstreams.
#[derive(Debug)]
pub(super) struct Http1Pool {
    connector: HttpsConnector<HttpConnector>,
    /// Idle connections, indexed by [`Target::index`], the most recently used last.
    idle: Arc<[Mutex<Vec<Idle>>]>,
    /// Whether [`reap`] runs for `idle` (started by the first request, on its worker).
    reaping: std::sync::Once,
}

/// A connection that finished its last exchange and may carry the next.
struct Idle {
    sender: http1::SendRequest<Body>,
    conn: Conn,
    since: Instant,
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle")
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

impl Http1Pool {
    pub(super) fn new(connector: HttpsConnector<HttpConnector>, targets: usize) -> Self {
        Self {
            connector,
            idle: (0..targets).map(|_| Mutex::default()).collect(),
            reaping: std::sync::Once::new(),
        }
    }

    /// Sends `req` (its URI absolute: the connection is chosen by its scheme and authority) to
    /// `target` on an idle connection, or on a new one; a request that an idle connection
    /// turned out unable to take (closed meanwhile) goes on a new one.
    pub(super) async fn send(
        &self,
        target: &Target,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, SendError> {
        self.reaping
            .call_once(|| drop(tokio::spawn(reap(Arc::downgrade(&self.idle)))));
        let upgrade = req.headers().contains_key(http::header::UPGRADE);
        // hyper writes the request target as given: origin-form for an origin server.
        let uri = std::mem::take(req.uri_mut());
        if !req.headers().contains_key(HOST) {
            req.headers_mut().insert(HOST, target.host.clone());
        }
        *req.uri_mut() = match uri.path_and_query() {
            Some(pq) => http::Uri::from(pq.clone()),
            None => http::Uri::from_static("/"),
        };
        if upgrade {
            // An upgraded connection leaves HTTP: not pooled, and driven by a task of its own
            // until the switch hands its socket to the tunnel.
            let (mut sender, conn) = self.connect(&uri).await?;
            tokio::spawn(async move {
                if let Err(e) = (*conn).with_upgrades().await {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
            });
            let response = sender
                .send_request(req)
                .await
                .map_err(|e| upstream(e.into()))?;
            return Ok(response.map(BodyExt::boxed));
        }
        if let Some(idle) = self.checkout(target) {
            match exchange(idle.sender, idle.conn, req).await {
                Ok(lease) => return Ok(self.lease(target, lease)),
                Err(Failed::Unsent(unsent)) => req = *unsent,
                Err(Failed::Sent(e)) => return Err(upstream(e)),
            }
        }
        let (sender, conn) = self.connect(&uri).await?;
        match exchange(sender, conn, req).await {
            Ok(lease) => Ok(self.lease(target, lease)),
            // hyper returns a request unsent only from a connection that is not ready, and a
            // new one is.
            Err(Failed::Unsent(_)) => Err(upstream(ClientFailure::Io(std::io::Error::other(
                "new upstream connection not ready",
            )))),
            Err(Failed::Sent(e)) => Err(upstream(e)),
        }
    }

    /// The most recently used idle connection to `target` that is still open.
    fn checkout(&self, target: &Target) -> Option<Idle> {
        let mut idle = self.idle[target.index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while let Some(mut candidate) = idle.pop() {
            if candidate.since.elapsed() < IDLE_TIMEOUT
                && settle(&mut candidate.conn)
                && candidate.sender.is_ready()
            {
                return Some(candidate);
            }
        }
        None
    }

    async fn connect(
        &self,
        uri: &http::Uri,
    ) -> Result<(http1::SendRequest<Body>, Conn), SendError> {
        let io = self
            .connector
            .clone()
            .call(uri.clone())
            .await
            .map_err(|e| SendError {
                connect: true,
                failure: ClientFailure::Connect(e),
            })?;
        http1::Builder::new()
            .handshake(io)
            .await
            .map(|(s, c)| (s, Box::new(c)))
            .map_err(|e| SendError {
                connect: true,
                failure: e.into(),
            })
    }

    /// The response, its body carrying the connection back to this pool when it ends.
    fn lease(&self, target: &Target, lease: Lease) -> Response<Body> {
        let Lease {
            response,
            sender,
            conn,
        } = lease;
        let home = Home {
            idle: self.idle.clone(),
            index: target.index,
        };
        response.map(|body| {
            Carrying {
                body,
                ended: false,
                conn: conn.map(|conn| Carried { sender, conn, home }),
            }
            .boxed()
        })
    }
}

fn upstream(e: ClientFailure) -> SendError {
    SendError {
        connect: false,
        failure: e,
    }
}

/// Every [`REAP_EVERY`], drops the idle connections that have expired or that the upstream
/// has closed. Nobody polls an idle connection, so without this one the upstream hung up would
/// keep its socket (in `CLOSE_WAIT`) until the pool is next used. Ends with the pool.
async fn reap(idle: std::sync::Weak<[Mutex<Vec<Idle>>]>) {
    let mut tick = tokio::time::interval(REAP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(idle) = idle.upgrade() else {
            return;
        };
        for list in idle.iter() {
            list.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain_mut(|c| c.since.elapsed() < IDLE_TIMEOUT && settle(&mut c.conn));
        }
    }
}

/// Polls an idle connection once, with a no-op waker: `false` if it has closed (the upstream
/// hung up, or it failed). Also leaves its socket registered with no task's waker.
fn settle(conn: &mut Conn) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(&mut **conn).poll(&mut cx).is_pending()
}

/// A response head, and the connection it came on while that is still open.
struct Lease {
    response: Response<Incoming>,
    sender: http1::SendRequest<Body>,
    conn: Option<Conn>,
}

enum Failed {
    /// The connection could not take the request: it was not written, here it is (boxed: a
    /// rare path, off the size of every exchange's result).
    Unsent(Box<Request<Body>>),
    Sent(ClientFailure),
}

/// Sends `req` on `conn` and drives `conn` until the response head has arrived.
async fn exchange(
    mut sender: http1::SendRequest<Body>,
    conn: Conn,
    req: Request<Body>,
) -> Result<Lease, Failed> {
    let mut response = std::pin::pin!(sender.try_send_request(req));
    let mut conn = Some(conn);
    let result = std::future::poll_fn(|cx| {
        // The connection first: it writes the request and reads the answer, which the
        // response future then finds without another wake-up.
        if let Some(c) = conn.as_mut() {
            if Pin::new(&mut **c).poll(cx).is_ready() {
                // Closed or failed: dropping it fails the response future, if still waiting.
                conn = None;
            }
        }
        response.as_mut().poll(cx)
    })
    .await;
    match result {
        Ok(response) => Ok(Lease {
            response,
            sender,
            conn,
        }),
        Err(mut e) => match e.take_message() {
            Some(req) => Err(Failed::Unsent(Box::new(req))),
            None => Err(Failed::Sent(e.into_error().into())),
        },
    }
}

/// Where a connection goes back to.
struct Home {
    idle: Arc<[Mutex<Vec<Idle>>]>,
    index: usize,
}

struct Carried {
    sender: http1::SendRequest<Body>,
    conn: Conn,
    home: Home,
}

/// An upstream response body that drives the connection it arrives on, and puts that
/// connection back in the pool once the body has ended and it is ready for another request.
struct Carrying {
    body: Incoming,
    /// The end was read. (`Incoming::is_end_stream` stays false for a chunked body.)
    ended: bool,
    conn: Option<Carried>,
}

impl http_body::Body for Carrying {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        // The body first: what the connection already read is there, and polling it tells the
        // connection to read on. Then the connection, and the body again.
        let mut frame = Pin::new(&mut this.body).poll_frame(cx);
        if frame.is_pending() {
            if let Some(carried) = this.conn.as_mut() {
                if Pin::new(&mut *carried.conn).poll(cx).is_ready() {
                    this.conn = None;
                }
            }
            frame = Pin::new(&mut this.body).poll_frame(cx);
        }
        if let Poll::Ready(None) = frame {
            this.ended = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Carrying {
    fn drop(&mut self) {
        let Some(mut carried) = self.conn.take() else {
            return;
        };
        // A body dropped before its end closes the connection (hyper cannot resync it).
        let ended = self.ended || self.body.is_end_stream();
        if !ended || !settle(&mut carried.conn) || !carried.sender.is_ready() {
            return;
        }
        let Carried { sender, conn, home } = carried;
        let mut idle = home.idle[home.index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The oldest are first: at the bound, the oldest goes. (`reap` drops the expired.)
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle {
            sender,
            conn,
            since: Instant::now(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{Full, StreamBody};
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::config::Config;

    /// An upstream on 127.0.0.1 that counts the connections it accepts. `/chunked` answers
    /// with a chunked body, `/empty` with `204`, `/big` with 1 MiB, anything else with a
    /// `Content-Length` body naming the path.
    async fn upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let service = service_fn(|req: Request<Incoming>| async move {
                    let path = req.uri().path().to_owned();
                    let body = match path.as_str() {
                        "/chunked" => {
                            let frames = ["one ", "two"]
                                .map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from(s))));
                            StreamBody::new(futures_util::stream::iter(frames)).boxed()
                        }
                        "/empty" => Full::new(Bytes::new()).boxed(),
                        "/big" => Full::new(Bytes::from(vec![b'x'; 1 << 20])).boxed(),
                        _ => Full::new(Bytes::from(path)).boxed(),
                    };
                    let mut response = Response::new(body);
                    if req.uri().path() == "/empty" {
                        *response.status_mut() = http::StatusCode::NO_CONTENT;
                    }
                    Ok::<_, Infallible>(response)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service),
                );
            }
        });
        (addr, accepted)
    }

    fn pool(upstream: std::net::SocketAddr) -> (Http1Pool, Target) {
        let text = format!(
            "[[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstreams = [\"http://{upstream}\"]\n"
        );
        let config = Config::parse(&text, Path::new("/x/portcullis.toml")).unwrap();
        let route = &config.routes[0];
        let tls = rustls::ClientConfig::builder_with_provider(crate::certs::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let target = Target::new(&route.upstreams[0]).unwrap();
        (
            Http1Pool::new(super::super::client::connector(route, tls), 1),
            target,
        )
    }

    async fn get(pool: &Http1Pool, target: &Target, path: &str) -> (u16, Bytes) {
        let uri = format!("http://{}{path}", target.authority);
        let req = Request::get(uri)
            .header("host", target.authority.as_str())
            .body(crate::body::empty())
            .unwrap();
        let response = pool.send(target, req).await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    #[tokio::test]
    async fn sequential_requests_share_one_connection_whatever_the_body() {
        let (addr, accepted) = upstream().await;
        let (pool, target) = pool(addr);
        for _ in 0..3 {
            assert_eq!(get(&pool, &target, "/a").await, (200, Bytes::from("/a")));
            assert_eq!(
                get(&pool, &target, "/chunked").await,
                (200, Bytes::from("one two"))
            );
            assert_eq!(get(&pool, &target, "/empty").await, (204, Bytes::new()));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_takes_its_connection_with_it() {
        let (addr, accepted) = upstream().await;
        let (pool, target) = pool(addr);
        let req = Request::get(format!("http://{addr}/big"))
            .header("host", addr.to_string())
            .body(crate::body::empty())
            .unwrap();
        let mut body = pool.send(&target, req).await.unwrap().into_body();
        body.frame().await.unwrap().unwrap();
        drop(body);
        // The rest of the big body is never read as the next answer.
        assert_eq!(
            get(&pool, &target, "/next").await,
            (200, Bytes::from("/next"))
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// Reads one request head from `tcp` and answers it `200 ok`, keep-alive.
    async fn answer_ok(tcp: &mut tokio::net::TcpStream) {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
    }

    /// An upstream that closes a keep-alive connection while it sits in the pool: the next
    /// request notices and goes on a new connection instead of failing.
    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_not_used() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut tcp, _) = listener.accept().await.unwrap();
                answer_ok(&mut tcp).await;
                // Keep-alive as far as the client knows; then the upstream hangs up.
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(tcp);
            }
        });
        let (pool, target) = pool(addr);
        assert_eq!(get(&pool, &target, "/").await, (200, Bytes::from("ok")));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(get(&pool, &target, "/").await, (200, Bytes::from("ok")));
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }

    /// An upstream that half-closes an idle keep-alive connection, then waits for the
    /// gateway's side to close too: it does once the pool looks at its idle connections,
    /// without another request.
    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_let_go_without_a_request() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            answer_ok(&mut tcp).await;
            // Long after the connection went back to the pool.
            tokio::time::sleep(REAP_EVERY * 4).await;
            tcp.shutdown().await.unwrap();
            let mut rest = [0; 16];
            tcp.read(&mut rest).await.unwrap()
        });
        let (pool, target) = pool(addr);
        assert_eq!(get(&pool, &target, "/").await, (200, Bytes::from("ok")));
        assert_eq!(pool.idle[0].lock().unwrap().len(), 1, "idle in the pool");
        let read = tokio::time::timeout(REAP_EVERY * 20, server).await;
        assert_eq!(
            read.expect("the idle connection was never closed").unwrap(),
            0
        );
        assert!(pool.idle[0].lock().unwrap().is_empty());
    }
}
