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

/// The system's root certificates that rustls can use. Unreadable or unparsable ones are
/// skipped; `SSL_CERT_FILE` and `SSL_CERT_DIR` choose where they are read from.
pub fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

/// The warning for a TLS client (`tls`) that has no CA file of its own (`ca`) and so trusts the
/// system's roots, when the system has none (`system_roots()` counts them, asked only then):
/// every handshake would fail. `key` names the setting the warning is about.
pub fn no_roots_notice(
    key: String,
    tls: bool,
    ca: Option<&Path>,
    system_roots: impl FnOnce() -> usize,
) -> Option<crate::config::ConfigIssue> {
    (tls && ca.is_none() && system_roots() == 0).then(|| {
        crate::config::ConfigIssue::new(
            key,
            "TLS with no CA file set, and the system's trust store has no usable root \
             certificate: every handshake will fail (install the CA certificates, e.g. the \
             ca-certificates package, or name a CA file)",
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_client_without_a_ca_file_on_a_system_without_roots_is_noted() {
        let key = || "routes[0].upstreams".to_owned();
        let notice = no_roots_notice(key(), true, None, || 0).unwrap();
        assert_eq!(notice.key, "routes[0].upstreams");
        assert!(
            notice.problem.contains("no usable root"),
            "{}",
            notice.problem
        );
        // Roots there, a CA file of its own, or no TLS at all: nothing to say.
        assert!(no_roots_notice(key(), true, None, || 140).is_none());
        assert!(no_roots_notice(key(), true, Some(Path::new("ca.pem")), || 0).is_none());
        let asked = std::cell::Cell::new(false);
        let count = || {
            asked.set(true);
            0
        };
        assert!(no_roots_notice(key(), false, None, count).is_none());
        assert!(
            !asked.get(),
            "the system's store is read only when it matters"
        );
    }
}
