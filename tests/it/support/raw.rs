//! Clients that send exactly the bytes a test wrote: a raw HTTP/1.1-over-TLS exchange (for
//! request lines and header spellings hyper's client would not produce: absolute-form targets,
//! no or two `Host` fields, header names in any case), an HTTP/2 client on the `h2` crate (to
//! send `host` beside `:authority`), and a hyper client bound to another loopback address (a
//! second TCP peer).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::material;

/// Every raw exchange gives up after this long.
const DEADLINE: Duration = Duration::from_secs(10);

pub(crate) type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS connection to the gateway at `addr` (certificate for `localhost`) offering `alpn`.
pub(crate) async fn tls(addr: SocketAddr, alpn: &[u8]) -> Tls {
    let mut config = super::client_tls_config(&material().cert_pem);
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
        .await
        .expect("TLS handshake in time")
        .unwrap()
}

/// One response as read off the wire.
#[derive(Debug)]
pub(crate) struct RawReply {
    pub(crate) status: u16,
    /// The status line and header fields, as sent.
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

impl RawReply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name` (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Opens a TLS connection (ALPN `http/1.1`), writes `request` as it is and reads one response.
pub(crate) async fn exchange(addr: SocketAddr, request: &str) -> RawReply {
    let mut stream = tls(addr, b"http/1.1").await;
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    read_response(&mut stream).await
}

/// Reads one HTTP/1.1 response (head, then a `Content-Length`, chunked or read-to-close body).
pub(crate) async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> RawReply {
    tokio::time::timeout(DEADLINE, read_response_inner(stream))
        .await
        .expect("a whole response within 10 s")
}

async fn read_response_inner<S: AsyncRead + Unpin>(stream: &mut S) -> RawReply {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 64 * 1024, "response head too long");
        let n = stream.read(&mut byte).await.unwrap_or(0);
        assert!(
            n == 1,
            "connection closed before a response head; got {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let mut reply = RawReply {
        status,
        head,
        body: Vec::new(),
    };
    let bodiless = status == 101 || status == 204 || status == 304 || (100..200).contains(&status);
    if bodiless {
        return reply;
    }
    if let Some(len) = reply.header("content-length") {
        let len: usize = len.parse().unwrap();
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.unwrap();
        reply.body = body;
    } else if reply
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        reply.body = read_chunked(stream).await;
    } else {
        let _ = stream.read_to_end(&mut reply.body).await;
    }
    reply
}

async fn read_chunked<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line = read_line(stream).await;
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            // Trailers (none expected) up to the empty line.
            while !read_line(stream).await.is_empty() {}
            return body;
        }
        let mut chunk = vec![0u8; size];
        stream.read_exact(&mut chunk).await.unwrap();
        body.extend_from_slice(&chunk);
        assert!(read_line(stream).await.is_empty(), "CRLF after a chunk");
    }
}

async fn read_line<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).unwrap()
}

/// An HTTP/2 connection (TLS, ALPN `h2`) driven by the `h2` crate, which sends pseudo-headers
/// and header fields exactly as given.
pub(crate) async fn h2_connect(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let stream = tls(addr, b"h2").await;
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "the gateway negotiates h2"
    );
    let (send, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// Sends a bodiless `GET` for `uri` (its authority becomes `:authority`) with `headers` and
/// returns the status and the body.
pub(crate) async fn h2_get(
    send: &mut h2::client::SendRequest<Bytes>,
    uri: &str,
    headers: &[(&str, &str)],
) -> (u16, Bytes) {
    let mut req = Request::get(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(()).unwrap();
    let exchange = async {
        let ready = send.clone().ready().await.unwrap();
        *send = ready;
        let (response, _) = send.send_request(req, true).unwrap();
        let response = response.await.unwrap();
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        (status, Bytes::from(data))
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("an HTTP/2 answer within 10 s")
}

/// A hyper client (HTTP/1.1 over TLS, trusting the test certificate) whose connections leave
/// from `local` (e.g. 127.0.0.2), so that the gateway sees another TCP peer.
pub(crate) fn client_from(
    local: IpAddr,
) -> Client<hyper_rustls::HttpsConnector<HttpConnector>, BoxBody<Bytes, hyper::Error>> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_local_address(Some(local));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(super::client_tls_config(&material().cert_pem))
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The values of `name` in `headers`, as strings.
pub(crate) fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}
