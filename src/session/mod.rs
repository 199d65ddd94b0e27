//! Sessions: one per login, rotated on every refresh, revoked on logout or reuse (SPEC §1.3).
//!
//! `SessionStore` is the one type callers use. It is an enum over the backends (the set is
//! closed, which keeps async methods free of `dyn`): adding the durable embedded store and the
//! Redis store means adding variants here, not touching the token endpoint or the auth check.
//!
//! The per-request question "is this session revoked?" is answered by [`DenyList`], a local
//! synchronous lookup that never waits on a backend.

mod deny_list;
mod embedded;
mod memory;
mod redis_store;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use deny_list::DenyList;
pub use embedded::EmbeddedStore;
pub use memory::MemoryStore;
pub use redis_store::RedisStore;

/// A live session as the store keeps it. Times are Unix seconds.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Session {
    pub sid: String,
    pub user: String,
    /// The `token_id` of the one refresh token that may be used next.
    pub token_id: String,
    pub created_at: u64,
    /// When the current refresh token expires; the store may forget the session after this.
    pub expires_at: u64,
    /// Until when an access token of this session may still be accepted: the latest access
    /// token's `exp` plus the leeway, plus one second. Only ever raised. A revocation denies the
    /// session at least this long, whatever `access_ttl` is by then. 0 in records written before
    /// it was kept.
    #[serde(default)]
    pub access_until: u64,
}

#[cfg(test)]
impl Session {
    /// A session of user `u`, created at 0, for the backends' unit tests.
    pub(crate) fn for_test(sid: &str, token_id: &str, expires_at: u64) -> Self {
        Self {
            sid: sid.to_owned(),
            user: "u".to_owned(),
            token_id: token_id.to_owned(),
            created_at: 0,
            expires_at,
            access_until: 0,
        }
    }
}

/// What a successful rotation moves the session to.
#[derive(Clone, Debug)]
pub struct Rotation {
    pub token_id: String,
    pub expires_at: u64,
    /// The new access token's deadline (see [`Session::access_until`]); the session keeps the
    /// later of this and the one it had.
    pub access_until: u64,
}

/// The session store, whatever its backend.
#[derive(Debug)]
pub enum SessionStore {
    /// Sessions in memory only: lost on restart. For tests and benchmarks.
    Memory(MemoryStore),
    /// Durable: one redb file, group-committed.
    Embedded(EmbeddedStore),
    /// Shared by every instance that points at the same Redis.
    Redis(RedisStore),
}

impl SessionStore {
    /// Records a new session.
    pub async fn create(&self, session: Session) -> Result<(), StoreError> {
        match self {
            Self::Memory(m) => m.create(session),
            Self::Embedded(e) => e.create(session).await,
            Self::Redis(r) => r.create(session).await,
        }
    }

    /// The session `sid`, if it is live.
    pub async fn get(&self, sid: &str) -> Result<Option<Session>, StoreError> {
        match self {
            Self::Memory(m) => Ok(m.get(sid)),
            Self::Embedded(e) => Ok(e.memory().get(sid)),
            Self::Redis(r) => r.get(sid).await,
        }
    }

    /// Moves session `sid` from refresh token `presented` to `next`, atomically: of two
    /// concurrent rotations with the same `presented`, exactly one succeeds.
    ///
    /// A `presented` id that is not the current one is reuse of an older refresh token: the
    /// whole session is revoked, like [`SessionStore::revoke`] with `revoke_until`, and
    /// `RotateError::Reused` returned.
    pub async fn rotate(
        &self,
        sid: &str,
        presented: &str,
        next: Rotation,
        revoke_until: u64,
    ) -> Result<Session, RotateError> {
        match self {
            Self::Memory(m) => m.rotate(sid, presented, next, revoke_until),
            Self::Embedded(e) => e.rotate(sid, presented, next, revoke_until).await,
            Self::Redis(r) => r.rotate(sid, presented, next, revoke_until).await,
        }
    }

    /// Revokes session `sid`; its access tokens are refused until `until` (Unix seconds) or, if
    /// later, until the session's own [`Session::access_until`], so that tokens minted under a
    /// longer `access_ttl` than today's stay refused as long as they could be accepted.
    /// Returns whether a live session was revoked (the id is denied either way).
    pub async fn revoke(&self, sid: &str, until: u64) -> Result<bool, StoreError> {
        match self {
            Self::Memory(m) => Ok(m.revoke(sid, until).0),
            Self::Embedded(e) => e.revoke(sid, until).await,
            Self::Redis(r) => r.revoke(sid, until).await,
        }
    }

    /// The live sessions at `now`, oldest first, optionally only those of `user`.
    pub async fn list(&self, user: Option<&str>, now: u64) -> Result<Vec<Session>, StoreError> {
        let mut sessions = match self {
            Self::Memory(m) => m.list(user, now),
            Self::Embedded(e) => e.memory().list(user, now),
            Self::Redis(r) => r.list(user, now).await?,
        };
        sessions.sort_by(|a, b| (a.created_at, &a.sid).cmp(&(b.created_at, &b.sid)));
        Ok(sessions)
    }

    /// Whether the store can take changes: always for the local stores; for Redis, whether it
    /// is reachable and this instance follows its revocations.
    pub fn is_ready(&self) -> bool {
        match self {
            Self::Memory(_) | Self::Embedded(_) => true,
            Self::Redis(r) => r.is_synced(),
        }
    }

    /// The local deny list consulted on every proxied request. Never waits on a backend.
    pub fn deny_list(&self) -> &DenyList {
        match self {
            Self::Memory(m) => m.deny_list(),
            Self::Embedded(e) => e.memory().deny_list(),
            Self::Redis(r) => r.deny_list(),
        }
    }

    /// Drops sessions and deny-list entries that have expired by `now`.
    pub async fn purge(&self, now: u64) {
        match self {
            Self::Memory(m) => m.purge(now),
            Self::Embedded(e) => e.purge(now),
            Self::Redis(r) => r.purge(now).await,
        }
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        match self {
            Self::Memory(m) => m.len(),
            Self::Embedded(e) => e.memory().len(),
            Self::Redis(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a rotation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// No such session: never existed, expired, or revoked and forgotten.
    #[error("unknown session")]
    Unknown,
    #[error("session revoked")]
    Revoked,
    /// An older refresh token of the session was presented; the session is now revoked.
    #[error("refresh token reused; session revoked")]
    Reused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A backend failure. The in-memory store never produces one.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store file could not be opened or is not a valid store (it is left as it is).
    #[error("cannot open the session store {}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    /// A change could not be made durable; the writer logged why.
    #[error("the session store could not commit a change")]
    Commit,
    /// The writer thread is gone.
    #[error("the session store {} is closed", .0.display())]
    Closed(PathBuf),
    /// Redis could not be reached or did not answer in time.
    #[error("the Redis session store is unavailable")]
    Unavailable(#[source] ::redis::RedisError),
}
