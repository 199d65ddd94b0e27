//! The clocks of one connection, and the IO wrapper that feeds them.
//!
//! `Tracked` wraps the connection's IO and stamps every read or write that moves bytes;
//! `Activity` counts requests whose handler has not returned yet (a request waiting on a slow
//! upstream moves no bytes but is not idle) and knows since when a request head is awaited.
//! `Activity::watch` ends when either limit is passed:
//!
//! - the head deadline (`header_read_timeout`): from accept for the first request (the TLS
//!   handshake and a silent connection included), and for every later HTTP/1 request from its
//!   first byte;
//! - the idle timeout (`idle_timeout`): no request in progress and no byte moved.
//!
//! `Tracked` also lingers: when the connection is shut down after a response that went out
//! before its request's body was read (`ConnState::lingers`), it keeps reading and discarding
//! for a bounded time and size before shutting down, as nginx's lingering close does. Closing
//! with unread data would make the kernel reset the connection, and a client still writing its
//! body would lose the response it had been sent.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::ctx::ConnState;

/// No head is awaited.
const NO_HEAD: u64 = u64::MAX;

/// Lingering close: at most this long in all, ...
const LINGER_TIME: Duration = Duration::from_secs(30);
/// ... this long without a byte, ...
const LINGER_IDLE: Duration = Duration::from_secs(5);
/// ... and this many bytes discarded.
const LINGER_BYTES: u64 = 256 * 1024 * 1024;

/// Why `Activity::watch` ended.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum Expired {
    /// A request head did not arrive within `header_read_timeout`.
    Head,
    /// Nothing happened for `idle_timeout`.
    Idle,
    /// No request in progress, no head begun, and nothing moved for the settling time: the
    /// connection can be parked.
    Settled,
}

/// The last time a connection moved bytes, its requests in progress, and since when it waits
/// for a request head.
#[derive(Debug)]
pub(super) struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Milliseconds after `epoch` since which a head is awaited, or `NO_HEAD`.
    head_since_ms: AtomicU64,
    /// HTTP/1: every request's head is timed from its first byte. HTTP/2 (and tunnels): only
    /// the first one, from accept.
    every_head: AtomicBool,
}

