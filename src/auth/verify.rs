//! JWT verification with the snapshot's keys and `Validation`s (SPEC §2).
//!
//! The header is checked before any signature work: the algorithm must be the configured one
//! (so never `none`, never HMAC with a public key), `kid` must name one of our keys, and `jwk`,
//! `jku`, `x5u`, `x5c` are refused outright. Then the signature and the registered claims.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Validation};
use serde::de::DeserializeOwned;

use super::{AuthError, InvalidReason};
use crate::token::keys::KeySet;

/// Verifies `token` with `keys` and `validation` and returns its claims.
pub fn verify<T: DeserializeOwned>(
    keys: &KeySet,
    validation: &Validation,
    token: &str,
) -> Result<T, AuthError> {
    let invalid = AuthError::Invalid;
    let header = decode_header(token).map_err(|_| invalid(InvalidReason::Malformed))?;
    if header.alg != keys.algorithm {
        return Err(invalid(InvalidReason::Algorithm));
    }
    if header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() || header.x5c.is_some()
    {
        return Err(invalid(InvalidReason::ForbiddenHeader));
    }
    let kid = header.kid.ok_or(invalid(InvalidReason::UnknownKid))?;
    let key = keys
        .verifying(&kid)
        .ok_or(invalid(InvalidReason::UnknownKid))?;
    match decode::<T>(token, key, validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::InvalidSignature => invalid(InvalidReason::Signature),
            ErrorKind::InvalidAudience => invalid(InvalidReason::Audience),
            ErrorKind::InvalidIssuer => invalid(InvalidReason::Issuer),
            ErrorKind::ImmatureSignature => invalid(InvalidReason::NotYetValid),
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                invalid(InvalidReason::Algorithm)
            }
            _ => invalid(InvalidReason::Malformed),
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
