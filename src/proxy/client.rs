//! The upstream client of a route: HTTP/1.1 over pooled connections that each request drives
//! itself (`http1.rs`; plain TCP or rustls), or HTTP/2 over one multiplexed connection per
//! upstream (h2c for `http://`, ALPN `h2` for `https://`), run as a task of its own.
//!
//! HTTP/2 connects to the target, not to the request URI's authority: RFC 9113 §8.3.1 wants the
//! request's host in `:authority` (and no `host` header), and with `preserve_host` that is the
//! client's host, not the upstream's address.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use super::balance::Target;
use super::error::ClientFailure;
use super::http1::Http1Pool;
use crate::body::Body;
use crate::config::{RouteConfig, UpstreamProtocol};

/// How a route talks to its upstreams.
// One per route, built once per snapshot and never moved: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum UpstreamClient {
    Http1(Http1Pool),
    Http2(H2Connections),
}

/// Why a request to an upstream failed, and whether it failed to connect (then it was never
/// sent, and a bodiless request may be tried on another upstream).
#[derive(Debug)]
pub(super) struct SendError {
    pub(super) connect: bool,
    pub(super) failure: ClientFailure,
}

impl UpstreamClient {
    /// Sends `req` (whose URI carries the upstream's scheme and the `:authority` to send) to
    /// `target`.
    pub(super) async fn send(
        &self,
        target: &Target,
        req: Request<Body>,
    ) -> Result<Response<Body>, SendError> {
        match self {
            Self::Http1(pool) => pool.send(target, req).await,
            Self::Http2(h2) => Ok(h2.send_boxed(target, req).await?.map(BodyExt::boxed)),
        }
    }
}

/// Builds `workers` clients for `route` and its `targets` upstreams, one per request-path
/// worker (each keeps its own connections, driven on that worker's thread), trusting
/// `upstream_ca` or else the system's roots.
pub(super) fn build(
    route: &RouteConfig,
    workers: usize,
    targets: usize,
) -> Result<Vec<UpstreamClient>, ClientError> {
    // Loading the system's roots takes milliseconds: only when an upstream needs them, and
    // once for all the workers.
    let https = route
        .upstreams
        .iter()
        .any(|u| u.scheme_str() == Some("https"));
    let roots = if https || route.upstream_ca.is_some() {
        roots(route.upstream_ca.as_deref())?
    } else {
        rustls::RootCertStore::empty()
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(crate::certs::provider())
        .with_safe_default_protocol_versions()
        .map_err(ClientError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let one = |tls: &rustls::ClientConfig| match route.upstream_protocol {
        UpstreamProtocol::Http2 => UpstreamClient::Http2(H2Connections {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls.clone())),
            connect_timeout: route.connect_timeout,
            live: Mutex::default(),
        }),
        UpstreamProtocol::Http1 => {
            UpstreamClient::Http1(Http1Pool::new(connector(route, tls.clone()), targets))
        }
    };
    if route.upstream_protocol == UpstreamProtocol::Http2 {
        tls.alpn_protocols = vec![b"h2".to_vec()];
    }
    Ok((0..workers.max(1)).map(|_| one(&tls)).collect())
}

/// The HTTP/1.1 connector: plain TCP or rustls by the URI's scheme.
pub(super) fn connector(
    route: &RouteConfig,
    tls: rustls::ClientConfig,
) -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(route.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

/// One HTTP/2 connection per upstream, opened on first use and replaced once it closes.
pub(super) struct H2Connections {
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
    /// By `scheme://authority`. A `std` mutex: held only to clone or store a handle.
    live: Mutex<HashMap<String, SendRequest<Body>>>,
}

impl std::fmt::Debug for H2Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Connections")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl H2Connections {
    /// `send`, boxed: its connect-and-handshake state is ≈ 10 KiB, and unboxed it would be
    /// part of every request's future, HTTP/1 ones too, copied into the request's box and kept
    /// for the request's lifetime.
    fn send_boxed<'a>(
        &'a self,
        target: &'a Target,
        req: Request<Body>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Incoming>, SendError>> + Send + 'a>> {
        Box::pin(self.send(target, req))
    }

    async fn send(
        &self,
        target: &Target,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, SendError> {
        let key = format!("{}://{}", target.scheme, target.authority);
        let cached = self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .filter(|s| !s.is_closed())
            .cloned();
        let mut sender = match cached {
            Some(sender) => sender,
            None => {
                let sender = self.connect(target).await.map_err(|failure| SendError {
                    connect: true,
                    failure,
                })?;
                self.live
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key, sender.clone());
                sender
            }
        };
        let upstream = |e: hyper::Error| SendError {
            connect: false,
            failure: e.into(),
        };
        sender.ready().await.map_err(upstream)?;
        sender.send_request(req).await.map_err(upstream)
    }

    async fn connect(&self, target: &Target) -> Result<SendRequest<Body>, ClientFailure> {
        let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
        let addr = (
            target.authority.host().trim_matches(['[', ']']),
            target.port(),
        );
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out())??;
        let _ = tcp.set_nodelay(true);
        let builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .clone();
        if target.scheme == http::uri::Scheme::HTTPS {
            let name =
                ServerName::try_from(target.authority.host().trim_matches(['[', ']']).to_owned())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = tokio::time::timeout(self.connect_timeout, self.tls.connect(name, tcp))
                .await
                .map_err(|_| timed_out())??;
            let (sender, conn) = builder.handshake(TokioIo::new(tls)).await?;
            tokio::spawn(drive(conn));
            Ok(sender)
        } else {
            let (sender, conn) = builder.handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(drive(conn));
            Ok(sender)
        }
    }
}

/// Runs an upstream HTTP/2 connection until it closes.
async fn drive(conn: impl std::future::Future<Output = Result<(), hyper::Error>>) {
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
    }
}

fn roots(ca: Option<&Path>) -> Result<rustls::RootCertStore, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ClientError::Ca(path.to_path_buf(), e))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ClientError::NoCa(path.to_path_buf()));
            }
        }
        // Unreadable system certificates are skipped; an empty store just fails to verify (and
        // `Snapshot::build` warns about it).
        None => roots = crate::certs::system_roots(),
    }
    Ok(roots)
}

/// Why a route's upstream client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the CA file {}", .0.display())]
    Ca(PathBuf, #[source] rustls::pki_types::pem::Error),
    #[error("{} holds no usable CA certificate", .0.display())]
    NoCa(PathBuf),
    #[error("TLS client configuration")]
    Tls(#[source] rustls::Error),
    #[error("no usable upstream URL")]
    NoUpstream,
}
