//! The durable embedded backend: the in-memory store, mirrored to one redb file.
//!
//! Reads and the rotation compare-and-swap run on the in-memory copy (loaded from the file at
//! start). Every change is then written by one writer thread that commits whatever has queued
//! up in a single durable transaction (group commit): concurrent logins and refreshes share an
//! fsync instead of queueing for one each. A caller's future completes only once its change is
//! on disk, so a response never promises what a crash could take back. If a commit fails, the
//! in-memory change is undone (a revocation stays in force in memory) and the caller gets
//! `StoreError::Commit`. The file holds every session's refresh-token id: it is created with
//! mode 0600, and tightened to 0600 when it is found looser.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::memory::Change;
use super::{MemoryStore, RotateError, Rotation, Session, StoreError};

/// sid → JSON `Session`.
const SESSIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sessions");
/// sid → Unix second until which the revoked session stays refused.
const REVOKED: TableDefinition<'_, &str, u64> = TableDefinition::new("revoked");

/// Largest number of queued changes committed in one transaction.
const MAX_BATCH: usize = 4096;

#[derive(Debug)]
pub struct EmbeddedStore {
    memory: MemoryStore,
    writer_tx: mpsc::Sender<Job>,
    path: PathBuf,
}

#[derive(Debug)]
enum Job {
    Apply(Change, oneshot::Sender<bool>),
    Purge(u64),
}

impl EmbeddedStore {
    /// Opens (or creates) the store file and loads the live sessions and revocations. A file
    /// that is not a valid store is an error; it is never replaced.
    pub fn open(path: &Path, now: u64) -> Result<Self, StoreError> {
        let open_err = |source: redb::Error| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| open_err(redb::Error::Io(e)))?;
        }
        if crate::keygen::ensure_private(path).map_err(|e| open_err(redb::Error::Io(e)))? {
            tracing::warn!(
                store = %path.display(),
                "the session store was readable by group or others; its mode is now 0600"
            );
        }
        let db = Database::create(path).map_err(|e| open_err(e.into()))?;
        let memory = MemoryStore::new();
        load(&db, &memory, now).map_err(open_err)?;
        let (writer_tx, writer_rx) = mpsc::channel();
        let thread_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("portcullis-store".to_owned())
            .spawn(move || write_loop(&db, &writer_rx, &thread_path))
            .map_err(|e| open_err(redb::Error::Io(e)))?;
        Ok(Self {
            memory,
            writer_tx,
            path: path.to_path_buf(),
        })
    }

    pub(super) fn memory(&self) -> &MemoryStore {
        &self.memory
    }

    pub(super) async fn create(&self, session: Session) -> Result<(), StoreError> {
        let sid = session.sid.clone();
        let done = self.submit(Change::Put(session.clone()))?;
        self.memory.create(session)?;
        if !wait(done).await {
            self.memory.forget(&sid);
            return Err(StoreError::Commit);
        }
        Ok(())
    }

    pub(super) async fn rotate(
        &self,
        sid: &str,
        presented: &str,
        next: Rotation,
        revoke_until: u64,
    ) -> Result<Session, RotateError> {
        let mut done = None;
        let result = self
            .memory
            .rotate_with(sid, presented, next, revoke_until, |change| {
                done = Some(self.submit(change.clone()));
            });
        let Some(done) = done else {
            return result; // nothing changed (unknown or revoked session)
        };
        let committed = match done {
            Ok(done) => wait(done).await,
            Err(_) => false,
        };
        match (result, committed) {
            (result, true) => result,
            (Ok(rotated), false) => {
                self.memory.undo_rotation(sid, &rotated.token_id, presented);
                Err(RotateError::Store(StoreError::Commit))
            }
            // A reuse revocation stays in force in memory even if it could not be written.
            (Err(_), false) => Err(RotateError::Store(StoreError::Commit)),
        }
    }

    pub(super) async fn revoke(&self, sid: &str, until: u64) -> Result<bool, StoreError> {
        let (live, until) = self.memory.revoke(sid, until);
        let done = self.submit(Change::Revoke {
            sid: sid.to_owned(),
            until,
        })?;
        if wait(done).await {
            Ok(live)
        } else {
            Err(StoreError::Commit)
        }
    }

    pub(super) fn purge(&self, now: u64) {
        self.memory.purge(now);
        let _ = self.writer_tx.send(Job::Purge(now));
    }

    fn submit(&self, change: Change) -> Result<oneshot::Receiver<bool>, StoreError> {
        let (done_tx, done_rx) = oneshot::channel();
        self.writer_tx
            .send(Job::Apply(change, done_tx))
            .map_err(|_| StoreError::Closed(self.path.clone()))?;
        Ok(done_rx)
    }
}

async fn wait(done: oneshot::Receiver<bool>) -> bool {
    done.await.unwrap_or(false)
}

