//! The upstream client of a route: pooled keep-alive connections over plain TCP or rustls,
//! HTTP/1.1 or HTTP/2 (h2c for `http://`, ALPN for `https://`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::body::Body;
use crate::config::{RouteConfig, UpstreamProtocol};

pub(super) type UpstreamClient = Client<HttpsConnector<HttpConnector>, Body>;

/// Builds the client for `route`, trusting `upstream_ca` or else the system's roots.
pub(super) fn build(route: &RouteConfig) -> Result<UpstreamClient, ClientError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(route.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));

    // Loading the system's roots takes milliseconds: only when an upstream needs them.
    let https = route
        .upstreams
        .iter()
        .any(|u| u.scheme_str() == Some("https"));
    let roots = if https || route.upstream_ca.is_some() {
        roots(route.upstream_ca.as_deref())?
    } else {
        rustls::RootCertStore::empty()
    };
    let tls = rustls::ClientConfig::builder_with_provider(crate::server::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(ClientError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let mut client = Client::builder(TokioExecutor::new());
    client
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256);
    let connector = match route.upstream_protocol {
        UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
        UpstreamProtocol::Http2 => {
            client.http2_only(true);
            builder.enable_http2().wrap_connector(http)
        }
    };
    Ok(client.build(connector))
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
        None => {
            // Unreadable system certificates are skipped; an empty store just fails to verify.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
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
