//! Certificates and keys as data: the process's one crypto provider, loading a PEM certificate
//! chain with its private key, and the resolver that serves whichever certificate was stored
//! last (so a reload swaps the certificate without rebuilding the TLS acceptor).
//!
//! Nothing here opens a socket: the listener's rustls `ServerConfig` is built in `server/tls.rs`
//! over a [`CertResolver`]; the upstream and Redis clients and the load harness take their
//! provider from here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The process's one crypto provider for TLS (JWTs use the same library through jsonwebtoken).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Loads a PEM certificate chain and its private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, CertError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| CertError::Cert(cert.to_path_buf(), e))?;
    if chain.is_empty() {
        return Err(CertError::NoCert(cert.to_path_buf()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| CertError::Key(key.to_path_buf(), e))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(CertError::Mismatch)
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

/// Why the TLS certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read the certificate chain {}", .0.display())]
    Cert(PathBuf, #[source] rustls::pki_types::pem::Error),
    #[error("{} holds no certificate", .0.display())]
    NoCert(PathBuf),
    #[error("cannot read the private key {} (PEM: PKCS#8, PKCS#1 or SEC1)", .0.display())]
    Key(PathBuf, #[source] rustls::pki_types::pem::Error),
    #[error("the certificate and key cannot be used together")]
    Mismatch(#[source] rustls::Error),
}
