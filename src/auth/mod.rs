//! Authentication and authorization of proxied requests (SPEC §2).
//!
//! `authenticate` turns the request's headers into an `Identity` or an `AuthError`: bearer
//! parsing (`bearer.rs`), signature and claims (`crate::jwt::verify`, skipped for a token in
//! the verified-token cache, `cache.rs`), then the revocation deny list.
//! `authorize` checks the route's roles. Neither knows about HTTP statuses.

mod bearer;
mod cache;
mod error;

use http::HeaderMap;

pub use bearer::{bearer_token, MAX_TOKEN_LEN};
pub use cache::TokenCache;
pub use error::{AuthError, InvalidReason};

use crate::jwt::{self, AccessClaims};
use crate::session::DenyList;
use crate::state::Snapshot;

/// Who a request is from, as its verified access token says.
#[derive(Clone, Debug)]
pub struct Identity {
    pub user: String,
    pub roles: Vec<String>,
    pub sid: String,
    /// Expiry of the access token, Unix seconds.
    pub exp: u64,
}

/// Verifies the request's bearer token at `now` (Unix seconds) and that its session is not
/// revoked.
pub fn authenticate(
    snapshot: &Snapshot,
    deny: &DenyList,
    headers: &HeaderMap,
    now: u64,
) -> Result<Identity, AuthError> {
    let token = bearer_token(headers)?;
    verify_access(snapshot, deny, token, now)
}

/// Verifies one access token at `now` (also used by logout).
pub fn verify_access(
    snapshot: &Snapshot,
    deny: &DenyList,
    token: &str,
    now: u64,
) -> Result<Identity, AuthError> {
    let identity = match snapshot.token_cache.get(token, now) {
        Some(identity) => identity,
        None => {
            let claims: AccessClaims =
                jwt::verify(&snapshot.keys, &snapshot.access_validation, token)?;
            let identity = Identity {
                user: claims.sub,
                roles: claims.roles,
                sid: claims.sid,
                exp: claims.exp,
            };
            snapshot.token_cache.insert(token, &identity, claims.nbf);
            identity
        }
    };
    // Every request, hit or miss: a revoked session's tokens stop working at once.
    if deny.is_denied(&identity.sid) {
        return Err(AuthError::Invalid(InvalidReason::Revoked));
    }
    Ok(identity)
}

/// Checks that `identity` holds any of `required` (an empty list allows every valid token).
pub fn authorize(identity: &Identity, required: &[String]) -> Result<(), AuthError> {
    if required.is_empty() || required.iter().any(|r| identity.roles.contains(r)) {
        Ok(())
    } else {
        Err(AuthError::InsufficientScope)
    }
}
