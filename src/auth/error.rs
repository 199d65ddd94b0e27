//! `AuthError`: why a request to a protected route is refused. No HTTP here; `reject.rs` maps it.

use crate::jwt::JwtError;

/// Why a bearer token was not accepted for a protected route.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(InvalidReason),
    #[error("token lacks a required role")]
    InsufficientScope,
}

/// Why a token is invalid. The names follow the `reason` label of
/// `portcullis_auth_failures_total` (SPEC §4.4).
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
pub enum InvalidReason {
    #[error("malformed")]
    Malformed,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("forbidden header parameter")]
    ForbiddenHeader,
    #[error("unknown key id")]
    UnknownKid,
    #[error("bad signature")]
    Signature,
    #[error("wrong audience")]
    Audience,
    #[error("wrong issuer")]
    Issuer,
    #[error("not yet valid")]
    NotYetValid,
    #[error("session revoked")]
    Revoked,
}

impl InvalidReason {
    /// The `error_description` a client sees. Says what is wrong, never echoes the token.
    pub fn description(self) -> &'static str {
        match self {
            Self::Malformed => "The access token is malformed",
            Self::Algorithm => "The access token is signed with an algorithm that is not accepted",
            Self::ForbiddenHeader => "The access token header carries a forbidden parameter",
            Self::UnknownKid => "The access token is signed with an unknown key",
            Self::Signature => "The access token signature is invalid",
            Self::Audience => "The token is not an access token",
            Self::Issuer => "The access token has the wrong issuer",
            Self::NotYetValid => "The access token is not valid yet",
            Self::Revoked => "The access token has been revoked",
        }
    }
}

impl From<JwtError> for AuthError {
    fn from(e: JwtError) -> Self {
        let invalid = AuthError::Invalid;
        match e {
            JwtError::Expired => AuthError::Expired,
            JwtError::Malformed => invalid(InvalidReason::Malformed),
            JwtError::Algorithm => invalid(InvalidReason::Algorithm),
            JwtError::ForbiddenHeader => invalid(InvalidReason::ForbiddenHeader),
            JwtError::UnknownKid => invalid(InvalidReason::UnknownKid),
            JwtError::Signature => invalid(InvalidReason::Signature),
            JwtError::NotYetValid => invalid(InvalidReason::NotYetValid),
            JwtError::Issuer => invalid(InvalidReason::Issuer),
            JwtError::Audience => invalid(InvalidReason::Audience),
        }
    }
}
