//! TLS setup: a fallible `ServerConfig` build (aws-lc-rs, TLS 1.2 and 1.3, ALPN) and a
//! certificate resolver backed by `ArcSwap<CertifiedKey>`, so a reload can swap the certificate
//! without rebuilding the acceptor.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// The process's one crypto provider for TLS (JWTs use the same library through jsonwebtoken).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Loads a PEM certificate chain and its private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert(cert.to_path_buf(), e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(cert.to_path_buf()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key(key.to_path_buf(), e))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(TlsError::Mismatch)
}

/// Serves whatever certificate was stored last.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Self {
            current: ArcSwap::new(key),
        }
    }

    pub fn store(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// A rustls server config over `resolver`, with ALPN `h2` (when `http2`) and `http/1.1`.
pub fn server_config(resolver: Arc<CertResolver>, http2: bool) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Mismatch)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    // The server's order of cipher suites wins: the strongest both sides support, whatever a
    // client lists first.
    config.ignore_client_order = true;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// Why the TLS certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain {}", .0.display())]
    Cert(PathBuf, #[source] rustls::pki_types::pem::Error),
    #[error("{} holds no certificate", .0.display())]
    NoCert(PathBuf),
    #[error("cannot read the private key {} (PEM: PKCS#8, PKCS#1 or SEC1)", .0.display())]
    Key(PathBuf, #[source] rustls::pki_types::pem::Error),
    #[error("the certificate and key cannot be used together")]
    Mismatch(#[source] rustls::Error),
}
