//! JWT verification with a key set and a `Validation` (SPEC §2).
//!
//! The header is checked before any signature work: the algorithm must be the configured one
//! (so never `none`, never HMAC with a public key), `kid` must name one of our keys, and `jwk`,
//! `jku`, `x5u`, `x5c` are refused outright. Then the signature and the registered claims.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Validation};
use serde::de::DeserializeOwned;

use super::{JwtError, KeySet};

/// Verifies `token` with `keys` and `validation` and returns its claims.
pub fn verify<T: DeserializeOwned>(
    keys: &KeySet,
    validation: &Validation,
    token: &str,
) -> Result<T, JwtError> {
    let header = decode_header(token).map_err(|_| JwtError::Malformed)?;
    if header.alg != keys.algorithm {
        return Err(JwtError::Algorithm);
    }
    if header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() || header.x5c.is_some()
    {
        return Err(JwtError::ForbiddenHeader);
    }
    let kid = header.kid.ok_or(JwtError::UnknownKid)?;
    let key = keys.verifying(&kid).ok_or(JwtError::UnknownKid)?;
    match decode::<T>(token, key, validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            ErrorKind::ExpiredSignature => JwtError::Expired,
            ErrorKind::InvalidSignature => JwtError::Signature,
            ErrorKind::InvalidAudience => JwtError::Audience,
            ErrorKind::InvalidIssuer => JwtError::Issuer,
            ErrorKind::ImmatureSignature => JwtError::NotYetValid,
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => JwtError::Algorithm,
            _ => JwtError::Malformed,
        }),
    }
}

/// The `Validation` for one audience, built once per snapshot.
pub fn validation(
    keys: &KeySet,
    audience: &str,
    issuer: &str,
    leeway: std::time::Duration,
) -> Validation {
    let mut v = Validation::new(keys.algorithm);
    v.set_audience(&[audience]);
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["exp", "nbf", "iat", "aud", "iss", "sub"]);
    v.validate_exp = true;
    v.validate_nbf = true;
    v.leeway = leeway.as_secs();
    v
}
