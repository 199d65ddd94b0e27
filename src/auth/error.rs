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

impl AuthError {
    /// The `reason` label of `portcullis_auth_failures_total` (SPEC §4.4).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Expired => "expired",
            Self::InsufficientScope => "insufficient_role",
            Self::Invalid(r) => match r {
                InvalidReason::Signature | InvalidReason::Algorithm => "invalid_signature",
                InvalidReason::Audience => "wrong_audience",
                InvalidReason::Revoked => "revoked",
                InvalidReason::UnknownKid => "unknown_kid",
                InvalidReason::Malformed
                | InvalidReason::ForbiddenHeader
                | InvalidReason::Issuer
                | InvalidReason::NotYetValid => "malformed",
            },
        }
    }
}

/// Why a token is invalid; [`AuthError::reason`] names the metric label of each.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_reason_label_of_spec_4_4() {
        use InvalidReason as R;
        let labels = [
            (AuthError::Missing, "missing"),
            (AuthError::Expired, "expired"),
            (AuthError::InsufficientScope, "insufficient_role"),
            (AuthError::Invalid(R::Signature), "invalid_signature"),
            (AuthError::Invalid(R::Algorithm), "invalid_signature"),
            (AuthError::Invalid(R::Audience), "wrong_audience"),
            (AuthError::Invalid(R::Revoked), "revoked"),
            (AuthError::Invalid(R::UnknownKid), "unknown_kid"),
            (AuthError::Invalid(R::Malformed), "malformed"),
            (AuthError::Invalid(R::ForbiddenHeader), "malformed"),
            (AuthError::Invalid(R::Issuer), "malformed"),
            (AuthError::Invalid(R::NotYetValid), "malformed"),
        ];
        for (e, label) in labels {
            assert_eq!(e.reason(), label, "{e:?}");
        }
    }
}
