//! Admission control for password hashing: argon2id costs ~28 ms of CPU and 19 MiB of memory
//! per login, so a login storm must neither starve proxied traffic nor exhaust memory.
//!
//! At most `workers` hashes run at once, each on the blocking pool (never on an async worker);
//! up to `queue` more logins wait their turn; beyond that a login is refused at once with
//! `503` and `Retry-After` instead of piling up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

#[derive(Debug)]
pub struct HashPool {
    running: Arc<Semaphore>,
    /// Logins admitted (waiting or running).
    admitted: AtomicUsize,
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
    pub fn new(workers: usize, queue: usize) -> Self {
        Self {
            running: Arc::new(Semaphore::new(workers)),
            admitted: AtomicUsize::new(0),
            limit: workers + queue,
        }
    }

    /// Runs `work` on the blocking pool once a hashing slot is free, or refuses at once when
    /// the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let _admitted = Admitted(&self.admitted);
        let slot = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Busy)?;
        // The slot goes with the work: if the client goes away, the hash still finishes before
        // its slot is free again, so no more than `workers` ever run.
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|_| Busy)
    }
}

/// Releases an admission when the login finishes or its request is dropped.
struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn runs_at_most_workers_at_once_and_refuses_beyond_the_queue() {
        let pool = Arc::new(HashPool::new(1, 1));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let first = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move || release_rx.recv_timeout(Duration::from_secs(5)).is_ok())
                    .await
            })
        };
        // Let the first take the only slot, then queue a second.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 2).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(pool.run(|| 3).await, Err(Busy)), "queue full");
        assert!(!second.is_finished(), "the second waits for the slot");
        release_tx.send(()).unwrap();
        assert!(first.await.unwrap().unwrap());
        assert_eq!(second.await.unwrap().unwrap(), 2);
        assert_eq!(pool.run(|| 4).await.unwrap(), 4, "room again");
    }
}
