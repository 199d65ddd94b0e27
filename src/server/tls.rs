//! The listener's TLS configuration: a fallible rustls `ServerConfig` build (aws-lc-rs, TLS 1.2
//! and 1.3, ALPN) over the certificate resolver of `crate::certs`, which a reload feeds.

use std::sync::Arc;

use rustls::ServerConfig;

use crate::certs::{self, CertResolver};

/// A rustls server config over `resolver`, with ALPN `h2` (when `http2`) and `http/1.1`.
pub fn server_config(resolver: Arc<CertResolver>, http2: bool) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(certs::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Versions)?
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

/// Why the listener's TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the crypto provider cannot serve TLS 1.2 and 1.3")]
    Versions(#[source] rustls::Error),
}