impl Activity {
    /// A connection accepted at `accepted`, waiting for its first head from then on.
    pub(super) fn new(accepted: Instant) -> Arc<Self> {
        Arc::new(Self {
            epoch: accepted,
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            head_since_ms: AtomicU64::new(0),
            every_head: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Bytes were read: on an HTTP/1 connection between requests, a new head starts.
    fn read(&self, state: &ConnState) {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        if self.every_head.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Relaxed) == 0
            && !state.lingers()
        {
            let _ = self.head_since_ms.compare_exchange(
                NO_HEAD,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Times every request head of this connection (HTTP/1), not only the first.
    pub(super) fn time_every_head(&self) {
        self.every_head.store(true, Ordering::Relaxed);
    }

    /// Stops timing heads (the connection became a tunnel).
    pub(super) fn stop_timing_heads(&self) {
        self.every_head.store(false, Ordering::Relaxed);
        self.head_since_ms.store(NO_HEAD, Ordering::Relaxed);
    }

    /// Marks a request in progress (its head has arrived) until the guard is dropped.
    pub(super) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since_ms.store(NO_HEAD, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Completes when a head is overdue or the connection has been idle for `idle`.
    pub(super) async fn watch(&self, head: Duration, idle: Duration) -> Expired {
        self.watch_or_settle(head, idle, None).await
    }

    /// `watch`, and also completes with `Settled` once the connection has been idle for
    /// `settle` (if shorter than `idle`) with no head begun.
    pub(super) async fn watch_or_settle(
        &self,
        head: Duration,
        idle: Duration,
        settle: Option<Duration>,
    ) -> Expired {
        let (head_ms, idle_ms) = (millis(head), millis(idle));
        let settle_ms = settle.map(millis).filter(|&s| s < idle_ms);
        loop {
            let now = self.now_ms();
            let busy = self.in_flight.load(Ordering::Relaxed) > 0;
            let since = self.head_since_ms.load(Ordering::Relaxed);
            let mut wait = idle_ms;
            if since != NO_HEAD && !busy {
                let waited = now.saturating_sub(since);
                if waited >= head_ms {
                    return Expired::Head;
                }
                wait = wait.min(head_ms - waited);
            }
            if !busy {
                let quiet = now.saturating_sub(self.last_ms.load(Ordering::Relaxed));
                if quiet >= idle_ms {
                    return Expired::Idle;
                }
                wait = wait.min(idle_ms - quiet);
                if let Some(settle_ms) = settle_ms.filter(|_| since == NO_HEAD) {
                    if quiet >= settle_ms {
                        return Expired::Settled;
                    }
                    wait = wait.min(settle_ms - quiet);
                }
            }
            if let Some(settle_ms) = settle_ms {
                // Busy or reading a head now, maybe settled by then.
                wait = wait.min(settle_ms);
            }
            tokio::time::sleep(Duration::from_millis(wait.max(20))).await;
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A request in progress; dropping it ends it.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connection IO that records activity and lingers before shutting down when asked to.
#[derive(Debug)]
pub(super) struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
    state: Arc<ConnState>,
    linger: Option<Linger>,
}

/// The state of a lingering close.
#[derive(Debug)]
struct Linger {
    deadline: Pin<Box<Sleep>>,
    quiet: Pin<Box<Sleep>>,
    discarded: u64,
}

impl<I> Tracked<I> {
    pub(super) fn new(inner: I, activity: Arc<Activity>, state: Arc<ConnState>) -> Self {
        Self {
            inner,
            activity,
            state,
            linger: None,
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Tracked<I> {
    /// Reads and discards until the client closes, stops sending for `LINGER_IDLE`, or the
    /// time or byte budget is spent. Always ends `Ready`.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let linger = self.linger.get_or_insert_with(|| Linger {
            deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
            quiet: Box::pin(tokio::time::sleep(LINGER_IDLE)),
            discarded: 0,
        });
        let mut scratch = [0u8; 8192];
        // A bounded number of reads per poll, so that a fast client cannot hog the worker.
        for _ in 0..64 {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {
                    linger.discarded += buf.filled().len() as u64;
                    if linger.discarded > LINGER_BYTES {
                        return Poll::Ready(());
                    }
                    let quiet_until = Instant::now() + LINGER_IDLE;
                    linger.quiet.as_mut().reset(quiet_until);
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => {
                    let over = linger.deadline.as_mut().poll(cx).is_ready()
                        || linger.quiet.as_mut().poll(cx).is_ready();
                    return if over { Poll::Ready(()) } else { Poll::Pending };
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read(&self.state);
        }
        polled
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.state.lingers() {
            std::task::ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
            std::task::ready!(self.poll_linger(cx));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_first_head_is_timed_from_accept() {
        let activity = Activity::new(Instant::now());
        let started = Instant::now();
        let expired = activity
            .watch(Duration::from_secs(1), Duration::from_secs(60))
            .await;
        assert_eq!(expired, Expired::Head);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn between_requests_the_idle_timeout_rules_until_a_byte_arrives() {
        let state = ConnState::default();
        let activity = Activity::new(Instant::now());
        activity.time_every_head();
        drop(activity.request());
        let started = Instant::now();
        let expired = activity
            .watch(Duration::from_secs(1), Duration::from_secs(5))
            .await;
        assert_eq!(expired, Expired::Idle);
        assert!(started.elapsed() >= Duration::from_secs(4));
        activity.read(&state);
        let expired = activity
            .watch(Duration::from_secs(1), Duration::from_secs(5))
            .await;
        assert_eq!(expired, Expired::Head, "a started head is timed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_settles_once_quiet_with_no_request_and_no_head() {
        let (head, idle, settle) = (
            Duration::from_secs(10),
            Duration::from_secs(60),
            Some(Duration::from_secs(1)),
        );
        let state = ConnState::default();
        let activity = Activity::new(Instant::now());
        activity.time_every_head();
        // A request in progress for 3 s: not settled meanwhile, settled 1 s after it ends.
        let in_flight = activity.request();
        let started = Instant::now();
        let ends = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            drop(in_flight);
        };
        let (expired, ()) = tokio::join!(activity.watch_or_settle(head, idle, settle), ends);
        assert_eq!(expired, Expired::Settled);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(4) && took < Duration::from_secs(5),
            "{took:?}"
        );
        // A head begun is never settled: it runs into its deadline.
        activity.read(&state);
        let expired = activity.watch_or_settle(head, idle, settle).await;
        assert_eq!(expired, Expired::Head);
        // Without a settling time (or one past the idle timeout), only the timeouts.
        drop(activity.request());
        let short_idle = Duration::from_secs(2);
        let expired = activity
            .watch_or_settle(head, short_idle, Some(Duration::from_secs(5)))
            .await;
        assert_eq!(expired, Expired::Idle);
    }
}
