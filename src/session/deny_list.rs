//! `DenyList`: revoked session ids and until when they stay refused.
//!
//! Consulted on every proxied request, so it is a sharded `DashMap` behind synchronous methods;
//! no map guard escapes a method or is held across an `.await`.

use dashmap::DashMap;
use tokio::sync::watch;

/// Revoked session ids, each with the Unix second after which no token of it can be valid anyway.
#[derive(Debug)]
pub struct DenyList {
    entries: DashMap<String, u64>,
    /// Bumped on every insertion, so that long-lived connections (upgraded tunnels) can wake up
    /// and check whether their own session is now denied.
    changed: watch::Sender<u64>,
}

impl Default for DenyList {
    fn default() -> Self {
        Self {
            entries: DashMap::new(),
            changed: watch::channel(0).0,
        }
    }
}

impl DenyList {
    pub fn insert(&self, sid: &str, until: u64) {
        self.entries
            .entry(sid.to_owned())
            .and_modify(|u| *u = (*u).max(until))
            .or_insert(until);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Waits until `sid` is denied (returns at once if it already is).
    pub async fn revoked(&self, sid: &str) {
        let mut changed = self.changed.subscribe();
        while !self.is_denied(sid) {
            if changed.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    pub fn is_denied(&self, sid: &str) -> bool {
        self.entries.contains_key(sid)
    }

    /// The Unix second until which `sid` is denied, if it is.
    pub fn until(&self, sid: &str) -> Option<u64> {
        self.entries.get(sid).map(|u| *u)
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
        assert_eq!(deny.until("a"), Some(100));
        deny.purge(100);
        assert!(!deny.is_denied("a"));
    }

    #[tokio::test]
    async fn revoked_wakes_up_on_insertion_of_that_sid() {
        let deny = std::sync::Arc::new(DenyList::default());
        let waiter = {
            let deny = deny.clone();
            tokio::spawn(async move { deny.revoked("s").await })
        };
        deny.insert("other", 10);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        deny.insert("s", 10);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
