//! `ProxyError`: why forwarding failed, by source side (as pingora's `ErrorSource`): the
//! upstream (`502`/`504`) or the client, whose request body turned out malformed (`400`).

/// A failure while forwarding.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Could not connect (refused, unreachable, connect timeout): `502`.
    #[error("upstream connect failed")]
    Connect(#[source] ClientFailure),
    /// Connected, but the exchange failed before response headers: `502`.
    #[error("upstream request failed")]
    Upstream(#[source] ClientFailure),
    /// The client's request body failed (bad chunking, a reset stream) while it was being
    /// forwarded: the client's error, `400`, and not an upstream failure.
    #[error("the client's request body is malformed")]
    Downstream(#[source] ClientFailure),
    /// The upstream URI could not be built from the request target: `400`. The path was
    /// already made canonical, so this is a request target hyper accepted but `http::Uri` does
    /// not.
    #[error("request target cannot be forwarded")]
    Target(#[source] http::Error),
    /// No response headers within the route's `timeout`: `504`.
    #[error("upstream response timed out")]
    Timeout,
}

impl ProxyError {
    /// The `kind` label of `portcullis_upstream_errors_total`; `None` for the client's errors.
    pub fn upstream_kind(&self) -> Option<&'static str> {
        match self {
            Self::Connect(_) => Some("connect"),
            Self::Timeout => Some("timeout"),
            Self::Upstream(_) => Some("other"),
            Self::Downstream(_) | Self::Target(_) => None,
        }
    }
}

/// What the HTTP client reported.
#[derive(Debug, thiserror::Error)]
pub enum ClientFailure {
    /// Connecting (TCP, TLS) failed.
    #[error(transparent)]
    Connect(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
