//! Where the load goes: the `--url` origin and its resolved addresses, the TLS client
//! configuration (`--ca`, `--insecure` or the system roots), the prebuilt request targets, and
//! one new HTTP/1.1 or HTTP/2 connection per call of [`Target::connect`].
//!
//! Knows nothing about tokens or statistics (`vu.rs`), nor about the command line beyond the
//! flag names its errors mention.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use http::uri::{PathAndQuery, Scheme, Uri};
use http::{Method, Request, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::BenchError;

/// How long one TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sent on every request, so the load is recognisable in access logs.
const AGENT: &str = concat!("portcullis-bench/", env!("CARGO_PKG_VERSION"));

/// How the harness verifies the server's certificate.
#[derive(Debug)]
pub(crate) enum Trust<'a> {
    /// The system's root certificates.
    System,
    /// Only the certificates in this PEM file (`--ca`).
    File(&'a Path),
    /// Any certificate; handshake signatures are still checked (`--insecure`).
    Any,
}

/// The server under load: addresses, TLS and the two request targets, fixed for the run.
pub(crate) struct Target {
    /// The URL as given, for messages and the summary.
    url: String,
    addrs: Vec<SocketAddr>,
    /// Name for SNI and certificate verification; `None`: plain TCP.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    http2: bool,
    /// `Host` for HTTP/1.1 (HTTP/2 sends `:authority` from the absolute URI).
    host: HeaderValue,
    call: Uri,
    token: Uri,
}

impl Target {
    /// Parses `url`, resolves its host and builds the TLS client for `trust`.
    ///
    /// `path` (the proxied calls) defaults to the URL's own path and query; `token_path` is the
    /// gateway's token endpoint.
    pub(crate) fn new(
        url: &str,
        path: Option<&str>,
        token_path: &str,
        http2: bool,
        trust: &Trust<'_>,
    ) -> Result<Self, BenchError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| BenchError::UrlSyntax(url.to_owned(), e))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(BenchError::UrlScheme(url.to_owned())),
        };
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty())
            .ok_or_else(|| BenchError::UrlHost(url.to_owned()))?;
        if authority.as_str().contains('@') {
            return Err(BenchError::UrlUserinfo(url.to_owned()));
        }
        // `[::1]` → `::1` for resolution and for the certificate's IP address.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| BenchError::Resolve(url.to_owned(), e))?
            .collect();
        if addrs.is_empty() {
            return Err(BenchError::NoAddress(url.to_owned()));
        }

        let call = match path {
            Some(p) => path_and_query("path", p)?,
            None => uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        };
        let token = path_and_query("token-path", token_path)?;
        let scheme = if https { Scheme::HTTPS } else { Scheme::HTTP };
        let target_uri = |pq: PathAndQuery| -> Result<Uri, BenchError> {
            let mut parts = http::uri::Parts::default();
            if http2 {
                parts.scheme = Some(scheme.clone());
                parts.authority = Some(authority.clone());
            }
            parts.path_and_query = Some(pq);
            Uri::from_parts(parts).map_err(|e| BenchError::UrlParts(url.to_owned(), e))
        };

        let tls = match (https, trust) {
            (true, trust) => {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|_| BenchError::UrlHost(url.to_owned()))?;
                Some((
                    TlsConnector::from(Arc::new(client_config(trust, http2)?)),
                    name,
                ))
            }
            (false, Trust::System) => None,
            (false, _) => return Err(BenchError::TlsOptionWithoutTls),
        };
        Ok(Self {
            url: url.to_owned(),
            addrs,
            tls,
            http2,
            host: HeaderValue::from_str(authority.as_str())
                .map_err(|_| BenchError::UrlHost(url.to_owned()))?,
            call: target_uri(call)?,
            token: target_uri(token)?,
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn http2(&self) -> bool {
        self.http2
    }

    /// A new connection: TCP (no Nagle), TLS when the URL is `https`, then the HTTP handshake.
    pub(crate) async fn connect(&self) -> Result<Sender, ConnectError> {
        let tcp = self.connect_tcp().await?;
        match &self.tls {
            None => self.handshake(TokioIo::new(tcp)).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| ConnectError::Tls(self.url.clone(), e))?;
                let alpn_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                if self.http2 && !alpn_h2 {
                    return Err(ConnectError::NoHttp2(self.url.clone()));
                }
                self.handshake(TokioIo::new(tls)).await
            }
        }
    }

    async fn connect_tcp(&self) -> Result<TcpStream, ConnectError> {
        let mut last = None;
        for &addr in &self.addrs {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => {
                    tcp.set_nodelay(true)
                        .map_err(|e| ConnectError::Tcp(addr, e))?;
                    return Ok(tcp);
                }
                Ok(Err(e)) => last = Some(ConnectError::Tcp(addr, e)),
                Err(_) => last = Some(ConnectError::Timeout(addr)),
            }
        }
        // `new` refuses a host without addresses, so `last` is set here.
        Err(last.unwrap_or(ConnectError::NoAddress))
    }

    async fn handshake<IO>(&self, io: TokioIo<IO>) -> Result<Sender, ConnectError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        if self.http2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(ConnectError::Http)?;
            tokio::spawn(conn);
            Ok(Sender::Http2(sender))
        } else {
            let (sender, conn) = http1::handshake(io).await.map_err(ConnectError::Http)?;
            tokio::spawn(conn);
            Ok(Sender::Http1(sender))
        }
    }

    /// `GET` of the called path with `bearer` (a prebuilt `Bearer …` value).
    pub(crate) fn call(&self, bearer: &HeaderValue) -> Request<Full<Bytes>> {
        let mut req = self.request(Method::GET, &self.call, Bytes::new());
        req.headers_mut().insert(AUTHORIZATION, bearer.clone());
        req
    }

    /// `POST` of a form to the token endpoint.
    pub(crate) fn token(&self, form: Bytes) -> Request<Full<Bytes>> {
        let mut req = self.request(Method::POST, &self.token, form);
        req.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        req
    }

    pub(crate) fn token_uri(&self) -> &Uri {
        &self.token
    }

    fn request(&self, method: Method, uri: &Uri, body: Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri.clone();
        if self.http2 {
            *req.version_mut() = Version::HTTP_2;
        }
        let headers = req.headers_mut();
        headers.reserve(4);
        if !self.http2 {
            headers.insert(HOST, self.host.clone());
        }
        headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
        req
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("addrs", &self.addrs)
            .field("tls", &self.tls.is_some())
            .field("http2", &self.http2)
            .field("call", &self.call)
            .field("token", &self.token)
            .finish()
    }
}