fn load(db: &Database, memory: &MemoryStore, now: u64) -> Result<(), redb::Error> {
    // Make sure both tables exist, so that a new file is a valid empty store.
    let txn = db.begin_write()?;
    txn.open_table(SESSIONS)?;
    txn.open_table(REVOKED)?;
    txn.commit()?;

    let txn = db.begin_read()?;
    let revoked = txn.open_table(REVOKED)?;
    for entry in revoked.iter()? {
        let (sid, until) = entry?;
        if until.value() > now {
            memory.deny_list().insert(sid.value(), until.value());
        }
    }
    let sessions = txn.open_table(SESSIONS)?;
    for entry in sessions.iter()? {
        let (sid, bytes) = entry?;
        let Ok(session) = serde_json::from_slice::<Session>(bytes.value()) else {
            tracing::warn!(sid = sid.value(), "skipping an unreadable session record");
            continue;
        };
        if session.expires_at > now && !memory.deny_list().is_denied(&session.sid) {
            let _ = memory.create(session);
        }
    }
    Ok(())
}

/// The writer thread: commits queued changes in batches until every sender is gone.
fn write_loop(db: &Database, jobs: &mpsc::Receiver<Job>, path: &Path) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let ok = match commit(db, &batch) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    store = %path.display(),
                    error = %crate::telemetry::error_chain(&e),
                    "session store commit failed"
                );
                false
            }
        };
        for job in batch {
            if let Job::Apply(_, done) = job {
                let _ = done.send(ok);
            }
        }
    }
}

fn commit(db: &Database, batch: &[Job]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut sessions = txn.open_table(SESSIONS)?;
        let mut revoked = txn.open_table(REVOKED)?;
        for job in batch {
            match job {
                Job::Apply(Change::Put(session), _) => {
                    let json = serde_json::to_vec(session).unwrap_or_default();
                    sessions.insert(session.sid.as_str(), json.as_slice())?;
                }
                Job::Apply(Change::Revoke { sid, until }, _) => {
                    sessions.remove(sid.as_str())?;
                    let later = revoked.get(sid.as_str())?.map_or(0, |v| v.value());
                    revoked.insert(sid.as_str(), (*until).max(later))?;
                }
                Job::Purge(now) => {
                    let now = *now;
                    sessions.retain(|_, bytes| {
                        serde_json::from_slice::<Session>(bytes).is_ok_and(|s| s.expires_at > now)
                    })?;
                    revoked.retain(|_, until| until > now)?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sid: &str, token_id: &str) -> Session {
        Session::for_test(sid, token_id, 10_000)
    }

    #[tokio::test]
    async fn changes_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("portcullis-store-{}", uuid::Uuid::new_v4()));
        let path = dir.join("sessions.db");
        {
            let store = EmbeddedStore::open(&path, 0).unwrap();
            store.create(session("a", "t1")).await.unwrap();
            store.create(session("b", "t1")).await.unwrap();
            store.create(session("c", "t1")).await.unwrap();
            let next = Rotation {
                token_id: "t2".to_owned(),
                expires_at: 20_000,
                access_until: 0,
            };
            store.rotate("a", "t1", next, 500).await.unwrap();
            store.revoke("b", 900).await.unwrap();
            let d = Session {
                access_until: 5_000,
                ..session("d", "t1")
            };
            store.create(d).await.unwrap();
            store.revoke("d", 900).await.unwrap();
        }
        // The writer thread exits once the store is dropped; the lock on the file goes with it.
        let store = loop {
            match EmbeddedStore::open(&path, 100) {
                Ok(store) => break store,
                Err(StoreError::Open { .. }) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(store.memory.get("a").unwrap().token_id, "t2");
        assert!(store.memory.get("b").is_none());
        assert!(store.memory.deny_list().is_denied("b"));
        assert_eq!(
            store.memory.deny_list().until("d"),
            Some(5_000),
            "the session's own deadline was recorded, not the floor"
        );
        assert_eq!(store.memory.get("c").unwrap().token_id, "t1");
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[cfg(unix)]
    #[test]
    fn the_store_file_is_created_0600_and_tightened_when_looser() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = std::env::temp_dir().join(format!("portcullis-store-{}", uuid::Uuid::new_v4()));
        let path = dir.join("sessions.db");
        drop(EmbeddedStore::open(&path, 0).unwrap());
        assert_eq!(mode(&path), 0o600);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // The writer thread of the first store lets go of the file's lock shortly after the drop.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let store = loop {
            match EmbeddedStore::open(&path, 0) {
                Ok(store) => break store,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(mode(&path), 0o600);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn records_written_before_access_until_load_with_zero() {
        let old = br#"{"sid":"s","user":"u","token_id":"t","created_at":1,"expires_at":9}"#;
        let session: Session = serde_json::from_slice(old).unwrap();
        assert_eq!((session.expires_at, session.access_until), (9, 0));
    }

    #[test]
    fn a_corrupt_file_is_refused_and_kept() {
        let dir = std::env::temp_dir().join(format!("portcullis-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sessions.db");
        let garbage = vec![0x5a_u8; 64 * 1024];
        std::fs::write(&path, &garbage).unwrap();
        let err = EmbeddedStore::open(&path, 0).unwrap_err();
        assert!(err.to_string().contains("sessions.db"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), garbage, "never replaced");
        let _ = std::fs::remove_dir_all(dir);
    }
}
