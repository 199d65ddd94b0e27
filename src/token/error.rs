//! `TokenError`, why a request to one of the gateway's own endpoints failed, and `OAuthError`,
//! the RFC 6749 §5.2 error codes of the token endpoint. No HTTP here: `reject.rs` maps both.

use crate::auth::AuthError;
use crate::login::Busy;
use crate::session::StoreError;

use super::issue::MintError;

/// Why a token, logout, revoke, introspect, JWKS or metadata request failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The client's request or grant (RFC 6749 §5.2).
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// The bearer token of a logout or introspection request.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The method is not one of these (the `Allow` header's value).
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// The password-hashing pool is full.
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Our fault: a key that could not sign.
    #[error(transparent)]
    Mint(#[from] MintError),
    /// Our fault: the blocking task that signs panicked or was cancelled.
    #[error("the signing task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// An error of the token endpoint, with the `error_description` the client sees.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    #[error("request body too large")]
    BodyTooLarge,
    /// The body did not arrive within `server.header_read_timeout` of the head.
    #[error("request body timed out")]
    BodyTimeout,
    /// The user name or client address is locked out for `retry_after` more seconds.
    #[error("too many failed logins")]
    TooManyFailures { retry_after: u64 },
    /// Too many logins in flight from this connection or client address, or no failure slot
    /// freed in time: retry in a second.
    #[error("too many logins in flight")]
    TooManyLogins,
}

impl OAuthError {
    pub const BAD_CREDENTIALS: Self = Self::InvalidGrant("The user name or password is incorrect");
    pub const BAD_REFRESH: Self =
        Self::InvalidGrant("The refresh token is invalid, expired or revoked");
}
