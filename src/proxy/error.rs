//! `ProxyError`: why forwarding to the upstream failed. The source side is always the upstream
//! here; downstream (client) failures surface as hyper connection errors, not as responses.

/// A failure talking to the upstream.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Could not connect (refused, unreachable, connect timeout): `502`.
    #[error("upstream connect failed")]
    Connect(#[source] hyper_util::client::legacy::Error),
    /// Connected, but the exchange failed before response headers: `502`.
    #[error("upstream request failed")]
    Upstream(#[source] hyper_util::client::legacy::Error),
    /// The upstream URI could not be built from the request target: `400`. The path was
    /// already checked, so this is a request target hyper accepted but `http::Uri` does not.
    #[error("request target cannot be forwarded")]
    Target(#[source] http::Error),
    /// No response headers within the route's `timeout`: `504`.
    #[error("upstream response timed out")]
    Timeout,
}
