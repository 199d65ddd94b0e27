//! `LoginThrottle`: failed logins counted per user name and per client address (SPEC §5).
//!
//! Past `max_failures` failures within `window`, the user name or address is locked out for
//! `lockout`: every login for it is refused with `429` before any password work, whether or not
//! the password is right. Unknown user names are counted like known ones, so the lockout does
//! not reveal which names exist. Both maps are `DashMap`s behind synchronous methods; no guard
//! escapes a method.

use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// The `[login]` limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

impl From<&crate::config::LoginConfig> for Limits {
    fn from(c: &crate::config::LoginConfig) -> Self {
        Self {
            max_failures: c.max_failures,
            window: c.window,
            lockout: c.lockout,
        }
    }
}

#[derive(Debug)]
struct Window {
    failures: u32,
    started: Instant,
    locked_until: Option<Instant>,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            started: now,
            locked_until: None,
        }
    }

    fn retry_after(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Counts one failure; returns the lockout if this failure starts one.
    fn fail(&mut self, limits: Limits, now: Instant) -> Option<Duration> {
        let lock_over = self.locked_until.is_some_and(|until| until <= now);
        if lock_over || now.duration_since(self.started) > limits.window {
            *self = Self::new(now);
        }
        self.failures += 1;
        if self.failures >= limits.max_failures && self.locked_until.is_none() {
            self.locked_until = Some(now + limits.lockout);
            return Some(limits.lockout);
        }
        None
    }

    fn is_stale(&self, limits: Limits, now: Instant) -> bool {
        let lock_over = self.locked_until.is_none_or(|until| until <= now);
        lock_over && now.duration_since(self.started) > limits.window
    }
}

/// Failed-login bookkeeping, shared across reloads.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    users: DashMap<String, Window>,
    addrs: DashMap<IpAddr, Window>,
}

/// Which key of a login attempt is locked.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Locked {
    User(Duration),
    Address(Duration),
}

impl Locked {
    pub fn retry_after(self) -> Duration {
        match self {
            Self::User(d) | Self::Address(d) => d,
        }
    }
}

impl LoginThrottle {
    /// `Err` with the time left when `user` or `addr` is locked out.
    pub fn check(&self, user: &str, addr: IpAddr, now: Instant) -> Result<(), Locked> {
        if let Some(d) = retry_after(&self.addrs, &addr, now) {
            return Err(Locked::Address(d));
        }
        if let Some(d) = retry_after(&self.users, user, now) {
            return Err(Locked::User(d));
        }
        Ok(())
    }

    /// Counts a failed login; returns what got locked by this failure, if anything.
    pub fn record_failure(
        &self,
        user: &str,
        addr: IpAddr,
        limits: Limits,
        now: Instant,
    ) -> Option<Locked> {
        let by_addr = self
            .addrs
            .entry(addr)
            .or_insert_with(|| Window::new(now))
            .fail(limits, now)
            .map(Locked::Address);
        let by_user = self
            .users
            .entry(user.to_owned())
            .or_insert_with(|| Window::new(now))
            .fail(limits, now)
            .map(Locked::User);
        by_addr.or(by_user)
    }

    /// A successful login clears the user's count (the address keeps its own).
    pub fn record_success(&self, user: &str) {
        self.users.remove(user);
    }

    /// Forgets windows that have run out.
    pub fn purge(&self, limits: Limits, now: Instant) {
        self.users.retain(|_, w| !w.is_stale(limits, now));
        self.addrs.retain(|_, w| !w.is_stale(limits, now));
    }
}

fn retry_after<K, Q>(map: &DashMap<K, Window>, key: &Q, now: Instant) -> Option<Duration>
where
    K: Eq + Hash + std::borrow::Borrow<Q>,
    Q: Eq + Hash + ?Sized,
{
    map.get(key).and_then(|w| w.retry_after(now))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const LIMITS: Limits = Limits {
        max_failures: 3,
        window: Duration::from_secs(60),
        lockout: Duration::from_secs(30),
    };

    #[test]
    fn locks_after_max_failures_until_lockout_passes() {
        let t = LoginThrottle::default();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let other_ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let now = Instant::now();
        assert_eq!(t.record_failure("a", ip, LIMITS, now), None);
        assert_eq!(t.record_failure("a", ip, LIMITS, now), None);
        assert!(t.check("a", ip, now).is_ok());
        assert_eq!(
            t.record_failure("a", ip, LIMITS, now),
            Some(Locked::Address(LIMITS.lockout))
        );
        assert!(matches!(t.check("a", ip, now), Err(Locked::Address(_))));
        assert!(
            matches!(t.check("a", other_ip, now), Err(Locked::User(_))),
            "per user too"
        );
        assert!(t.check("b", other_ip, now).is_ok());
        let later = now + LIMITS.lockout;
        assert!(t.check("a", ip, later).is_ok());
        assert_eq!(
            t.record_failure("a", ip, LIMITS, later),
            None,
            "a new window starts"
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = LoginThrottle::default();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let now = Instant::now();
        t.record_failure("a", ip, LIMITS, now);
        t.record_failure("a", ip, LIMITS, now);
        let later = now + LIMITS.window + Duration::from_secs(1);
        assert_eq!(t.record_failure("a", ip, LIMITS, later), None);
        t.purge(LIMITS, later + LIMITS.window + Duration::from_secs(1));
        assert!(t.users.is_empty() && t.addrs.is_empty());
    }

    #[test]
    fn success_clears_the_user_count() {
        let t = LoginThrottle::default();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let now = Instant::now();
        t.record_failure("a", ip, LIMITS, now);
        t.record_failure("a", ip, LIMITS, now);
        t.record_success("a");
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(t.record_failure("a", other, LIMITS, now), None);
    }
}
