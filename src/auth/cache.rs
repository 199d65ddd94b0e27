//! The verified-token cache: access tokens whose signature and claims were checked, keyed by
//! their exact bytes, so that a client sending the same token again skips the signature check.
//!
//! A hit still checks `exp` and `nbf` (with the configured leeway) against the clock; the
//! caller still checks the revocation deny list on every request. The cache lives in the
//! configuration snapshot, so a reload (new keys, new leeway) starts with an empty one.
//! Bounded: once `capacity` entries are held, new tokens are verified but not admitted until the
//! purge has dropped expired ones (no eviction scan on the request path).

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;

use dashmap::DashMap;

use super::Identity;
use crate::jwt;

#[derive(Debug)]
pub(super) struct TokenCache {
    /// By the token's bytes, as the request carried them.
    entries: DashMap<Box<[u8]>, Entry, TailHash>,
    capacity: usize,
    leeway: u64,
}

#[derive(Debug)]
struct Entry {
    identity: Arc<Identity>,
    nbf: u64,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0 disables it).
    pub(super) fn new(capacity: usize, leeway: std::time::Duration) -> Self {
        Self {
            entries: DashMap::with_hasher(TailHash(RandomState::new())),
            capacity,
            leeway: leeway.as_secs(),
        }
    }

    /// The identity of `token` if it was verified before and is within its validity at `now`.
    pub(super) fn get(&self, token: &[u8], now: u64) -> Option<Arc<Identity>> {
        if self.capacity == 0 {
            return None;
        }
        let entry = self.entries.get(token)?;
        // The same time check as the full verification.
        let live = jwt::in_time(entry.identity.exp, entry.nbf, self.leeway, now).is_ok();
        live.then(|| entry.identity.clone())
    }

    /// Admits a token that has just passed the full verification.
    pub(super) fn insert(&self, token: &[u8], identity: &Arc<Identity>, nbf: u64) {
        if self.capacity == 0 || self.entries.len() >= self.capacity {
            return;
        }
        self.entries.insert(
            token.into(),
            Entry {
                identity: identity.clone(),
                nbf,
            },
        );
    }

    /// Drops the entries of tokens expired at `now`.
    pub(super) fn purge(&self, now: u64) {
        self.entries
            .retain(|_, e| jwt::in_time(e.identity.exp, 0, self.leeway, now).is_ok());
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Hashes only the last [`TAIL`] bytes of a token, with the process's random SipHash keys:
/// the end of the signature, which differs between any two tokens the gateway signed. Hashing
/// all of a 700-byte token was 1.1 % of the gateway's CPU. Keys are still compared whole, and
/// only verified tokens are ever stored, so a caller who sends many tokens with one tail only
/// makes its own lookups share a bucket with no stored token.
#[derive(Clone, Debug)]
struct TailHash(RandomState);

/// How many trailing bytes of a token are hashed: 192 bits of signature.
const TAIL: usize = 32;

impl BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher {
            keys: self.0.clone(),
            tail: [0; TAIL],
            len: 0,
        }
    }
}

/// Keeps the last [`TAIL`] bytes written (a `[u8]` writes its length, then its bytes).
#[derive(Debug)]
struct TailHasher {
    keys: RandomState,
    tail: [u8; TAIL],
    len: usize,
}

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        if bytes.len() >= TAIL {
            self.tail.copy_from_slice(&bytes[bytes.len() - TAIL..]);
            self.len = TAIL;
            return;
        }
        let keep = (TAIL - bytes.len()).min(self.len);
        self.tail.copy_within(self.len - keep..self.len, 0);
        self.tail[keep..keep + bytes.len()].copy_from_slice(bytes);
        self.len = keep + bytes.len();
    }

    fn finish(&self) -> u64 {
        self.keys.hash_one(&self.tail[..self.len])
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn identity(exp: u64) -> Arc<Identity> {
        Arc::new(Identity::new("u", vec!["r".into()], "s".into(), exp))
    }

    #[test]
    fn hits_respect_exp_and_nbf_with_leeway() {
        let cache = TokenCache::new(10, Duration::from_secs(5));
        cache.insert(b"t", &identity(100), 50);
        assert!(cache.get(b"t", 44).is_none(), "not yet valid");
        assert_eq!(cache.get(b"t", 45).unwrap().sid, "s");
        assert!(cache.get(b"t", 105).is_some());
        assert!(cache.get(b"t", 106).is_none(), "expired");
        assert!(cache.get(b"other", 60).is_none());
        cache.purge(105);
        assert_eq!(cache.len(), 1);
        cache.purge(106);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn tokens_hash_by_their_tail() {
        let state = TailHash(RandomState::new());
        let long = "x".repeat(600);
        let a = format!("{long}signature-one-aaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        let b = format!("{long}signature-two-aaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        let same_tail = format!("other-head{}", &a[a.len() - 40..]);
        let hash = |s: &str| state.hash_one(s.as_bytes());
        assert_eq!(hash(&a), hash(&a));
        assert_eq!(hash(&a), hash(&same_tail), "only the tail counts");
        assert_ne!(hash(&a), hash(&b));
        // Short keys and pieces shorter than the tail still hash all their bytes.
        assert_ne!(hash("ab"), hash("ba"));
        let mut h = state.build_hasher();
        for piece in ["0123456789", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJ"] {
            h.write(piece.as_bytes());
        }
        let mut whole = state.build_hasher();
        whole.write(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ");
        assert_eq!(
            h.finish(),
            whole.finish(),
            "the same last 32 bytes, written in pieces"
        );
        // Equal tails do not make different tokens one entry.
        let cache = TokenCache::new(10, Duration::ZERO);
        cache.insert(a.as_bytes(), &identity(100), 0);
        assert!(cache.get(same_tail.as_bytes(), 1).is_none());
        assert!(cache.get(a.as_bytes(), 1).is_some());
    }

    #[test]
    fn it_is_bounded_and_can_be_off() {
        let cache = TokenCache::new(2, Duration::ZERO);
        for t in [b"a", b"b", b"c"] {
            cache.insert(t, &identity(100), 0);
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(b"c", 1).is_none());
        let off = TokenCache::new(0, Duration::ZERO);
        off.insert(b"a", &identity(100), 0);
        assert!(off.get(b"a", 1).is_none());
    }
}
