//! `JwtError`: why a token did not verify. No HTTP and no request here; `auth` and `token`
//! map it to their own errors.

/// Why a token was not accepted, in the order the checks run: the header, the signature,
/// then the registered claims.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url segments of JSON, a claim missing or of the wrong type.
    #[error("malformed")]
    Malformed,
    /// `alg` is not the configured algorithm.
    #[error("algorithm not allowed")]
    Algorithm,
    /// The header carries a key or a key's address (`jwk`, `jku`, `x5u`, `x5c`).
    #[error("forbidden header parameter")]
    ForbiddenHeader,
    /// No `kid`, or not one of ours.
    #[error("unknown key id")]
    UnknownKid,
    #[error("bad signature")]
    Signature,
    /// `exp` has passed, leeway included.
    #[error("expired")]
    Expired,
    /// `nbf` is still ahead, leeway included.
    #[error("not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
}
