//! Admission control for password hashing: argon2id costs ~28 ms of CPU and 19 MiB of memory
//! per login, so a login storm must neither starve proxied traffic nor grow memory.
//!
//! Hashes run on a fixed set of `workers` threads of their own (never on a request-path
//! worker), each reusing one argon2 memory area from login to login (`users.rs`), so memory
//! stays at `workers` × `m_cost` however many logins come. Up to `queue` more logins wait
//! their turn; beyond that a login is refused at once with `503` and `Retry-After` instead of
//! piling up. A login whose client went away before its turn is skipped, and it keeps its
//! place under the bound until then.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

/// One queued hash: runs on a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug)]
pub struct HashPool {
    jobs: mpsc::Sender<Job>,
    /// Logins admitted (waiting or running).
    admitted: Arc<AtomicUsize>,
    limit: usize,
}

/// The pool is full: refuse the login for now.
#[derive(Debug, thiserror::Error)]
#[error("too many logins in progress")]
pub struct Busy;

impl Default for HashPool {
    /// Half the cores hash (at least one), so that the rest keep serving proxied requests; 64
    /// logins per hashing thread may wait.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = (cores / 2).max(1);
        Self::new(workers, 64 * workers)
    }
}

impl HashPool {
    /// `workers` hashing threads (they end when the pool is dropped) and room for `queue`
    /// waiting logins.
    pub fn new(workers: usize, queue: usize) -> Self {
        let (jobs, queued) = mpsc::channel::<Job>();
        let queued = Arc::new(Mutex::new(queued));
        for i in 0..workers.max(1) {
            let queued = queued.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("portcullis-hash-{i}"))
                .spawn(move || loop {
                    // The lock is held while waiting: one idle thread waits in `recv`, the
                    // others for the lock.
                    let job = queued.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the pool is gone
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-hashing thread");
            }
        }
        Self {
            jobs,
            admitted: Arc::default(),
            limit: workers.max(1) + queue,
        }
    }

    /// Logins admitted now, waiting or hashing.
    pub fn depth(&self) -> usize {
        // A refused login counts for an instant before it backs out.
        self.admitted.load(Ordering::Acquire).min(self.limit)
    }

    /// Runs `work` on a hashing thread in its turn, or refuses at once when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let admitted = Admitted(self.admitted.clone());
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The admission goes with the job: it counts until the job has run or been
            // skipped, so abandoned logins cannot pile up past the bound. It is released
            // before the result goes out, so that the caller finds its place free again.
            let result = (!done.is_closed()).then(work);
            drop(admitted);
            if let Some(result) = result {
                let _ = done.send(result);
            }
        });
        self.jobs.send(job).map_err(|_| Busy)?;
        result.await.map_err(|_| Busy)
    }
}

/// Releases an admission when its job has run or been skipped.
struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// A job on `pool` that holds its hashing thread until the sender is used (or 5 s pass).
    fn occupied(
        pool: &Arc<HashPool>,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<bool, Busy>>,
    ) {
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let pool = pool.clone();
        let first = tokio::spawn(async move {
            pool.run(move || release_rx.recv_timeout(Duration::from_secs(5)).is_ok())
                .await
        });
        (release_tx, first)
    }

    #[tokio::test]
    async fn runs_at_most_workers_at_once_and_refuses_beyond_the_queue() {
        let pool = Arc::new(HashPool::new(1, 1));
        let (release_tx, first) = occupied(&pool);
        // Let the first take the only slot, then queue a second.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 2).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(pool.run(|| 3).await, Err(Busy)), "queue full");
        assert!(!second.is_finished(), "the second waits for the slot");
        assert_eq!(
            pool.depth(),
            2,
            "one hashing, one waiting; the refused one not"
        );
        release_tx.send(()).unwrap();
        assert!(first.await.unwrap().unwrap());
        assert_eq!(second.await.unwrap().unwrap(), 2);
        assert_eq!(pool.run(|| 4).await.unwrap(), 4, "room again");
        assert_eq!(pool.depth(), 0);
    }

    /// A login whose client went away while it waited is skipped when its turn comes, and its
    /// place is free again once it would have run.
    #[tokio::test]
    async fn an_abandoned_login_is_skipped_and_frees_its_place() {
        let pool = Arc::new(HashPool::new(1, 1));
        let (release_tx, first) = occupied(&pool);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let abandoned = {
            let (pool, ran) = (pool.clone(), ran.clone());
            tokio::spawn(async move { pool.run(move || ran.store(true, Ordering::SeqCst)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        abandoned.abort();
        assert!(
            abandoned.await.unwrap_err().is_cancelled(),
            "the client is gone"
        );
        assert!(
            matches!(pool.run(|| 3).await, Err(Busy)),
            "its place still counts"
        );
        release_tx.send(()).unwrap();
        assert!(first.await.unwrap().unwrap());
        assert_eq!(pool.run(|| 4).await.unwrap(), 4, "room again");
        assert!(
            !ran.load(Ordering::SeqCst),
            "the abandoned login was hashed"
        );
    }
}
