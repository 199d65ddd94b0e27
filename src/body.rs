//! Body types: `Body` for every response, `Inbound` for every request body, small constructors,
//! and capped collection for the gateway's own endpoints.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use http::{HeaderValue, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;

/// Every response body: either one of ours (full) or an upstream's, streamed.
pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A JSON answer of ours: `status`, `Content-Type: application/json` and the document. Every
/// JSON response the gateway and the admin listener write is made here.
pub(crate) fn json(status: StatusCode, document: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(document));
    *response.status_mut() = status;
    (response.headers_mut()).insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1), for every answer that
/// carries a token or a token's state.
pub(crate) fn no_store(response: &mut Response<Body>) {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A client's request body, shared between the request (which a handler reads or forwards)
/// and the gateway, which needs to know afterwards whether it was read to the end and whether
/// it was malformed, and which may keep it open until its response is sent.
///
/// Keeping it open matters for HTTP/2: dropping an unread request body resets the stream with
/// `CANCEL`, and a client that is still sending then never sees the response; dropped after the
/// response, the reset is `NO_ERROR` (RFC 9113 §8.1) and the client reads the answer.
#[derive(Clone, Debug)]
pub struct Inbound(Arc<InboundState>);

#[derive(Debug)]
struct InboundState {
    /// A `std` mutex: held only inside `poll_frame` and `is_end_stream`, never across an await,
    /// and in practice never contended (one reader at a time).
    body: Mutex<Incoming>,
    /// The client's body turned out malformed (bad chunking) or the client reset it.
    failed: AtomicBool,
    /// The body's end was read. (hyper's `is_end_stream` never turns true for an HTTP/1
    /// chunked body, whose length is unknown.)
    ended: AtomicBool,
    /// The body bytes read from the client so far (`bytes_in` of the access log): one relaxed
    /// add per data frame, on a counter the request owns anyway.
    read: AtomicU64,
}

impl Inbound {
    pub fn new(body: Incoming) -> Self {
        Self(Arc::new(InboundState {
            body: Mutex::new(body),
            failed: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            read: AtomicU64::new(0),
        }))
    }

    /// How many body bytes were read from the client so far.
    pub fn bytes_read(&self) -> u64 {
        self.0.read.load(Ordering::Relaxed)
    }

    /// Whether reading the body failed on the client's side.
    pub fn failed(&self) -> bool {
        self.0.failed.load(Ordering::Relaxed)
    }

    /// Whether the body was read to its end (or had none).
    pub fn is_done(&self) -> bool {
        http_body::Body::is_end_stream(self)
    }

    fn ended(&self) -> bool {
        self.0.ended.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Incoming> {
        self.0.body.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl http_body::Body for Inbound {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut *self.lock()).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Err(_))) => self.0.failed.store(true, Ordering::Relaxed),
            Poll::Ready(None) => self.0.ended.store(true, Ordering::Relaxed),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    (self.0.read).fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended() || self.lock().is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.lock().size_hint()
    }
}

/// A response body that keeps the request's body open until the response has been sent, and
/// then reads and discards the rest of it for a bounded time.
#[derive(Debug)]
struct Holding {
    inner: Body,
    request: Option<Inbound>,
}

impl Drop for Holding {
    fn drop(&mut self) {
        let Some(request) = self.request.take() else {
            return;
        };
        if !request.is_done() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(discard(request));
            }
        }
    }
}

/// Draining a request body after its response: at most this long in all, ...
const DRAIN_TIME: Duration = Duration::from_secs(30);
/// ... this long without a frame, ...
const DRAIN_IDLE: Duration = Duration::from_secs(5);
/// ... and this many bytes.
const DRAIN_BYTES: u64 = 256 * 1024 * 1024;

/// Reads `request` to its end and throws it away, within the bounds above. Over HTTP/2 this
/// lets the client finish its stream normally: some clients (curl 7.x) report a stream reset
/// as an error even when it comes after the complete response.
async fn discard(mut request: Inbound) {
    let drained = async {
        let mut total = 0u64;
        while total <= DRAIN_BYTES {
            match tokio::time::timeout(DRAIN_IDLE, request.frame()).await {
                Ok(Some(Ok(frame))) => {
                    total += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                Ok(Some(Err(_)) | None) | Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drained).await;
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `body`, keeping `request` open until it has been sent; the rest of `request` is then read
/// and discarded (bounded) instead of being reset.
pub(crate) fn holding(body: Body, request: Inbound) -> Body {
    Holding {
        inner: body,
        request: Some(request),
    }
    .boxed()
}

/// Reads a whole request body of at most `limit` bytes within `deadline`.
pub(crate) async fn collect_capped<B>(
    body: B,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, CollectError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(CollectError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(CollectError::TooLarge),
        Ok(Err(_)) => Err(CollectError::Read),
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CollectError {
    #[error("request body too large")]
    TooLarge,
    #[error("request body could not be read")]
    Read,
    #[error("request body did not arrive in time")]
    Timeout,
}
