//! The one clock: the wall-clock time that token claims, sessions and revocation deadlines are
//! written in. It is the system clock, except in tests, which can move an adjustable clock
//! forward instead of sleeping until a token expires.
//!
//! Monotonic time (timeouts, the login throttle's windows, idle connections) is tokio's and
//! `std::time::Instant`'s, not this.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wall clock, shared: clones read the same time.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Milliseconds added to the system time; `None` for the plain system clock.
    ahead_ms: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that starts at the system time and can be moved forward with `advance`.
    pub fn adjustable() -> Self {
        Self {
            ahead_ms: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    /// Moves an adjustable clock (and every clone of it) forward; the system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Some(ahead) = &self.ahead_ms {
            let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
            ahead.fetch_add(ms, Ordering::Relaxed);
        }
    }

    pub fn now(&self) -> SystemTime {
        let now = SystemTime::now();
        match &self.ahead_ms {
            Some(ahead) => {
                let by = Duration::from_millis(ahead.load(Ordering::Relaxed));
                now.checked_add(by).unwrap_or(now)
            }
            None => now,
        }
    }

    /// Seconds since the Unix epoch.
    pub fn unix(&self) -> u64 {
        unix(self.now())
    }
}

/// `t` in seconds since the Unix epoch (0 before it).
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_forward_and_its_clones_follow() {
        let clock = Clock::adjustable();
        let copy = clock.clone();
        let before = copy.unix();
        clock.advance(Duration::from_secs(3600));
        assert!(copy.unix() >= before + 3600);
        let system = Clock::system();
        system.advance(Duration::from_secs(3600));
        assert!(system.unix() < before + 3600);
    }
}
