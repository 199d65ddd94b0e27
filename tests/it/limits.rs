//! Issue 11 ("the front door") §4, §5 and part of §7, as hostile or merely impatient clients
//! see them: every rejection reaches a client that uploads before it reads (HTTP/1.1 and
//! HTTP/2, over TLS), a broken request body is the client's `400`, connection limits hold
//! (header deadline from accept, body deadline on the gateway's own endpoints,
//! `max_header_bytes`, tunnels inside `max_connections` and `idle_timeout`, HTTP/2 only after
//! ALPN `h2`), the admin listener's `Host` check and header deadline, and the server's TLS
//! cipher-suite order.
//!
//! Raw clients come from `support::wire`; every wait is bounded.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::wire::{self, RawResponse, Tls, STEP};
use crate::support::{gateway, material, Options, TestGateway, ALICE};

/// `/public/...` (no authentication; the prefix is stripped, so `/public/ws` reaches the mock
/// upstream's WebSocket echo and `/public/slow` its slow answer), everything else required.
const ROUTES: &str = "[[routes]]\nname = \"pub\"\npath_prefix = \"/public\"\nauth = \"public\"\n\
    strip_prefix = true\nupstreams = [\"http://{upstream}\"]\n\n\
    [[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstreams = [\"http://{upstream}\"]\n";

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// A network's pace for the 256 KiB uploads (16 KiB pieces): slow enough that the client is
/// still writing when the gateway answers, as over any real link; loopback's socket buffers
/// would otherwise swallow the whole body before the answer.
const PACE: Duration = Duration::from_millis(5);

/// The head of an upload to the required route with a token that is not one.
fn bad_token_upload_head(framing: &str) -> String {
    format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer not-a-token\r\n\
         Content-Type: application/octet-stream\r\n{framing}\r\n\r\n"
    )
}

fn options(server: &'static str) -> Options {
    Options {
        server,
        routes: ROUTES.to_owned(),
        ..Options::default()
    }
}

/// As python-requests and curl do: writes the whole request (head, then the body with `pause`
/// after each piece) over HTTP/1.1 + TLS, and only then reads. Panics unless every write
/// succeeds and a whole response arrives.
async fn upload_then_read<I>(
    addr: SocketAddr,
    head: &str,
    body: I,
    pause: Duration,
) -> (RawResponse, Tls)
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let mut tls = wire::tls(addr, &["http/1.1"]).await;
    wire::write_parts(&mut tls, [head.as_bytes()], STEP)
        .await
        .unwrap_or_else(|e| panic!("writing the head failed: {e}"));
    wire::write_paced(&mut tls, body, pause, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| {
            panic!("writing the body failed ({e}): the client never gets to read the answer")
        });
    let response = wire::read_response(&mut tls)
        .await
        .unwrap_or_else(|e| panic!("no response after the whole upload was written: {e}"));
    (response, tls)
}

/// The checks every early HTTP/1.1 rejection shares: status, JSON `error`, `Connection:
/// close`, and the gateway then closing the connection.
async fn assert_rejected_and_closed(
    (response, mut tls): (RawResponse, Tls),
    status: u16,
    error: &str,
) {
    assert_eq!(response.status, status, "{}", response.head);
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "{}",
        response.head
    );
    assert_eq!(response.json()["error"], error, "{}", response.head);
    assert!(
        response.closes(),
        "no Connection: close in\n{}",
        response.head
    );
    assert!(
        wire::closed_within(&mut tls, STEP).await.is_some(),
        "the gateway keeps the connection open after Connection: close"
    );
}

// ---- §4 HTTP/1.1: a client that writes its whole body before reading reads the rejection ----

