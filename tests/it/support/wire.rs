//! Raw clients for the hostile-client tests: plain TCP, TLS (tokio-rustls, trusting only the
//! test certificate, with the ALPN list the test chooses), an HTTP/1.1 response reader that
//! needs no well-behaved peer, and a timer for "the gateway closed the connection".
//!
//! Nothing here retries or hides an error: a reset, an EOF before the response or a silent
//! gateway is reported to the test as it happened, with a bounded wait.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{client_tls_config, material};

/// A client TLS connection.
pub(crate) type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// The longest any single step of a raw exchange may take before the test fails.
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// A TCP connection to `addr`.
pub(crate) async fn tcp(addr: SocketAddr) -> TcpStream {
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr))
        .await
        .expect("connect within the step timeout")
        .expect("the gateway accepts TCP connections");
    tcp.set_nodelay(true).unwrap();
    tcp
}

/// A TLS connection to `addr` (server name `localhost`) offering `alpn`, e.g. `&["h2"]`.
pub(crate) async fn tls(addr: SocketAddr, alpn: &[&str]) -> Tls {
    let mut config = client_tls_config(&material().cert_pem);
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    tls_with(addr, config).await
}

/// A TLS connection to `addr` with a caller-made client configuration.
pub(crate) async fn tls_with(addr: SocketAddr, config: rustls::ClientConfig) -> Tls {
    let tcp = tcp(addr).await;
    tls_over(tcp, config)
        .await
        .expect("the TLS handshake completes")
}

/// A TLS handshake (server name `localhost`) over an open TCP connection, bounded by `STEP`.
pub(crate) async fn tls_over(tcp: TcpStream, config: rustls::ClientConfig) -> io::Result<Tls> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(STEP, connector.connect(name, tcp))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// The negotiated ALPN protocol of `tls`, as text.
pub(crate) fn alpn(tls: &Tls) -> Option<String> {
    tls.get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

/// Writes all of `parts` in order and flushes, within `limit`.
pub(crate) async fn write_parts<S, I>(io: &mut S, parts: I, limit: Duration) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    write_paced(io, parts, Duration::ZERO, limit).await
}

/// Writes and flushes each of `parts` in order with `pause` after each, within `limit`: an
/// upload at the pace of a real network, still writing when the gateway answers.
pub(crate) async fn write_paced<S, I>(
    io: &mut S,
    parts: I,
    pause: Duration,
    limit: Duration,
) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let write = async {
        for part in parts {
            io.write_all(part.as_ref()).await?;
            if !pause.is_zero() {
                io.flush().await?;
                tokio::time::sleep(pause).await;
            }
        }
        io.flush().await
    };
    tokio::time::timeout(limit, write)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the writes did not complete"))?
}

/// `len` bytes as `chunk`-sized pieces of zeros, for request bodies.
pub(crate) fn zero_chunks(len: usize, chunk: usize) -> impl Iterator<Item = &'static [u8]> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let chunk = chunk.min(ZEROS.len());
    (0..len.div_ceil(chunk)).map(move |i| &ZEROS[..(len - i * chunk).min(chunk)])
}

/// `len` bytes of zeros in the HTTP/1.1 chunked coding (64 KiB chunks and the last chunk).
pub(crate) fn chunked_zeros(len: usize) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = zero_chunks(len, 64 * 1024)
        .map(|piece| {
            let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
            framed.extend_from_slice(piece);
            framed.extend_from_slice(b"\r\n");
            framed
        })
        .collect();
    parts.push(b"0\r\n\r\n".to_vec());
    parts
}

/// One HTTP/1.x response as read off the wire.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    /// The status line and header lines, as received.
    pub(crate) head: String,
    /// Header names lower-cased, in order.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the response carries `Connection: close`.
    pub(crate) fn closes(&self) -> bool {
        self.headers.iter().any(|(n, v)| {
            n == "connection" && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
        })
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: not JSON: {}\n{}",
                String::from_utf8_lossy(&self.body),
                self.head
            )
        })
    }
}

/// Reads one HTTP/1.x response (`Content-Length`, chunked, or until EOF) within `STEP`.
/// Interim `1xx` responses other than `101` are skipped.
pub(crate) async fn read_response<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<RawResponse> {
    tokio::time::timeout(STEP, async {
        loop {
            let response = read_one(io).await?;
            if (100..200).contains(&response.status) && response.status != 101 {
                continue;
            }
            return Ok(response);
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no complete response"))?
}

async fn read_one<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<RawResponse> {
    let head = read_head(io).await?;
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("not an HTTP/1.x status line: {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let body = if status == 101 || status == 204 || status == 304 {
        Vec::new()
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(io).await?
    } else if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(format!("content-length {len}")))?;
        let mut body = vec![0; len];
        io.read_exact(&mut body).await?;
        body
    } else {
        let mut body = Vec::new();
        io.read_to_end(&mut body).await?;
        body
    };
    Ok(RawResponse {
        status,
        head: text,
        headers,
        body,
    })
}

/// The bytes up to and including the blank line that ends a response head.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            return Err(bad("response head over 64 KiB".to_owned()));
        }
        if io.read(&mut byte).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "EOF after {} bytes of response head: {:?}",
                    head.len(),
                    String::from_utf8_lossy(&head)
                ),
            ));
        }
        head.push(byte[0]);
    }
    Ok(head)
}

async fn read_line<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        io.read_exact(&mut byte).await?;
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

async fn read_chunked<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(io).await?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| bad(format!("chunk size {line:?}")))?;
        if size == 0 {
            while !read_line(io).await?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        io.read_exact(&mut body[start..]).await?;
        read_line(io).await?;
    }
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// What a connection delivered while the test waited for the gateway to close it.
#[derive(Debug)]
pub(crate) struct Drained {
    /// What the gateway sent (e.g. a `408`, or HTTP/2 frames).
    pub(crate) received: Vec<u8>,
    /// When the gateway closed the connection (EOF or a reset), from the start of the wait;
    /// `None`: still open at the end of the wait.
    pub(crate) closed_after: Option<Duration>,
}

/// Reads (and keeps) whatever arrives until the peer closes the connection or `limit` passes.
pub(crate) async fn drain<S: AsyncRead + Unpin>(io: &mut S, limit: Duration) -> Drained {
    let start = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Some(left) = limit.checked_sub(start.elapsed()) else {
            return Drained {
                received,
                closed_after: None,
            };
        };
        match tokio::time::timeout(left, io.read(&mut buf)).await {
            Err(_) => {
                return Drained {
                    received,
                    closed_after: None,
                }
            }
            Ok(Ok(0) | Err(_)) => {
                return Drained {
                    received,
                    closed_after: Some(start.elapsed()),
                }
            }
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// When the peer closed the connection, within `limit`; `None` if it is still open.
pub(crate) async fn closed_within<S: AsyncRead + Unpin>(
    io: &mut S,
    limit: Duration,
) -> Option<Duration> {
    drain(io, limit).await.closed_after
}
