//! The user table from `[[users]]` and `users_file`, and argon2id password verification.
//!
//! Verification is CPU-bound (~30 ms); callers run it on the hashing threads (`admission.rs`).
//! Each thread hashes into one argon2 memory area of its own, kept from login to login, so a
//! login storm does not grow memory (the argon2 crate's own `verify_password` allocates, and
//! the allocator keeps, `m_cost` KiB per call). An unknown user name costs the same argon2
//! work as a known one (a verification against a hash of a random password), so response
//! timing does not reveal which names exist.

use std::cell::RefCell;
use std::collections::HashMap;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

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
        let ok = verify_phc(hash, password.as_bytes());
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

thread_local! {
    /// This thread's argon2 memory, as large as the largest `m_cost` it has hashed with.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Whether `password` hashes to the argon2 PHC string `hash`, computed in this thread's
/// reusable memory and compared in constant time. A malformed hash matches nothing.
fn verify_phc(hash: &str, password: &[u8]) -> bool {
    let Ok(phc) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Some(salt), Some(expected)) =
        (Algorithm::try_from(phc.algorithm), phc.salt, phc.hash)
    else {
        return false;
    };
    let version = match phc.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    // `m`, `t`, `p` and the output length, as the PHC string gives them.
    let Ok(params) = Params::try_from(&phc) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let expected = expected.as_bytes();
    let mut output = [0u8; 64];
    let Some(out) = output.get_mut(..expected.len()) else {
        return false;
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let hashed = MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..])
    });
    hashed.is_ok() && bool::from(out.ct_eq(expected))
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

    /// Hashes of every argon2 variant, version and cost verify as the argon2 crate's own
    /// `verify_password` does them, in one memory area that is reused, not grown again.
    #[test]
    fn verification_agrees_with_argon2_and_reuses_its_memory() {
        use argon2::password_hash::PasswordVerifier;
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let mut hashes = vec![hash_password(b"pw")];
        for (algorithm, version, m, t, p, len) in [
            (Algorithm::Argon2i, Version::V0x13, 64, 3, 1, 32),
            (Algorithm::Argon2d, Version::V0x10, 256, 1, 2, 16),
            (Algorithm::Argon2id, Version::V0x13, 1024, 2, 4, 64),
        ] {
            let params = Params::new(m, t, p, Some(len)).unwrap();
            let argon2 = Argon2::new(algorithm, version, params);
            hashes.push(argon2.hash_password(b"pw", &salt).unwrap().to_string());
        }
        let mut area = None;
        for hash in &hashes {
            let phc = PasswordHash::new(hash).unwrap();
            for password in [&b"pw"[..], b"pW", b""] {
                let theirs = Argon2::default().verify_password(password, &phc).is_ok();
                assert_eq!(verify_phc(hash, password), theirs, "{hash} {password:?}");
            }
            let here = MEMORY.with_borrow(|m| (m.as_ptr() as usize, m.len()));
            // The first hash is the largest (19456 KiB): later ones use the same area.
            assert_eq!(*area.get_or_insert(here), here, "{hash}");
        }
        assert_eq!(area.unwrap().1, 19456);
        for malformed in [
            "",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$scrypt$ln=1$c2FsdA$aGFzaA",
        ] {
            assert!(!verify_phc(malformed, b"pw"), "{malformed}");
        }
    }
}