#[tokio::test]
async fn h1_client_writing_256k_before_reading_reads_the_401() {
    let (upstream, gw) = gateway(options("")).await;
    let head = bad_token_upload_head(&format!("Content-Length: {}", 256 * KIB));
    let body = wire::zero_chunks(256 * KIB, 16 * KIB);
    let exchange = upload_then_read(gw.addr, &head, body, PACE).await;
    assert_rejected_and_closed(exchange, 401, "invalid_token").await;
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn h1_client_writing_8m_before_reading_reads_the_401() {
    let (upstream, gw) = gateway(options("")).await;
    let head = bad_token_upload_head(&format!("Content-Length: {}", 8 * MIB));
    let body = wire::zero_chunks(8 * MIB, 64 * KIB);
    let exchange = upload_then_read(gw.addr, &head, body, Duration::ZERO).await;
    assert_rejected_and_closed(exchange, 401, "invalid_token").await;
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn h1_client_writing_8m_chunked_before_reading_reads_the_401() {
    let (upstream, gw) = gateway(options("")).await;
    let head = bad_token_upload_head("Transfer-Encoding: chunked");
    let exchange =
        upload_then_read(gw.addr, &head, wire::chunked_zeros(8 * MIB), Duration::ZERO).await;
    assert_rejected_and_closed(exchange, 401, "invalid_token").await;
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn h1_client_writing_a_256k_form_before_reading_reads_the_413() {
    let (_upstream, gw) = gateway(options("")).await;
    let prefix = b"grant_type=password&username=alice&password=";
    let mut form = prefix.to_vec();
    form.resize(256 * KIB, b'a');
    let head = format!(
        "POST /api/oauth2/token HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        form.len()
    );
    let exchange = upload_then_read(gw.addr, &head, form.chunks(16 * KIB), PACE).await;
    assert_rejected_and_closed(exchange, 413, "invalid_request").await;
}

/// hyper's HTTP/1.1 client on its own TLS connection (ALPN `http/1.1`).
async fn hyper_h1(
    gw: &TestGateway,
) -> hyper::client::conn::http1::SendRequest<
    http_body_util::combinators::BoxBody<Bytes, std::io::Error>,
> {
    let tls = wire::tls(gw.addr, &["http/1.1"]).await;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// A body streamed frame by frame, `pause` between frames, not known to hyper in advance.
fn streamed(
    chunks: impl Iterator<Item = Bytes> + Send + Sync + 'static,
    pause: Duration,
) -> http_body_util::combinators::BoxBody<Bytes, std::io::Error> {
    let frames = futures_util::stream::unfold(chunks, move |mut chunks| async move {
        let chunk = chunks.next()?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        Some((Ok::<_, std::io::Error>(Frame::data(chunk)), chunks))
    });
    StreamBody::new(frames).boxed()
}

async fn hyper_h1_reply(
    gw: &TestGateway,
    req: Request<http_body_util::combinators::BoxBody<Bytes, std::io::Error>>,
) -> (StatusCode, Option<String>, Bytes) {
    let mut sender = hyper_h1(gw).await;
    let response = tokio::time::timeout(STEP, sender.send_request(req))
        .await
        .expect("hyper's client gets an answer within the step")
        .unwrap_or_else(|e| panic!("hyper's client failed instead of reading the answer: {e:?}"));
    let status = response.status();
    let connection = response
        .headers()
        .get("connection")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = tokio::time::timeout(STEP, response.into_body().collect())
        .await
        .expect("the body within the step")
        .unwrap_or_else(|e| panic!("the response body failed: {e:?}"))
        .to_bytes();
    (status, connection, body)
}

#[tokio::test]
async fn hyper_h1_client_streaming_8m_reads_the_401() {
    let (upstream, gw) = gateway(options("")).await;
    let req = Request::post("/upload")
        .header("host", "localhost")
        .header("authorization", "Bearer not-a-token")
        .header("content-length", 8 * MIB)
        .body(streamed(
            wire::zero_chunks(8 * MIB, 64 * KIB).map(Bytes::from_static),
            Duration::ZERO,
        ))
        .unwrap();
    let (status, connection, body) = hyper_h1_reply(&gw, req).await;
    assert_eq!(status, 401);
    assert_eq!(connection.as_deref(), Some("close"));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "invalid_token");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn hyper_h1_client_streaming_a_256k_form_reads_the_413() {
    let (_upstream, gw) = gateway(options("")).await;
    let mut form = b"grant_type=password&username=alice&password=".to_vec();
    form.resize(256 * KIB, b'a');
    let pieces: Vec<Bytes> = form.chunks(16 * KIB).map(Bytes::copy_from_slice).collect();
    let req = Request::post("/api/oauth2/token")
        .header("host", "localhost")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-length", form.len())
        .body(streamed(pieces.into_iter(), PACE))
        .unwrap();
    let (status, connection, body) = hyper_h1_reply(&gw, req).await;
    assert_eq!(status, 413);
    assert_eq!(connection.as_deref(), Some("close"));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "invalid_request");
}

// ---- §4 HTTP/2: the response, then RST_STREAM(NO_ERROR); the connection stays usable ----
//
// Wire order checked: HEADERS, DATA(END_STREAM), then RST_STREAM(NO_ERROR) for the unread body
// (RFC 9113 §8.1); a reset before the response, or of the connection, fails the test.

/// An h2 client (the `h2` crate) on its own TLS connection with ALPN `h2`.
async fn h2_connect(gw: &TestGateway) -> h2::client::SendRequest<Bytes> {
    let tls = wire::tls(gw.addr, &["h2"]).await;
    assert_eq!(wire::alpn(&tls).as_deref(), Some("h2"));
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// What became of one HTTP/2 request.
#[derive(Debug)]
struct H2Outcome {
    status: StatusCode,
    body: Bytes,
    /// Body bytes the client got to send (flow control permitting).
    sent: usize,
    /// The reason of the `RST_STREAM` the gateway sent for the request, if it sent one.
    reset: Option<h2::Reason>,
}

/// Sends `req` with a body of `total` zero bytes, streamed as flow control allows, while
/// reading the response. Panics if the stream fails before a whole response arrives.
async fn h2_send(
    client: &h2::client::SendRequest<Bytes>,
    req: Request<()>,
    total: usize,
) -> H2Outcome {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let mut client = tokio::time::timeout(STEP, client.clone().ready())
        .await
        .expect("the connection takes a new stream within the step")
        .unwrap_or_else(|e| panic!("the connection is gone: {e}"));
    let (response, mut stream) = client.send_request(req, total == 0).unwrap();
    let sender = tokio::spawn(async move {
        let mut sent = 0;
        while sent < total {
            stream.reserve_capacity((total - sent).min(ZEROS.len()));
            match poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(Ok(n)) => {
                    let n = n.min(total - sent).min(ZEROS.len());
                    sent += n;
                    if stream
                        .send_data(Bytes::from_static(&ZEROS[..n]), sent == total)
                        .is_err()
                    {
                        break;
                    }
                }
                Some(Err(_)) | None => break,
            }
        }
        // A request sent whole needs no reset; one cut short has had it already.
        let wait = if sent == total {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(2)
        };
        let reset = tokio::time::timeout(wait, poll_fn(|cx| stream.poll_reset(cx))).await;
        (sent, reset)
    });
    let response = tokio::time::timeout(STEP, response)
        .await
        .expect("a response within the step")
        .unwrap_or_else(|e| panic!("the stream failed instead of answering: {e}"));
    let status = response.status();
    let mut body = response.into_body();
    let mut bytes = BytesMut::new();
    while let Some(chunk) = tokio::time::timeout(STEP, body.data())
        .await
        .expect("the response body within the step")
    {
        let chunk = chunk.unwrap_or_else(|e| panic!("the response body failed: {e}"));
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let (sent, reset) = tokio::time::timeout(STEP, sender)
        .await
        .expect("the upload ends once the gateway has answered")
        .unwrap();
    let reset = match reset {
        Err(_elapsed) => None,
        Ok(Ok(reason)) => Some(reason),
        Ok(Err(e)) => panic!("the connection failed after the answer: {e}"),
    };
    H2Outcome {
        status,
        body: bytes.freeze(),
        sent,
        reset,
    }
}

/// `req` with a body of `total` bytes is refused with `status` and `error`; an upload cut short
/// is reset with `NO_ERROR`, not the connection, which then serves a small upload.
async fn assert_h2_rejection_keeps_the_connection(
    req: Request<()>,
    total: usize,
    status: u16,
    error: &str,
) {
    let (upstream, gw) = gateway(options("")).await;
    let client = h2_connect(&gw).await;
    let refused = h2_send(&client, req, total).await;
    assert_eq!(refused.status, status, "{refused:?}");
    let json: serde_json::Value =
        serde_json::from_slice(&refused.body).unwrap_or_else(|e| panic!("{e}: {refused:?}"));
    assert_eq!(json["error"], error);
    if refused.sent < total {
        assert_eq!(
            refused.reset,
            Some(h2::Reason::NO_ERROR),
            "the unread body must be reset with NO_ERROR: {refused:?}"
        );
    }
    assert_eq!(upstream.count(), 0);

    let next = Request::post("https://localhost/public/count")
        .body(())
        .unwrap();
    let served = h2_send(&client, next, 4 * KIB).await;
    assert_eq!(served.status, 200, "{served:?}");
    assert_eq!(&served.body[..], b"4096");
}

fn h2_bad_token_upload(len: Option<usize>) -> Request<()> {
    let mut req = Request::post("https://localhost/upload")
        .header("authorization", "Bearer not-a-token")
        .header("content-type", "application/octet-stream");
    if let Some(len) = len {
        req = req.header("content-length", len);
    }
    req.body(()).unwrap()
}

fn h2_big_form(len: Option<usize>) -> Request<()> {
    let mut req = Request::post("https://localhost/api/oauth2/token")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(len) = len {
        req = req.header("content-length", len);
    }
    req.body(()).unwrap()
}

#[tokio::test]
async fn h2_256k_upload_with_a_bad_token_reads_the_401_and_the_connection_survives() {
    let req = h2_bad_token_upload(Some(256 * KIB));
    assert_h2_rejection_keeps_the_connection(req, 256 * KIB, 401, "invalid_token").await;
}

#[tokio::test]
async fn h2_8m_upload_with_a_bad_token_reads_the_401_and_the_connection_survives() {
    let req = h2_bad_token_upload(None);
    assert_h2_rejection_keeps_the_connection(req, 8 * MIB, 401, "invalid_token").await;
}

#[tokio::test]
async fn h2_256k_form_reads_the_413_and_the_connection_survives() {
    let req = h2_big_form(Some(256 * KIB));
    assert_h2_rejection_keeps_the_connection(req, 256 * KIB, 413, "invalid_request").await;
}

#[tokio::test]
async fn h2_8m_form_reads_the_413_and_the_connection_survives() {
    let req = h2_big_form(None);
    assert_h2_rejection_keeps_the_connection(req, 8 * MIB, 413, "invalid_request").await;
}

// ---- §4: a malformed request body is the client's error ----

#[tokio::test]
async fn a_malformed_chunked_body_is_400_and_not_an_upstream_error() {
    let (_upstream, gw) = gateway(options("")).await;
    let cases: [(&str, &[u8]); 3] = [
        ("0x5 as a chunk size", b"0x5\r\nhello\r\n0\r\n\r\n"),
        ("a bare LF after the chunk size", b"5\nhello\r\n0\r\n\r\n"),
        (
            "a 20-hex-digit chunk size",
            b"FFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n",
        ),
    ];
    for (case, body) in cases {
        // `/public/slow`: the upstream answers only after 3 s, so any quick answer is the
        // gateway's own reading of the body.
        let mut tls = wire::tls(gw.addr, &["http/1.1"]).await;
        let head = "POST /public/slow HTTP/1.1\r\nHost: localhost\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        wire::write_parts(&mut tls, [head.as_bytes(), body], STEP)
            .await
            .unwrap();
        let response = wire::read_response(&mut tls)
            .await
            .unwrap_or_else(|e| panic!("{case}: no response: {e}"));
        assert_eq!(response.status, 400, "{case}: {}", response.head);
        assert_eq!(response.json()["error"], "invalid_request", "{case}");
    }
    let metrics = gw.shared.metrics.render();
    let counted: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("portcullis_upstream_errors_total"))
        .filter(|l| l.rsplit(' ').next() != Some("0"))
        .collect();
    assert!(
        counted.is_empty(),
        "a client's broken body counted as an upstream error: {counted:?}"
    );
}

// ---- §5: the gateway's own endpoints read their body within header_read_timeout ----

/// A token request whose body stalls: `Content-Length: 100`, then 10 bytes, then nothing.
async fn stalled_token_request(gw: &TestGateway) -> Tls {
    let mut tls = wire::tls(gw.addr, &["http/1.1"]).await;
    let head = "POST /api/oauth2/token HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n\
                grant_type";
    wire::write_parts(&mut tls, [head.as_bytes()], STEP)
        .await
        .unwrap();
    tls
}

#[tokio::test]
async fn a_stalled_token_body_gets_408_at_the_header_timeout() {
    let (_upstream, gw) = gateway(options("header_read_timeout = \"1s\"")).await;
    let started = Instant::now();
    let mut tls = stalled_token_request(&gw).await;
    let response = tokio::time::timeout(Duration::from_secs(4), wire::read_response(&mut tls))
        .await
        .expect("the gateway answers a stalled body within ~2 s, not never")
        .unwrap_or_else(|e| panic!("no 408 response: {e}"));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status, 408, "{}", response.head);
    assert_eq!(response.json()["error"], "invalid_request");
    assert!(
        wire::closed_within(&mut tls, Duration::from_secs(2))
            .await
            .is_some(),
        "the connection stays open after the 408"
    );
}

#[tokio::test]
async fn four_stalled_token_bodies_do_not_keep_a_fifth_client_out() {
    let (_upstream, gw) =
        gateway(options("header_read_timeout = \"1s\"\nmax_connections = 4")).await;
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(stalled_token_request(&gw).await);
    }
    let started = Instant::now();
    let fifth = async {
        let mut tls = wire::tls(gw.addr, &["http/1.1"]).await;
        let form = "grant_type=client_credentials";
        let request = format!(
            "POST /api/oauth2/token HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        );
        wire::write_parts(&mut tls, [request.as_bytes()], STEP)
            .await
            .unwrap();
        wire::read_response(&mut tls).await.unwrap()
    };
    let response = tokio::time::timeout(Duration::from_secs(4), fifth)
        .await
        .expect("four stalled bodies keep a fifth client out for longer than the header timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status, 400, "{}", response.head);
    drop(stalled);
}

// ---- §5: header_read_timeout counts from accept; idle keep-alive obeys idle_timeout ----

const SILENT: &str = "header_read_timeout = \"1s\"\nidle_timeout = \"60s\"";

#[tokio::test]
async fn a_silent_tcp_connection_is_closed_at_the_header_timeout() {
    let (_upstream, gw) = gateway(options(
        "tls = false\nheader_read_timeout = \"1s\"\nidle_timeout = \"60s\"",
    ))
    .await;
    let mut tcp = wire::tcp(gw.addr).await;
    let closed = wire::closed_within(&mut tcp, Duration::from_secs(3)).await;
    let closed = closed.expect("a silent TCP connection is still open after 3 s");
    assert!(closed < Duration::from_millis(2500), "{closed:?}");
}

#[tokio::test]
async fn a_silent_tls_connection_is_closed_at_the_header_timeout() {
    let (_upstream, gw) = gateway(options(SILENT)).await;
    let started = Instant::now();
    let mut tls = wire::tls(gw.addr, &["http/1.1"]).await;
    let closed = wire::closed_within(&mut tls, Duration::from_secs(3)).await;
    assert!(
        closed.is_some(),
        "a TLS connection that sent nothing after its handshake is still open after 3 s"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_head_is_cut_at_the_header_timeout() {
    let (_upstream, gw) = gateway(options(SILENT)).await;
    let started = Instant::now();
    let mut tls = wire::tls(gw.addr, &["http/1.1"]).await;
    let mut head = b"GET /public/x HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".to_vec();
    head.resize(head.len() + 64, b'a');
    let mut closed = false;
    let mut buf = [0u8; 1024];
    for byte in head {
        if tls.write_all(&[byte]).await.is_err() || tls.flush().await.is_err() {
            closed = true;
            break;
        }
        match tokio::time::timeout(Duration::from_millis(300), tls.read(&mut buf)).await {
            Err(_) => {} // still open: the next byte
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {
                // Something (e.g. a 408) before the close.
                closed = wire::closed_within(&mut tls, Duration::from_secs(1))
                    .await
                    .is_some();
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    assert!(
        closed,
        "a head sent one byte per 300 ms is still being read"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_obeys_idle_timeout_not_the_header_timeout() {
    let (_upstream, gw) = gateway(options(
        "header_read_timeout = \"1s\"\nidle_timeout = \"5s\"",
    ))
    .await;
    let mut tls = wire::tls(gw.addr, &["http/1.1"]).await;
    let request = b"GET /public/x HTTP/1.1\r\nHost: localhost\r\n\r\n";
    wire::write_parts(&mut tls, [request], STEP).await.unwrap();
    let first = wire::read_response(&mut tls).await.unwrap();
    assert_eq!(first.status, 200, "{}", first.head);
    assert!(!first.closes(), "{}", first.head);

    tokio::time::sleep(Duration::from_secs(2)).await;
    wire::write_parts(&mut tls, [request], STEP)
        .await
        .unwrap_or_else(|e| panic!("the idle connection was closed before idle_timeout: {e}"));
    let second = wire::read_response(&mut tls)
        .await
        .unwrap_or_else(|e| panic!("the second request, 2 s after the first, was not served: {e}"));
    assert_eq!(second.status, 200, "{}", second.head);
}

const PUBLIC_GET: &[u8] = b"GET /public/x HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// A keep-alive TLS connection that served one request and then stayed idle past the
/// gateway's park delay (1 s).
async fn parked(gw: &TestGateway) -> Tls {
    let mut tls = wire::tls(gw.addr, &["http/1.1"]).await;
    wire::write_parts(&mut tls, [PUBLIC_GET], STEP)
        .await
        .unwrap();
    assert_eq!(wire::read_response(&mut tls).await.unwrap().status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tls
}

/// An HTTP/1.1 connection idle for over a second is parked (its hyper state dropped) and
/// served afresh from its next byte: a head that then arrives in pieces, and two requests
/// written at once, are each answered on the same connection.
#[tokio::test]
async fn a_parked_connection_serves_a_split_head_and_pipelined_requests() {
    let (_upstream, gw) = gateway(options(SILENT)).await;
    let mut tls = parked(&gw).await;
    let (start, rest) = PUBLIC_GET.split_at(5);
    wire::write_parts(&mut tls, [start, rest], STEP)
        .await
        .unwrap();
    let split = wire::read_response(&mut tls).await.unwrap();
    assert_eq!(split.status, 200, "{}", split.head);
    assert!(!split.closes(), "{}", split.head);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let two = [PUBLIC_GET, PUBLIC_GET].concat();
    wire::write_parts(&mut tls, [&two[..]], STEP).await.unwrap();
    for i in 0..2 {
        let answer = wire::read_response(&mut tls).await.unwrap();
        assert_eq!(answer.status, 200, "pipelined request {i}: {}", answer.head);
    }
}

/// The first byte of a head that arrives on a parked connection starts the head deadline: a
/// head that stalls there is cut at `header_read_timeout`, as on a connection never parked.
#[tokio::test]
async fn a_head_begun_on_a_parked_connection_is_timed() {
    let (_upstream, gw) = gateway(options(SILENT)).await;
    let mut tls = parked(&gw).await;
    wire::write_parts(&mut tls, [&b"GET /pub"[..]], STEP)
        .await
        .unwrap();
    let started = Instant::now();
    let closed = wire::closed_within(&mut tls, Duration::from_secs(4)).await;
    assert!(
        closed.is_some(),
        "a stalled head on a parked connection is still open after 4 s"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

/// The download that `never_read_after_closing` asks for.
const DOWNLOAD: usize = 16 * MIB;

/// Sends `head`, a request for a `DOWNLOAD`-byte answer that closes the connection, and reads
/// nothing for 1.5 s: the answer stalls, nothing moves, and the connection is parked while
/// hyper still sends. Then reads the answer and sends `after`, which reads as a request.
/// Asserts that `after` is never answered and never reaches the upstream, and that the
/// connection closes once the client is done.
async fn never_read_after_closing(head: &str, after: &[u8]) {
    let (upstream, gw) = gateway(options(SILENT)).await;
    // A small receive buffer (no autotuning): the gateway's writes stall long before 16 MiB.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * KIB as u32).unwrap();
    let tcp = tokio::time::timeout(STEP, socket.connect(gw.addr))
        .await
        .expect("connect within the step timeout")
        .unwrap();
    let mut config = crate::support::client_tls_config(&material().cert_pem);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut tls = wire::tls_over(tcp, config).await.unwrap();

    wire::write_parts(&mut tls, [head.as_bytes()], STEP)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answer = wire::read_response(&mut tls).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert_eq!(answer.body.len(), DOWNLOAD, "{}", answer.head);

    // The gateway may have closed already: a write that fails is fine.
    let _ = wire::write_parts(&mut tls, [after], STEP).await;
    let later = wire::drain(&mut tls, Duration::from_secs(1)).await;
    assert!(
        later.received.is_empty(),
        "bytes sent after an answer that closes were served as a request:\n{}",
        String::from_utf8_lossy(&later.received)
    );
    let paths: Vec<String> = (upstream.received.lock().unwrap().iter())
        .map(|r| r.uri.path().to_owned())
        .collect();
    assert_eq!(
        paths,
        [format!("/zeros/{DOWNLOAD}")],
        "bytes sent after an answer that closes reached the upstream"
    );
    if later.closed_after.is_none() {
        // The client is done sending: a gateway lingering until then closes.
        let _ = tokio::time::timeout(STEP, tls.shutdown()).await;
        assert!(
            wire::closed_within(&mut tls, Duration::from_secs(2))
                .await
                .is_some(),
            "the connection is still open after an answer that closes and the client's close"
        );
    }
}

/// A connection whose answer said `Connection: close` is never read again, even when it was
/// parked while that answer was still going out: what the client sends afterwards (here the
/// request's body, unread when the upstream answered, which happens to read as a request) is
/// never served and never reaches the upstream.
#[tokio::test]
async fn a_parked_connection_whose_answer_said_close_is_never_read_again() {
    let post = format!(
        "POST /public/zeros/{DOWNLOAD} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        PUBLIC_GET.len()
    );
    never_read_after_closing(&post, PUBLIC_GET).await;
}

/// A client that sends `Connection: close` gets no further request served on that
/// connection (RFC 9112 §9.6), even when the connection was parked while the answer was
/// still going out.
#[tokio::test]
async fn a_parked_connection_whose_client_said_close_is_never_read_again() {
    let get = format!(
        "GET /public/zeros/{DOWNLOAD} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    never_read_after_closing(&get, PUBLIC_GET).await;
}

/// The same for an HTTP/1.0 request without `Connection: keep-alive`, which closes too.
#[tokio::test]
async fn a_parked_http_1_0_connection_is_never_read_again() {
    let get = format!("GET /public/zeros/{DOWNLOAD} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    never_read_after_closing(&get, PUBLIC_GET).await;
}

// ---- §5: max_header_bytes at any value >= 1024 ----

#[tokio::test]
async fn a_head_over_max_header_bytes_is_431() {
    let (upstream, gw) = gateway(options("max_header_bytes = 4096")).await;
    let get = |pad: usize| {
        let pad = "a".repeat(pad);
        format!("GET /public/x HTTP/1.1\r\nHost: localhost\r\nX-Long: {pad}\r\n\r\n")
    };

    let mut tls = wire::tls(gw.addr, &["http/1.1"]).await;
    wire::write_parts(&mut tls, [get(3000)], STEP)
        .await
        .unwrap();
    let small = wire::read_response(&mut tls).await.unwrap();
    assert_eq!(small.status, 200, "a ~3 KB head: {}", small.head);
    assert_eq!(upstream.count(), 1);

    let mut tls = wire::tls(gw.addr, &["http/1.1"]).await;
    wire::write_parts(&mut tls, [get(6000)], STEP)
        .await
        .unwrap();
    let large = wire::read_response(&mut tls)
        .await
        .unwrap_or_else(|e| panic!("a ~6 KB head got no response: {e}"));
    assert_eq!(large.status, 431, "a ~6 KB head: {}", large.head);
    assert_eq!(upstream.count(), 1, "the 6 KB head reached the upstream");
}

// ---- §5: tunnels keep their permit, count in the gauge, obey idle_timeout ----

/// A WebSocket tunnel through the public route to the mock upstream's echo; checks that bytes
/// flow.
async fn open_tunnel(gw: &TestGateway) -> Tls {
    let mut tls = wire::tls(gw.addr, &["http/1.1"]).await;
    let request = "GET /public/ws HTTP/1.1\r\nHost: localhost\r\n\
                   Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    wire::write_parts(&mut tls, [request.as_bytes()], STEP)
        .await
        .unwrap();
    let response = wire::read_response(&mut tls).await.unwrap();
    assert_eq!(response.status, 101, "{}", response.head);
    echo(&mut tls, b"ping").await;
    tls
}

async fn echo(tls: &mut Tls, message: &[u8]) {
    tls.write_all(message).await.unwrap();
    tls.flush().await.unwrap();
    let mut echoed = vec![0u8; message.len()];
    tokio::time::timeout(STEP, tls.read_exact(&mut echoed))
        .await
        .expect("the echo within the step")
        .unwrap();
    assert_eq!(echoed, message);
}

#[tokio::test]
async fn open_tunnels_hold_their_connection_permits() {
    let (_upstream, gw) = gateway(options("max_connections = 3")).await;
    let mut tunnels = Vec::new();
    for _ in 0..3 {
        tunnels.push(open_tunnel(&gw).await);
    }
    let addr = gw.addr;
    let mut fourth = tokio::spawn(async move {
        let mut tls = wire::tls(addr, &["http/1.1"]).await;
        let request = b"GET /public/x HTTP/1.1\r\nHost: localhost\r\n\r\n";
        wire::write_parts(&mut tls, [request], STEP).await.unwrap();
        wire::read_response(&mut tls).await.unwrap().status
    });
    let early = tokio::time::timeout(Duration::from_millis(1500), &mut fourth).await;
    assert!(
        early.is_err(),
        "a 4th client was served while 3 tunnels held max_connections = 3: {early:?}"
    );
    assert_eq!(
        gw.shared.metrics.open_connections.get(),
        3,
        "portcullis_open_connections does not count the open tunnels"
    );

    let mut closing = tunnels.pop().unwrap();
    closing.shutdown().await.unwrap();
    drop(closing);
    let status = tokio::time::timeout(Duration::from_secs(3), fourth)
        .await
        .expect("the 4th client is served once a tunnel closes")
        .unwrap();
    assert_eq!(status, 200);
    for tunnel in &mut tunnels {
        echo(tunnel, b"still open").await;
    }
}

#[tokio::test]
async fn a_tunnel_without_a_byte_for_idle_timeout_is_closed() {
    let (_upstream, gw) = gateway(options("idle_timeout = \"1s\"")).await;
    let mut tunnel = open_tunnel(&gw).await;
    // Traffic keeps it open past idle_timeout...
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        echo(&mut tunnel, b"keep-alive").await;
    }
    // ...silence closes it.
    let closed = wire::closed_within(&mut tunnel, Duration::from_secs(3)).await;
    let closed = closed.expect("a tunnel silent for 3 s with idle_timeout = 1s is still open");
    assert!(closed < Duration::from_millis(2500), "{closed:?}");
}

#[tokio::test]
async fn the_drain_closes_tunnels_at_once() {
    let (_upstream, mut gw) = gateway(options("shutdown_grace = \"30s\"")).await;
    let mut tunnel = open_tunnel(&gw).await;
    echo(&mut tunnel, b"before the drain").await;
    gw.shutdown();
    let closed = wire::closed_within(&mut tunnel, Duration::from_secs(3)).await;
    let closed = closed.expect("a tunnel is still open 3 s into a 30 s drain");
    assert!(closed < Duration::from_secs(2), "{closed:?}");
}

#[tokio::test]
async fn the_drain_closes_parked_connections_at_once() {
    let (_upstream, mut gw) = gateway(options("shutdown_grace = \"30s\"")).await;
    let mut tls = parked(&gw).await;
    gw.shutdown();
    let closed = wire::closed_within(&mut tls, Duration::from_secs(3)).await;
    let closed = closed.expect("a parked connection is still open 3 s into a 30 s drain");
    assert!(closed < Duration::from_secs(2), "{closed:?}");
    gw.stop().await.unwrap();
}

// ---- §5: after ALPN h2 the connection speaks only HTTP/2 ----

#[tokio::test]
async fn after_alpn_h2_an_invalid_preface_gets_a_goaway() {
    let (_upstream, gw) = gateway(options("")).await;
    let mut tls = wire::tls(gw.addr, &["h2"]).await;
    assert_eq!(wire::alpn(&tls).as_deref(), Some("h2"));
    let request = b"GET /public/x HTTP/1.1\r\nHost: localhost\r\n\r\n";
    wire::write_parts(&mut tls, [request], STEP).await.unwrap();
    let drained = wire::drain(&mut tls, Duration::from_secs(3)).await;
    let received = drained.received;
    assert!(
        !received.starts_with(b"HTTP/1."),
        "an HTTP/1.x answer after ALPN h2: {:?}",
        String::from_utf8_lossy(&received)
    );
    let mut frame_types = Vec::new();
    let mut rest = &received[..];
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        frame_types.push(rest[3]);
        rest = &rest[(9 + len).min(rest.len())..];
    }
    assert!(
        frame_types.contains(&0x07),
        "no GOAWAY frame; frame types {frame_types:?} in {received:?}"
    );
    assert!(
        drained.closed_after.is_some(),
        "the connection stays open after the GOAWAY"
    );
}

// ---- §7: the admin listener's Host check and header deadline ----

/// `GET /admin/sessions` on the admin listener with this `Host`.
async fn admin_sessions(gw: &TestGateway, host: &str) -> RawResponse {
    let mut tcp = wire::tcp(gw.admin_addr).await;
    let request =
        format!("GET /admin/sessions HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    wire::write_parts(&mut tcp, [request.as_bytes()], STEP)
        .await
        .unwrap();
    wire::read_response(&mut tcp)
        .await
        .unwrap_or_else(|e| panic!("Host {host}: no response: {e}"))
}

#[tokio::test]
async fn the_admin_listener_refuses_a_foreign_host() {
    let (_upstream, gw) = gateway(Options {
        admin: "allowed_hosts = [\"gateway.internal\"]",
        ..options("")
    })
    .await;
    gw.login(ALICE).await;
    let port = gw.admin_addr.port();

    let evil = admin_sessions(&gw, "evil.example").await;
    assert_eq!(evil.status, 403, "DNS rebinding: {}", evil.head);
    assert!(evil.json()["error"].is_string());
    assert!(
        !String::from_utf8_lossy(&evil.body).contains(ALICE.0),
        "sessions listed to a foreign Host"
    );
    let evil_port = admin_sessions(&gw, &format!("evil.example:{port}")).await;
    assert_eq!(evil_port.status, 403, "{}", evil_port.head);
    // Two Host fields are no host at all, as at the gateway's front door (RFC 9112 §3.2).
    let two = admin_sessions(&gw, "localhost\r\nHost: evil.example").await;
    assert_eq!(two.status, 403, "{}", two.head);

    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "[::1]".to_owned(),
        format!("[::1]:{port}"),
        "app.localhost".to_owned(),
        "gateway.internal".to_owned(),
        "gateway.internal:9000".to_owned(),
    ] {
        let reply = admin_sessions(&gw, &host).await;
        assert_eq!(reply.status, 200, "Host {host}: {}", reply.head);
        assert!(
            String::from_utf8_lossy(&reply.body).contains(ALICE.0),
            "Host {host}: {:?}",
            String::from_utf8_lossy(&reply.body)
        );
    }
}

#[tokio::test]
async fn the_admin_listener_drops_a_silent_connection_at_the_header_timeout() {
    let (_upstream, gw) = gateway(options(SILENT)).await;
    let mut tcp = wire::tcp(gw.admin_addr).await;
    let closed = wire::closed_within(&mut tcp, Duration::from_secs(3)).await;
    let closed = closed.expect("a silent admin connection is still open after 3 s");
    assert!(closed < Duration::from_millis(2500), "{closed:?}");
}

// ---- §7: the server's cipher-suite order wins ----

#[tokio::test]
async fn the_servers_cipher_suite_order_wins() {
    use rustls::crypto::aws_lc_rs::cipher_suite;
    let (_upstream, gw) = gateway(options("")).await;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = vec![
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS13_AES_128_GCM_SHA256,
    ];
    let mut roots = rustls::RootCertStore::empty();
    let cert =
        rustls::pki_types::pem::PemObject::from_pem_slice(material().cert_pem.as_bytes()).unwrap();
    roots.add(cert).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = wire::tls_with(gw.addr, config).await;
    let suite = tls.get_ref().1.negotiated_cipher_suite().unwrap().suite();
    assert_eq!(
        suite,
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
        "the client's preference won"
    );
}
