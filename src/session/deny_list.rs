//! `DenyList`: revoked session ids and until when they stay refused.
//!
//! Consulted on every proxied request, so it is a sharded `DashMap` behind synchronous methods;
//! no map guard escapes a method or is held across an `.await`.

use dashmap::DashMap;

/// Revoked session ids, each with the Unix second after which no token of it can be valid anyway.
#[derive(Debug, Default)]
pub struct DenyList {
    entries: DashMap<String, u64>,
}

impl DenyList {
    pub fn insert(&self, sid: &str, until: u64) {
        self.entries
            .entry(sid.to_owned())
            .and_modify(|u| *u = (*u).max(until))
            .or_insert(until);
    }

    pub fn is_denied(&self, sid: &str) -> bool {
        self.entries.contains_key(sid)
    }

    /// Forgets entries whose tokens have all expired by `now`.
    pub fn purge(&self, now: u64) {
        self.entries.retain(|_, until| *until > now);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_until_their_deadline() {
        let deny = DenyList::default();
        deny.insert("a", 100);
        deny.insert("a", 50);
        assert!(deny.is_denied("a"));
        assert!(!deny.is_denied("b"));
        deny.purge(99);
        assert!(deny.is_denied("a"), "the later deadline wins");
        deny.purge(100);
        assert!(!deny.is_denied("a"));
    }
}