/// `flag`'s value as an origin-form request target.
fn path_and_query(flag: &'static str, value: &str) -> Result<PathAndQuery, BenchError> {
    if !value.starts_with('/') {
        return Err(BenchError::PathNotAbsolute {
            flag,
            value: value.to_owned(),
        });
    }
    value.parse().map_err(|e| BenchError::PathSyntax {
        flag,
        value: value.to_owned(),
        source: e,
    })
}

fn client_config(trust: &Trust<'_>, http2: bool) -> Result<rustls::ClientConfig, BenchError> {
    let provider = portcullis::certs::provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(BenchError::TlsConfig)?;
    let mut config = match trust {
        Trust::Any => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        Trust::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| BenchError::CaRead(path.to_path_buf(), e))?;
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(BenchError::CaEmpty(path.to_path_buf()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::System => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(BenchError::NoSystemRoots);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// `--insecure`: accepts any certificate chain for any name, but still checks that the server
/// signed the handshake with the key of the certificate it sent (through the provider), so the
/// TLS work measured is the same as with verification.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One connection's request half.
#[derive(Debug)]
pub(crate) enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    /// Resolves when the connection can take a request; `Err` once it is closed.
    pub(crate) async fn ready(&mut self) -> Result<(), hyper::Error> {
        match self {
            Self::Http1(s) => s.ready().await,
            Self::Http2(s) => s.ready().await,
        }
    }

    pub(crate) async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        match self {
            Self::Http1(s) => s.send_request(req).await,
            Self::Http2(s) => s.send_request(req).await,
        }
    }
}

/// Why a new connection could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("TCP connection to {0} failed")]
    Tcp(SocketAddr, #[source] std::io::Error),
    #[error("TCP connection to {0} timed out after {CONNECT_TIMEOUT:?}")]
    Timeout(SocketAddr),
    #[error("the host has no address")]
    NoAddress,
    #[error("TLS handshake with {0} failed")]
    Tls(String, #[source] std::io::Error),
    #[error("{0} did not agree to HTTP/2 in the TLS handshake (ALPN); drop --http2")]
    NoHttp2(String),
    #[error("HTTP handshake failed")]
    Http(#[source] hyper::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, path: Option<&str>, http2: bool) -> Result<Target, BenchError> {
        let trust = if url.starts_with("https") {
            Trust::Any
        } else {
            Trust::System
        };
        Target::new(url, path, "/api/oauth2/token", http2, &trust)
    }

    #[test]
    fn builds_origin_form_for_http1_and_absolute_form_for_http2() {
        let t = target("https://127.0.0.1:8443", None, false).unwrap();
        assert_eq!(t.call.to_string(), "/");
        assert_eq!(t.token.to_string(), "/api/oauth2/token");
        assert_eq!(t.host, "127.0.0.1:8443");
        assert_eq!(t.addrs, vec!["127.0.0.1:8443".parse().unwrap()]);

        let t = target("https://127.0.0.1:8443/v1/items?x=1", None, true).unwrap();
        assert_eq!(t.call.to_string(), "https://127.0.0.1:8443/v1/items?x=1");
        let req = t.call(&HeaderValue::from_static("Bearer t"));
        assert_eq!(req.version(), Version::HTTP_2);
        assert!(req.headers().get(HOST).is_none());
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer t");

        let t = target("http://[::1]/ignored", Some("/health"), false).unwrap();
        assert_eq!(t.call.to_string(), "/health");
        assert_eq!(t.addrs, vec!["[::1]:80".parse().unwrap()]);
        assert!(t.tls.is_none());
    }

    #[test]
    fn refuses_bad_input_naming_the_flag() {
        let message = |r: Result<Target, BenchError>| r.unwrap_err().to_string();
        assert!(message(target("ftp://127.0.0.1", None, false)).starts_with("--url"));
        assert!(message(target("127.0.0.1:8443", None, false)).starts_with("--url"));
        assert!(message(target("https://u:p@127.0.0.1", None, false)).starts_with("--url"));
        assert!(message(target("https://127.0.0.1", Some("x"), false)).starts_with("--path"));
        assert!(message(Target::new(
            "https://127.0.0.1",
            None,
            "token",
            false,
            &Trust::Any
        ))
        .starts_with("--token-path"));
        let plain = Target::new("http://127.0.0.1", None, "/t", false, &Trust::Any);
        assert!(message(plain).contains("--insecure"));
        let missing = Path::new("/nonexistent/ca.pem");
        let ca = Target::new(
            "https://127.0.0.1",
            None,
            "/t",
            false,
            &Trust::File(missing),
        );
        assert!(message(ca).starts_with("--ca /nonexistent/ca.pem"));
    }
}
