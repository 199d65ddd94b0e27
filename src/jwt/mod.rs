//! The token format, shared by minting (`token`) and checking (`auth`): the key set and its
//! `kid`s (`keys.rs`), the claim sets of SPEC §1.2 (`claims.rs`), and verification of a compact
//! JWS against a key set and the `Rules` of an audience, at a given time (`verify.rs`).
//!
//! A bottom module: it knows nothing of requests, snapshots or HTTP, and reports what is wrong
//! with a token as a [`JwtError`], which the stages above map to their own errors.

mod claims;
mod error;
mod keys;
mod verify;

pub use claims::{
    AccessClaims, AccessView, RefreshClaims, Registered, ACCESS_AUDIENCE, REFRESH_AUDIENCE,
};
pub use error::JwtError;
pub use keys::{kid_of, KeyError, KeyName, KeyParams, KeyRole, KeySet, PublicKey, SignError};
pub use verify::{in_time, signed_payload, verify, Payload, Rules};
