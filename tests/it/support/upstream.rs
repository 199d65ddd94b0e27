//! `MockUpstream`: a real HTTP/1.1 server on 127.0.0.1:0 that records what the gateway sent
//! and answers by path:
//!
//! - `/download/N`: N bytes of a fixed pattern, streamed in 64 KiB chunks;
//! - `/upload`: reads the body and answers `{"len": n, "sha256": hex}`;
//! - `/slow`: answers after 3 s;
//! - `/upstream-401`: a 401 with the upstream's own challenge;
//! - anything else: `200 ok`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// What the upstream received.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) uri: http::Uri,
    pub(crate) headers: HeaderMap,
}

pub(crate) struct MockUpstream {
    pub(crate) addr: SocketAddr,
    pub(crate) received: Arc<Mutex<Vec<Received>>>,
}

impl MockUpstream {
    pub(crate) async fn start() -> Self {
        Self::serve(None).await
    }

    /// An upstream speaking HTTPS with `cert_pem` / `key_pem`.
    /// `start_tls` with a certificate for `localhost` from a CA of its own; also returns the
    /// CA's certificate (PEM), which the gateway must trust to reach it.
    pub(crate) async fn start_tls_with_own_ca() -> (Self, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let upstream = Self::start_tls(&leaf.pem(), &leaf_key.serialize_pem()).await;
        (upstream, ca.pem())
    }

    pub(crate) async fn start_tls(cert_pem: &str, key_pem: &str) -> Self {
        use rustls::pki_types::pem::PemObject;
        let certs =
            vec![rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Self::serve(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(answer(req, &log).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = match tls {
                        None => {
                            builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .await
                        }
                        Some(tls) => {
                            let Ok(stream) = tls.accept(stream).await else {
                                return;
                            };
                            builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .await
                        }
                    };
                });
            }
        });
        Self { addr, received }
    }

    /// The last request the upstream received.
    pub(crate) fn last(&self) -> Received {
        self.received
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream got a request")
    }

    pub(crate) fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

/// `101 Switching Protocols`, then echoes every byte back.
fn echo_upgrade(mut req: Request<Incoming>) -> Response<BoxBody<Bytes, hyper::Error>> {
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
        let _ = tokio::io::copy(&mut reader, &mut writer).await;
    });
    Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(super::full(Bytes::new()))
        .unwrap()
}

async fn answer(
    req: Request<Incoming>,
    log: &Mutex<Vec<Received>>,
) -> Response<BoxBody<Bytes, hyper::Error>> {
    log.lock().unwrap().push(Received {
        uri: req.uri().clone(),
        headers: req.headers().clone(),
    });
    let path = req.uri().path().to_owned();
    if path == "/ws" && req.headers().contains_key("upgrade") {
        return echo_upgrade(req);
    }
    if let Some(n) = path.strip_prefix("/zeros/") {
        return Response::new(zeros_body(n.parse().unwrap()));
    }
    if path == "/count" {
        let mut body = req.into_body();
        let mut len = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                len += data.len() as u64;
            }
        }
        return Response::new(super::full(len.to_string()));
    }
    if path == "/trailers" {
        let frames = vec![
            Ok::<_, hyper::Error>(Frame::data(Bytes::from_static(b"streamed reply"))),
            Ok(Frame::trailers({
                let mut t = HeaderMap::new();
                t.insert("grpc-status", "0".parse().unwrap());
                t.insert("grpc-message", "fine".parse().unwrap());
                t
            })),
        ];
        return Response::builder()
            .header("content-type", "application/grpc")
            .body(StreamBody::new(stream::iter(frames)).boxed())
            .unwrap();
    }
    if let Some(n) = path.strip_prefix("/download/") {
        let total: usize = n.parse().unwrap();
        return Response::new(pattern_body(total));
    }
    match path.as_str() {
        "/upload" => {
            let mut body = req.into_body();
            let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
            let mut len = 0usize;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    len += data.len();
                    ctx.update(&data);
                }
            }
            let json = serde_json::json!({"len": len, "sha256": hex(ctx.finish().as_ref())});
            Response::new(super::full(json.to_string()))
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Response::new(super::full("slow"))
        }
        "/upstream-401" => Response::builder()
            .status(401)
            .header("www-authenticate", "Basic realm=\"upstream\"")
            .body(super::full("upstream says no"))
            .unwrap(),
        _ => Response::builder()
            .header("connection", "x-hop")
            .header("x-hop", "must not reach the client")
            .body(super::full("ok"))
            .unwrap(),
    }
}

/// `total` bytes of `i % 251`, streamed in 64 KiB chunks.
pub(crate) fn pattern_body(total: usize) -> BoxBody<Bytes, hyper::Error> {
    const CHUNK: usize = 64 * 1024;
    let chunks = (0..total.div_ceil(CHUNK)).map(move |i| {
        let start = i * CHUNK;
        let end = (start + CHUNK).min(total);
        let data: Vec<u8> = (start..end).map(|j| (j % 251) as u8).collect();
        Ok::<_, hyper::Error>(Frame::data(Bytes::from(data)))
    });
    StreamBody::new(stream::iter(chunks)).boxed()
}

/// `total` zero bytes as 64 KiB chunks of one shared buffer (no per-byte work).
pub(crate) fn zeros_body(total: u64) -> BoxBody<Bytes, hyper::Error> {
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let chunk = ZEROS.len() as u64;
    let chunks = (0..total.div_ceil(chunk)).map(move |i| {
        let len = (total - i * chunk).min(chunk) as usize;
        Ok::<_, hyper::Error>(Frame::data(Bytes::from_static(&ZEROS[..len])))
    });
    StreamBody::new(stream::iter(chunks)).boxed()
}

pub(crate) fn pattern_sha256(total: usize) -> String {
    let data: Vec<u8> = (0..total).map(|j| (j % 251) as u8).collect();
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &data).as_ref())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
