//! `OAuthError`: the RFC 6749 §5.2 error codes of the token endpoint. No HTTP here.

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
