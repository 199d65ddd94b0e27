//! The idempotent refresh window (`tokens.refresh_grace`, SPEC §1.3).
//!
//! The first use of a refresh token opens a slot keyed by its `token_id`. Every presentation of
//! the same token within `refresh_grace` of that first use shares the slot: one of them runs the
//! refresh (single flight; if it is cancelled, the next waiter runs it), and all get the
//! byte-identical response. After the window the slot is gone and normal reuse detection
//! applies. Failures are not cached: a waiter whose leader failed tries itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::OnceCell;

/// One refresh token's replay slot.
#[derive(Debug)]
pub struct Slot {
    first_use: Instant,
    pub response: OnceCell<Bytes>,
}

/// The replay slots of recently used refresh tokens; shared across reloads.
#[derive(Debug, Default)]
pub struct ReplayCache {
    slots: DashMap<String, Arc<Slot>>,
}

impl ReplayCache {
    /// The slot of `token_id`, opened now if it has none; `None` once its window has passed.
    pub fn slot(&self, token_id: &str, grace: Duration, now: Instant) -> Option<Arc<Slot>> {
        let slot = self
            .slots
            .entry(token_id.to_owned())
            .or_insert_with(|| {
                Arc::new(Slot {
                    first_use: now,
                    response: OnceCell::new(),
                })
            })
            .clone();
        (now.duration_since(slot.first_use) <= grace).then_some(slot)
    }

    /// Forgets slots whose window has passed.
    pub fn purge(&self, grace: Duration, now: Instant) {
        self.slots
            .retain(|_, slot| now.duration_since(slot.first_use) <= grace);
    }

    /// Number of open slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_lives_for_the_grace_window() {
        let cache = ReplayCache::default();
        let grace = Duration::from_secs(5);
        let now = Instant::now();
        let first = cache.slot("t", grace, now).unwrap();
        let again = cache.slot("t", grace, now + grace).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert!(cache
            .slot("t", grace, now + grace + Duration::from_millis(1))
            .is_none());
        cache.purge(grace, now + grace + Duration::from_millis(1));
        assert!(cache.is_empty());
    }
}
