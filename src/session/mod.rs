//! Sessions: one per login, rotated on every refresh, revoked on logout or reuse (SPEC §1.3).
//!
//! `SessionStore` is the one type callers use. It is an enum over the backends (the set is
//! closed, which keeps async methods free of `dyn`): adding the durable embedded store and the
//! Redis store means adding variants here, not touching the token endpoint or the auth check.
//!
//! The per-request question "is this session revoked?" is answered by [`DenyList`], a local
//! synchronous lookup that never waits on a backend.

mod deny_list;
mod memory;

use std::time::{SystemTime, UNIX_EPOCH};

pub use deny_list::DenyList;
pub use memory::MemoryStore;

/// A live session as the store keeps it. Times are Unix seconds.
#[derive(Clone, Debug)]
pub struct Session {
    pub sid: String,
    pub user: String,
    /// The `token_id` of the one refresh token that may be used next.
    pub token_id: String,
    pub created_at: u64,
    /// When the current refresh token expires; the store may forget the session after this.
    pub expires_at: u64,
}

/// What a successful rotation moves the session to.
#[derive(Clone, Debug)]
pub struct Rotation {
    pub token_id: String,
    pub expires_at: u64,
}

/// The session store, whatever its backend.
#[derive(Debug)]
pub enum SessionStore {
    Memory(MemoryStore),
}

impl SessionStore {
    /// Records a new session.
    pub async fn create(&self, session: Session) -> Result<(), StoreError> {
        match self {
            Self::Memory(m) => m.create(session),
        }
    }

    /// The session `sid`, if it is live.
    pub async fn get(&self, sid: &str) -> Result<Option<Session>, StoreError> {
        match self {
            Self::Memory(m) => Ok(m.get(sid)),
        }
    }

    /// Moves session `sid` from refresh token `presented` to `next`, atomically: of two
    /// concurrent rotations with the same `presented`, exactly one succeeds.
    ///
    /// A `presented` id that is not the current one is reuse of an older refresh token: the
    /// whole session is revoked (until `revoke_until`) and `RotateError::Reused` returned.
    pub async fn rotate(
        &self,
        sid: &str,
        presented: &str,
        next: Rotation,
        revoke_until: u64,
    ) -> Result<Session, RotateError> {
        match self {
            Self::Memory(m) => m.rotate(sid, presented, next, revoke_until),
        }
    }

    /// Revokes session `sid`; its access tokens are refused until `until` (Unix seconds).
    pub async fn revoke(&self, sid: &str, until: u64) -> Result<(), StoreError> {
        match self {
            Self::Memory(m) => m.revoke(sid, until),
        }
    }

    /// The local deny list consulted on every proxied request. Never waits on a backend.
    pub fn deny_list(&self) -> &DenyList {
        match self {
            Self::Memory(m) => m.deny_list(),
        }
    }

    /// Drops sessions and deny-list entries that have expired by `now`.
    pub fn purge(&self, now: u64) {
        match self {
            Self::Memory(m) => m.purge(now),
        }
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        match self {
            Self::Memory(m) => m.len(),
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

/// A backend failure (I/O, network). The in-memory store never produces one.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable")]
    Unavailable(#[source] std::io::Error),
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
