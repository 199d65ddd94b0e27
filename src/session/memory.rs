//! The in-memory session backend: a `DashMap` of sessions plus the deny list.
//!
//! Sessions do not survive a restart. Rotation is a compare-and-swap under the map's shard lock
//! for that one key, so two concurrent rotations with the same token cannot both win.

use dashmap::DashMap;
use subtle::ConstantTimeEq;

use super::{DenyList, RotateError, Rotation, Session, StoreError};

/// A change to the store, as a durable backend records it.
#[derive(Clone, Debug)]
pub(super) enum Change {
    /// The session was created or rotated: this is its new state.
    Put(Session),
    /// The session was revoked; refuse it until `until`.
    Revoke { sid: String, until: u64 },
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    sessions: DashMap<String, Session>,
    deny: DenyList,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn create(&self, session: Session) -> Result<(), StoreError> {
        self.sessions.insert(session.sid.clone(), session);
        Ok(())
    }

    pub(super) fn get(&self, sid: &str) -> Option<Session> {
        self.sessions.get(sid).map(|s| s.clone())
    }

    pub(super) fn rotate(
        &self,
        sid: &str,
        presented: &str,
        next: Rotation,
        revoke_until: u64,
    ) -> Result<Session, RotateError> {
        self.rotate_with(sid, presented, next, revoke_until, |_| {})
    }

    /// `rotate`, calling `record` with the change it made (if any) while the session's shard is
    /// still locked, so that changes to one session are recorded in the order they happened.
    pub(super) fn rotate_with(
        &self,
        sid: &str,
        presented: &str,
        next: Rotation,
        revoke_until: u64,
        record: impl FnOnce(&Change),
    ) -> Result<Session, RotateError> {
        if self.deny.is_denied(sid) {
            return Err(RotateError::Revoked);
        }
        let seen_until = {
            // The shard guard lives only in this block; it is dropped before the map is touched
            // again below.
            let Some(mut entry) = self.sessions.get_mut(sid) else {
                return Err(RotateError::Unknown);
            };
            if bool::from(entry.token_id.as_bytes().ct_eq(presented.as_bytes())) {
                entry.token_id = next.token_id;
                entry.expires_at = next.expires_at;
                entry.access_until = entry.access_until.max(next.access_until);
                let rotated = entry.clone();
                record(&Change::Put(rotated.clone()));
                return Ok(rotated);
            }
            entry.access_until
        };
        // An older token of this session: reuse. Revoke the whole session (RFC 9700 §4.14.2).
        let until = self.revoke(sid, revoke_until.max(seen_until)).1;
        record(&Change::Revoke {
            sid: sid.to_owned(),
            until,
        });
        Err(RotateError::Reused)
    }

    /// Undoes a rotation to `rotated` that could not be made durable: the session goes back to
    /// expecting `previous`, unless something else changed it meanwhile.
    pub(super) fn undo_rotation(&self, sid: &str, rotated: &str, previous: &str) {
        if let Some(mut entry) = self.sessions.get_mut(sid) {
            if entry.token_id == rotated {
                previous.clone_into(&mut entry.token_id);
            }
        }
    }

    /// Drops a session without revoking it (its creation could not be made durable).
    pub(super) fn forget(&self, sid: &str) {
        self.sessions.remove(sid);
    }

    /// Denies `sid` until `until` or its own recorded deadline, whichever is later; returns
    /// whether a live session was revoked, and the deadline it is denied until.
    pub(super) fn revoke(&self, sid: &str, until: u64) -> (bool, u64) {
        let removed = self.sessions.remove(sid);
        let until = removed
            .as_ref()
            .map_or(until, |(_, s)| until.max(s.access_until));
        self.deny.insert(sid, until);
        (removed.is_some(), until)
    }

    pub(super) fn list(&self, user: Option<&str>, now: u64) -> Vec<Session> {
        self.sessions
            .iter()
            .filter(|s| s.expires_at > now && user.is_none_or(|u| s.user == u))
            .map(|s| s.clone())
            .collect()
    }

    pub(super) fn deny_list(&self) -> &DenyList {
        &self.deny
    }

    pub(super) fn purge(&self, now: u64) {
        self.sessions.retain(|_, s| s.expires_at > now);
        self.deny.purge(now);
    }

    pub(super) fn len(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sid: &str, token_id: &str) -> Session {
        Session::for_test(sid, token_id, 1_000)
    }

    fn next(token_id: &str) -> Rotation {
        Rotation {
            token_id: token_id.to_owned(),
            expires_at: 2_000,
            access_until: 0,
        }
    }

    #[test]
    fn rotation_is_single_use_and_reuse_revokes() {
        let store = MemoryStore::new();
        store.create(session("s", "t1")).unwrap();
        let rotated = store.rotate("s", "t1", next("t2"), 500).unwrap();
        assert_eq!(rotated.token_id, "t2");
        assert!(matches!(
            store.rotate("s", "t1", next("t3"), 500),
            Err(RotateError::Reused)
        ));
        assert!(store.deny_list().is_denied("s"));
        assert!(matches!(
            store.rotate("s", "t2", next("t3"), 500),
            Err(RotateError::Revoked)
        ));
    }

    #[test]
    fn unknown_and_revoked_sessions_do_not_rotate() {
        let store = MemoryStore::new();
        assert!(matches!(
            store.rotate("x", "t", next("u"), 1),
            Err(RotateError::Unknown)
        ));
        store.create(session("s", "t1")).unwrap();
        store.revoke("s", 100);
        assert!(matches!(
            store.rotate("s", "t1", next("t2"), 1),
            Err(RotateError::Revoked)
        ));
    }

    #[test]
    fn revocations_last_until_the_sessions_own_access_deadline() {
        let store = MemoryStore::new();
        let with_deadline = |sid: &str, access_until| Session {
            access_until,
            ..session(sid, "t1")
        };
        store.create(with_deadline("long", 700)).unwrap();
        store.create(with_deadline("short", 300)).unwrap();
        assert_eq!(
            store.revoke("long", 500),
            (true, 700),
            "the session's deadline is later"
        );
        assert_eq!(
            store.revoke("short", 500),
            (true, 500),
            "the floor is later"
        );
        assert_eq!(store.revoke("gone", 500), (false, 500));
        assert_eq!(store.deny_list().until("long"), Some(700));

        // A rotation keeps the later deadline: a token minted before a reload that lowered
        // access_ttl outlives the one minted after it. Reuse denies until then.
        store.create(with_deadline("s", 900)).unwrap();
        let lowered = Rotation {
            access_until: 400,
            ..next("t2")
        };
        assert_eq!(
            store.rotate("s", "t1", lowered, 0).unwrap().access_until,
            900
        );
        assert!(matches!(
            store.rotate("s", "t1", next("t3"), 500),
            Err(RotateError::Reused)
        ));
        assert_eq!(store.deny_list().until("s"), Some(900));
    }

    #[test]
    fn purge_forgets_expired_sessions() {
        let store = MemoryStore::new();
        store.create(session("s", "t1")).unwrap();
        store.purge(999);
        assert_eq!(store.len(), 1);
        store.purge(1_000);
        assert_eq!(store.len(), 0);
    }
}
