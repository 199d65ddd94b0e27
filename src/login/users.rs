//! The user table from `[[users]]` and `users_file`, and argon2id password verification.
//!
//! Verification is CPU-bound (~30 ms); callers run it on the blocking pool. An unknown user name
//! costs the same argon2 work as a known one (a verification against a hash of a random
//! password), so response timing does not reveal which names exist.

use std::collections::HashMap;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::config::UserConfig;

/// The users allowed to log in; built once per snapshot.
#[derive(Debug)]
pub struct Users {
    by_name: HashMap<String, UserConfig>,
}

/// A hash of a random password nobody knows, verified for unknown names so that they cost the
/// same work as known ones. Computed once per process.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(uuid::Uuid::new_v4().as_bytes()))
}

/// A user whose password checked out.
#[derive(Clone, Debug)]
pub struct VerifiedUser {
    pub name: String,
    pub roles: Vec<String>,
}

impl Users {
    pub fn new(users: &[UserConfig]) -> Self {
        let by_name = users.iter().map(|u| (u.name.clone(), u.clone())).collect();
        // Hashing the decoy takes tens of milliseconds: do it off the start-up path.
        std::thread::spawn(decoy_hash);
        Self { by_name }
    }

    /// Checks `password` for `name`. Blocking: run it on the blocking pool.
    pub fn verify(&self, name: &str, password: &str) -> Option<VerifiedUser> {
        let (hash, user) = match self.by_name.get(name) {
            Some(user) => (user.password_hash.as_str(), Some(user)),
            None => (decoy_hash(), None),
        };
        let ok = PasswordHash::new(hash)
            .and_then(|phc| Argon2::default().verify_password(password.as_bytes(), &phc))
            .is_ok();
        match (ok, user) {
            (true, Some(user)) => Some(VerifiedUser {
                name: user.name.clone(),
                roles: user.roles.clone(),
            }),
            _ => None,
        }
    }

    /// The roles of `name`, if the user still exists (checked again on every refresh).
    pub fn roles(&self, name: &str) -> Option<&[String]> {
        self.by_name.get(name).map(|u| u.roles.as_slice())
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// An argon2id PHC string (m=19456 KiB, t=2, p=1: the argon2 crate's defaults, OWASP's minimum).
pub fn hash_password(password: &[u8]) -> String {
    let mut random = [0u8; 16];
    // The system RNG failing is not recoverable here; a UUID v4 is the same RNG's fallback.
    if aws_lc_rs::rand::fill(&mut random).is_err() {
        random = *uuid::Uuid::new_v4().as_bytes();
    }
    let Ok(salt) = SaltString::encode_b64(&random) else {
        return String::new();
    };
    Argon2::default()
        .hash_password(password, &salt)
        // Hashing with valid default parameters and a fresh salt cannot fail.
        .map(|h| h.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_known_users_only() {
        let users = Users::new(&[UserConfig {
            name: "alice".to_owned(),
            password_hash: hash_password(b"s3cret"),
            roles: vec!["admin".to_owned()],
        }]);
        assert!(users.by_name["alice"]
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let alice = users.verify("alice", "s3cret").unwrap();
        assert_eq!(alice.roles, ["admin"]);
        assert!(users.verify("alice", "wrong").is_none());
        assert!(users.verify("bob", "s3cret").is_none());
    }
}
