//! `LoginThrottle`: failed logins counted per user name and per client address (SPEC §5), the
//! failure slots that keep concurrent guesses within the limit, and (through `inflight.rs`) the
//! logins in flight per client address.
//!
//! Past `max_failures` failures within `window`, the user name or address is locked out for
//! `lockout`: every login for it is refused with `429` before any password work, whether or not
//! the password is right. Unknown user names are counted like known ones, so the lockout does
//! not reveal which names exist.
//!
//! # Failure slots
//!
//! A login reserves a slot for its user name and one for its client address *before* its
//! password is checked: per key, the failures counted in the window plus the guesses in flight
//! never exceed `max_failures`, however many logins arrive at once. A guess that fails turns its
//! slot into a counted failure (which may start the lockout); a success frees its slot and clears
//! the user's failures; a login dropped before it resolved (its client went away) frees its slot.
//! A login that finds no free slot waits for one ([`LoginThrottle::reserve`], bounded), woken
//! when a guess for the same key resolves.
//!
//! # Bounds
//!
//! At most [`MAX_TRACKED`] user names and as many addresses are tracked. When a map is full,
//! the windows that have run out are evicted first (one sweep a second at most); if it is still
//! full, a new key is not tracked: a new user name is then limited by its address's slots and
//! lockout only, a new address by its user name's only. Keys already tracked keep their windows,
//! so a flood of new names cannot evict a victim's count. User names are attacker-controlled and
//! may be 16 KiB long: each is kept as a keyed 64-bit hash (SipHash, random per process), so an
//! entry costs the same whatever the name; two names sharing a hash would share a window. The
//! in-flight bookkeeping of a key is removed when it drops to zero, the rest by
//! [`LoginThrottle::purge`].
//!
//! Both maps are `DashMap`s behind synchronous methods; no guard escapes a method or is held
//! across an `.await` (`reserve` awaits only a `Notify`). Instant arithmetic is checked: no
//! lockout or window length can overflow.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::pin::pin;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::Notify;

use super::inflight::{AddrLogins, ConnLogins, LoginPermit, TooManyInFlight};

/// How many user names (and, separately, addresses) the throttle tracks at most: under 10 MB
/// each, whatever the names.
pub const MAX_TRACKED: usize = 100_000;

/// How long a login waits for a free failure slot before it is refused with `429`: long enough
/// for the guesses ahead of it to be hashed through a busy queue, short enough that a client
/// is not left hanging.
pub const SLOT_WAIT: Duration = Duration::from_secs(5);

/// Sweeps of a full map for stale windows are at least this far apart, so that a flood of new
/// names costs one sweep a second rather than one per login.
const EVICTION_INTERVAL: Duration = Duration::from_secs(1);

/// Waiters for a free slot are spread over this many `Notify`s by key, so that a guess resolving
/// wakes only the logins that may want its slot (and a few that share the shard).
const WAKERS: usize = 64;

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

/// Why a login got no failure slot.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Refused {
    /// The user name or the client address is locked out.
    Locked(Locked),
    /// Every slot of the user name or of the address is taken by a guess in flight (and, after
    /// [`LoginThrottle::reserve`], none was freed in time).
    Full,
}

/// A running lockout. Kept as a start and a length rather than an end `Instant`, so that no
/// length can overflow.
#[derive(Clone, Copy, Debug)]
struct Lock {
    since: Instant,
    length: Duration,
}

/// One key's failures in the current window, its lockout and its guesses in flight.
#[derive(Debug)]
struct Window {
    failures: u32,
    /// Guesses holding a slot that have not resolved yet.
    in_flight: u32,
    started: Instant,
    lock: Option<Lock>,
}

/// Why a key gives no slot.
#[derive(Clone, Copy, Debug)]
enum Hold {
    Locked(Duration),
    Full,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            in_flight: 0,
            started: now,
            lock: None,
        }
    }

    /// The time left of a running lockout.
    fn locked_for(&self, now: Instant) -> Option<Duration> {
        let lock = self.lock?;
        lock.length
            .checked_sub(now.saturating_duration_since(lock.since))
            .filter(|d| !d.is_zero())
    }

    /// Whether the window (or the lockout that ended it) is over, so its failures no longer
    /// count.
    fn is_over(&self, limits: Limits, now: Instant) -> bool {
        match self.lock {
            Some(_) => self.locked_for(now).is_none(),
            None => now.saturating_duration_since(self.started) > limits.window,
        }
    }

    /// Starts a new window when the current one is over; the guesses in flight stay.
    fn roll(&mut self, limits: Limits, now: Instant) {
        if self.is_over(limits, now) {
            self.failures = 0;
            self.started = now;
            self.lock = None;
        }
    }

    /// What would stop a reservation now, without changing anything.
    fn hold(&self, limits: Limits, now: Instant) -> Option<Hold> {
        if let Some(d) = self.locked_for(now) {
            return Some(Hold::Locked(d));
        }
        let failures = if self.is_over(limits, now) {
            0
        } else {
            self.failures
        };
        if failures >= limits.max_failures {
            // Only after a reload lowered `max_failures`: as locked as the last failure would
            // have made it.
            return Some(Hold::Locked(limits.lockout));
        }
        (failures.saturating_add(self.in_flight) >= limits.max_failures).then_some(Hold::Full)
    }

    fn reserve(&mut self, limits: Limits, now: Instant) -> Result<(), Hold> {
        self.roll(limits, now);
        if let Some(hold) = self.hold(limits, now) {
            return Err(hold);
        }
        self.in_flight += 1;
        Ok(())
    }

    fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Turns a slot into a counted failure; returns the lockout if this failure starts one.
    fn fail(&mut self, limits: Limits, now: Instant) -> Option<Duration> {
        self.release();
        self.roll(limits, now);
        self.failures = self.failures.saturating_add(1);
        if self.failures >= limits.max_failures && self.lock.is_none() {
            self.lock = Some(Lock {
                since: now,
                length: limits.lockout,
            });
            return Some(limits.lockout);
        }
        None
    }

    /// Nothing to remember: no failure, no lockout, no guess in flight.
    fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.failures == 0 && self.lock.is_none()
    }

    fn is_stale(&self, limits: Limits, now: Instant) -> bool {
        self.in_flight == 0 && (self.is_idle() || self.is_over(limits, now))
    }
}

/// One map of windows (user names or addresses), bounded.
#[derive(Debug)]
struct Windows<K: Eq + Hash> {
    map: DashMap<K, Window>,
    max: usize,
    /// When a full map was last swept. A `Mutex`: held for one comparison and one store, never
    /// across the sweep.
    last_sweep: Mutex<Option<Instant>>,
    /// `"user names"` or `"addresses"`, for the log.
    what: &'static str,
}

impl<K: Eq + Hash + Clone> Windows<K> {
    fn new(max: usize, what: &'static str) -> Self {
        Self {
            map: DashMap::new(),
            max,
            last_sweep: Mutex::new(None),
            what,
        }
    }

    fn locked_for(&self, key: &K, now: Instant) -> Option<Duration> {
        self.map.get(key).and_then(|w| w.locked_for(now))
    }

    fn hold(&self, key: &K, limits: Limits, now: Instant) -> Option<Hold> {
        self.map.get(key).and_then(|w| w.hold(limits, now))
    }

    /// Reserves a slot for `key`; `Ok(false)` when the map is full and `key` is not tracked.
    fn reserve(&self, key: &K, limits: Limits, now: Instant) -> Result<bool, Hold> {
        // `len` locks every shard: never while holding an entry of this map.
        if !self.map.contains_key(key) && !self.make_room(limits, now) {
            return Ok(false);
        }
        let mut window = self
            .map
            .entry(key.clone())
            .or_insert_with(|| Window::new(now));
        window.reserve(limits, now).map(|()| true)
    }

    /// Whether a new key fits, after sweeping out stale windows if the map is full.
    fn make_room(&self, limits: Limits, now: Instant) -> bool {
        if self.map.len() < self.max {
            return true;
        }
        let due = {
            let mut last = self
                .last_sweep
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let due = last.is_none_or(|t| now.saturating_duration_since(t) >= EVICTION_INTERVAL);
            if due {
                *last = Some(now);
            }
            due
        };
        if !due {
            return false;
        }
        self.map.retain(|_, w| !w.is_stale(limits, now));
        let room = self.map.len() < self.max;
        if !room {
            tracing::warn!(
                tracked = self.max,
                "the login throttle tracks as many {} as it may; new ones are limited by their \
                 other key only",
                self.what
            );
        }
        room
    }

    /// Frees a slot; with `clear`, also forgets the key's failures and lockout (a success).
    fn release(&self, key: &K, clear: bool) {
        if let Entry::Occupied(mut entry) = self.map.entry(key.clone()) {
            let window = entry.get_mut();
            window.release();
            if clear {
                window.failures = 0;
                window.lock = None;
            }
            if window.is_idle() {
                entry.remove();
            }
        }
    }

    fn fail(&self, key: &K, limits: Limits, now: Instant) -> Option<Duration> {
        self.map
            .entry(key.clone())
            .or_insert_with(|| Window::new(now))
            .fail(limits, now)
    }

    fn purge(&self, limits: Limits, now: Instant) {
        self.map.retain(|_, w| !w.is_stale(limits, now));
    }
}

/// Failed-login bookkeeping, shared across reloads.
#[derive(Debug)]
pub struct LoginThrottle {
    /// By a keyed hash of the user name.
    users: Windows<u64>,
    addrs: Windows<IpAddr>,
    logins: AddrLogins,
    /// Keys the user-name hashes and picks wakers.
    hasher: RandomState,
    wakers: Box<[Notify]>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::with_cap(MAX_TRACKED)
    }
}

impl LoginThrottle {
    /// A throttle tracking at most `max` user names and `max` addresses.
    pub fn with_cap(max: usize) -> Self {
        Self {
            users: Windows::new(max, "user names"),
            addrs: Windows::new(max, "addresses"),
            logins: AddrLogins::default(),
            hasher: RandomState::new(),
            wakers: (0..WAKERS).map(|_| Notify::new()).collect(),
        }
    }

    /// Counts a login in flight on `conn` from `addr`, or refuses it when either has too many
    /// (`inflight.rs`). Call before anything else the login does.
    pub fn admit<'a>(
        &'a self,
        conn: &'a ConnLogins,
        addr: IpAddr,
    ) -> Result<LoginPermit<'a>, TooManyInFlight> {
        self.logins.admit(conn, addr)
    }

    /// Reserves a failure slot for `user` and `addr`, waiting up to `wait` for one to free when
    /// all are taken. Cancel-safe: dropping the future reserves nothing.
    pub async fn reserve(
        &self,
        user: &str,
        addr: IpAddr,
        limits: Limits,
        wait: Duration,
    ) -> Result<Slot<'_>, Refused> {
        let user = self.user_key(user);
        let deadline = tokio::time::Instant::now().checked_add(wait);
        loop {
            // Registered before trying, so a slot freed in between is not missed.
            let mut by_user = pin!(self.waker(user).notified());
            let mut by_addr = pin!(self.waker(addr).notified());
            by_user.as_mut().enable();
            by_addr.as_mut().enable();
            match self.reserve_key(user, addr, limits, Instant::now()) {
                Err(Refused::Full) => {}
                done => return done,
            }
            let woken = async {
                tokio::select! {
                    () = by_user => {}
                    () = by_addr => {}
                }
            };
            let Some(deadline) = deadline else {
                return Err(Refused::Full);
            };
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return Err(Refused::Full);
            }
        }
    }

    /// Reserves a failure slot for `user` and `addr` if one is free now.
    pub fn try_reserve(
        &self,
        user: &str,
        addr: IpAddr,
        limits: Limits,
        now: Instant,
    ) -> Result<Slot<'_>, Refused> {
        self.reserve_key(self.user_key(user), addr, limits, now)
    }

    fn reserve_key(
        &self,
        user: u64,
        addr: IpAddr,
        limits: Limits,
        now: Instant,
    ) -> Result<Slot<'_>, Refused> {
        // Looked at first, without reserving anything: a lockout of either key wins over a full
        // one (waiting would not help), and a full key is refused without taking (and giving
        // back, which wakes waiters) a slot of the other.
        let by_addr = self.addrs.hold(&addr, limits, now);
        let by_user = self.users.hold(&user, limits, now);
        match (by_addr, by_user) {
            (Some(Hold::Locked(d)), _) => return Err(Refused::Locked(Locked::Address(d))),
            (_, Some(Hold::Locked(d))) => return Err(Refused::Locked(Locked::User(d))),
            (Some(Hold::Full), _) | (_, Some(Hold::Full)) => return Err(Refused::Full),
            (None, None) => {}
        }
        let mut slot = Slot {
            throttle: self,
            user,
            addr,
            user_tracked: false,
            addr_tracked: false,
            resolved: false,
        };
        slot.addr_tracked = self
            .addrs
            .reserve(&addr, limits, now)
            .map_err(|hold| refused(hold, Locked::Address))?;
        // On refusal (a race with another login since the look above), dropping `slot` gives
        // the address's slot back.
        slot.user_tracked = self
            .users
            .reserve(&user, limits, now)
            .map_err(|hold| refused(hold, Locked::User))?;
        Ok(slot)
    }

    /// `Err` with the time left when `user` or `addr` is locked out.
    pub fn check(&self, user: &str, addr: IpAddr, now: Instant) -> Result<(), Locked> {
        if let Some(d) = self.addrs.locked_for(&addr, now) {
            return Err(Locked::Address(d));
        }
        if let Some(d) = self.users.locked_for(&self.user_key(user), now) {
            return Err(Locked::User(d));
        }
        Ok(())
    }

    /// Counts a failed login checked without a slot (a slot is reserved and failed at once;
    /// nothing is counted when none is free); returns what got locked by it, if anything.
    pub fn record_failure(
        &self,
        user: &str,
        addr: IpAddr,
        limits: Limits,
        now: Instant,
    ) -> Option<Locked> {
        self.try_reserve(user, addr, limits, now)
            .ok()
            .and_then(|slot| slot.fail(limits, now))
    }

    /// A successful login clears the user's count (the address keeps its own).
    pub fn record_success(&self, user: &str) {
        let user = self.user_key(user);
        if let Entry::Occupied(mut entry) = self.users.map.entry(user) {
            let window = entry.get_mut();
            window.failures = 0;
            window.lock = None;
            if window.is_idle() {
                entry.remove();
            }
        }
    }

    /// Forgets windows that have run out (and any key with nothing left to remember).
    pub fn purge(&self, limits: Limits, now: Instant) {
        self.users.purge(limits, now);
        self.addrs.purge(limits, now);
    }

    /// How many keys are tracked: user names, addresses, and addresses with logins in flight.
    pub fn len(&self) -> usize {
        self.users.map.len() + self.addrs.map.len() + self.logins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn user_key(&self, user: &str) -> u64 {
        self.hasher.hash_one(user)
    }

    fn waker(&self, key: impl Hash) -> &Notify {
        // The remainder is below `WAKERS`, so it fits a `usize`.
        &self.wakers[(self.hasher.hash_one(key) % WAKERS as u64) as usize]
    }
}

fn refused(hold: Hold, locked: fn(Duration) -> Locked) -> Refused {
    match hold {
        Hold::Locked(d) => Refused::Locked(locked(d)),
        Hold::Full => Refused::Full,
    }
}

/// A reserved failure slot: resolve it with [`Slot::succeed`] or [`Slot::fail`]; dropping it
/// unresolved (the login was cancelled, or failed for another reason than the password) frees it
/// without counting anything.
#[derive(Debug)]
#[must_use = "the slot is held until it is resolved or dropped"]
pub struct Slot<'a> {
    throttle: &'a LoginThrottle,
    user: u64,
    addr: IpAddr,
    /// Whether each key holds a slot (it does unless its map was full).
    user_tracked: bool,
    addr_tracked: bool,
    resolved: bool,
}

impl Slot<'_> {
    /// The password was right: frees the slot and clears the user's failures.
    pub fn succeed(mut self) {
        self.resolved = true;
        let t = self.throttle;
        if self.addr_tracked {
            t.addrs.release(&self.addr, false);
        }
        if self.user_tracked {
            t.users.release(&self.user, true);
        }
    }

    /// The password was wrong: the slot becomes a counted failure. Returns what got locked by
    /// this failure, if anything.
    pub fn fail(mut self, limits: Limits, now: Instant) -> Option<Locked> {
        self.resolved = true;
        let t = self.throttle;
        let by_addr = self
            .addr_tracked
            .then(|| t.addrs.fail(&self.addr, limits, now))
            .flatten()
            .map(Locked::Address);
        let by_user = self
            .user_tracked
            .then(|| t.users.fail(&self.user, limits, now))
            .flatten()
            .map(Locked::User);
        by_addr.or(by_user)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let t = self.throttle;
        if !self.resolved {
            if self.addr_tracked {
                t.addrs.release(&self.addr, false);
            }
            if self.user_tracked {
                t.users.release(&self.user, false);
            }
        }
        // Resolved or not, the keys changed: logins waiting for them look again.
        t.waker(self.user).notify_waiters();
        t.waker(self.addr).notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use super::*;

    const LIMITS: Limits = Limits {
        max_failures: 3,
        window: Duration::from_secs(60),
        lockout: Duration::from_secs(30),
    };

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }

    #[test]
    fn locks_after_max_failures_until_lockout_passes() {
        let t = LoginThrottle::default();
        let other_ip = ip(1);
        let now = Instant::now();
        assert_eq!(t.record_failure("a", IP, LIMITS, now), None);
        assert_eq!(t.record_failure("a", IP, LIMITS, now), None);
        assert!(t.check("a", IP, now).is_ok());
        assert_eq!(
            t.record_failure("a", IP, LIMITS, now),
            Some(Locked::Address(LIMITS.lockout))
        );
        assert!(matches!(t.check("a", IP, now), Err(Locked::Address(_))));
        assert!(
            matches!(t.check("a", other_ip, now), Err(Locked::User(_))),
            "per user too"
        );
        assert!(t.check("b", other_ip, now).is_ok());
        assert!(matches!(
            t.try_reserve("a", other_ip, LIMITS, now),
            Err(Refused::Locked(Locked::User(_)))
        ));
        let later = now + LIMITS.lockout;
        assert!(t.check("a", IP, later).is_ok());
        assert_eq!(
            t.record_failure("a", IP, LIMITS, later),
            None,
            "a new window starts"
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        t.record_failure("a", IP, LIMITS, now);
        t.record_failure("a", IP, LIMITS, now);
        let later = now + LIMITS.window + Duration::from_secs(1);
        assert_eq!(t.record_failure("a", IP, LIMITS, later), None);
        t.purge(LIMITS, later + LIMITS.window + Duration::from_secs(1));
        assert!(t.is_empty());
    }

    #[test]
    fn success_clears_the_user_count() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        t.record_failure("a", IP, LIMITS, now);
        t.record_failure("a", IP, LIMITS, now);
        t.try_reserve("a", ip(2), LIMITS, now).unwrap().succeed();
        assert_eq!(t.record_failure("a", ip(3), LIMITS, now), None);
        assert_eq!(t.record_failure("a", ip(3), LIMITS, now), None);
        // The address kept its two failures: the third locks it.
        assert_eq!(
            t.record_failure("b", IP, LIMITS, now),
            Some(Locked::Address(LIMITS.lockout))
        );
    }

    #[test]
    fn guesses_in_flight_take_the_slots_of_the_user_and_of_the_address() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        let held: Vec<_> = (1..=3)
            .map(|n| t.try_reserve("a", ip(n), LIMITS, now).unwrap())
            .collect();
        assert_eq!(
            t.try_reserve("a", ip(4), LIMITS, now).unwrap_err(),
            Refused::Full,
            "the user's 3 slots are taken"
        );
        let from_one: Vec<_> = ["b", "c"]
            .map(|u| t.try_reserve(u, ip(1), LIMITS, now).unwrap())
            .into();
        assert_eq!(
            t.try_reserve("d", ip(1), LIMITS, now).unwrap_err(),
            Refused::Full,
            "the address's 3 slots are taken"
        );
        // Two guesses fail, one succeeds: the user's failures are cleared, the addresses keep
        // theirs.
        let mut held = held.into_iter();
        assert_eq!(held.next().unwrap().fail(LIMITS, now), None);
        assert_eq!(held.next().unwrap().fail(LIMITS, now), None);
        held.next().unwrap().succeed();
        assert!(t.try_reserve("a", ip(4), LIMITS, now).is_ok());
        // ip(1) now has one failure and two guesses in flight: the failure takes a slot.
        assert_eq!(
            t.try_reserve("d", ip(1), LIMITS, now).unwrap_err(),
            Refused::Full
        );
        drop(from_one);
        assert!(t.try_reserve("d", ip(1), LIMITS, now).is_ok());
    }

    #[test]
    fn a_cancelled_guess_frees_its_slot_and_leaves_nothing_behind() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        let slots: Vec<_> = (0..3)
            .map(|_| t.try_reserve("a", IP, LIMITS, now).unwrap())
            .collect();
        assert_eq!(t.len(), 2, "one user name and one address");
        drop(slots);
        assert!(t.is_empty(), "in-flight bookkeeping is removed at zero");
        for _ in 0..3 {
            t.try_reserve("a", IP, LIMITS, now).unwrap().succeed();
        }
        assert!(t.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_login_gets_the_slot_a_success_frees_or_the_lockout_a_failure_starts() {
        let t = Arc::new(LoginThrottle::default());
        let now = Instant::now();
        let mut held: Vec<_> = (0..3)
            .map(|_| t.try_reserve("a", IP, LIMITS, now).unwrap())
            .collect();
        let wait = Duration::from_secs(5);
        let waiter = {
            let t = t.clone();
            tokio::spawn(
                async move { t.reserve("a", ip(9), LIMITS, wait).await.map(Slot::succeed) },
            )
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "no slot is free");
        held.pop().unwrap().succeed();
        assert_eq!(waiter.await.unwrap(), Ok(()));

        let waiter = {
            let t = t.clone();
            tokio::spawn(async move { t.reserve("a", ip(9), LIMITS, wait).await.map(drop) })
        };
        held.push(t.try_reserve("a", IP, LIMITS, now).unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        let now = Instant::now();
        for slot in held {
            slot.fail(LIMITS, now);
        }
        assert!(matches!(
            waiter.await.unwrap(),
            Err(Refused::Locked(Locked::Address(_) | Locked::User(_)))
        ));
    }

    #[tokio::test]
    async fn a_waiting_login_gives_up_after_the_wait() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        let _held: Vec<_> = (0..3)
            .map(|_| t.try_reserve("a", IP, LIMITS, now).unwrap())
            .collect();
        let started = tokio::time::Instant::now();
        let wait = Duration::from_millis(50);
        assert_eq!(
            t.reserve("a", ip(9), LIMITS, wait).await.unwrap_err(),
            Refused::Full
        );
        assert!(started.elapsed() >= wait);
    }

    #[test]
    fn purge_shrinks_the_maps() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for n in 0..50 {
            t.record_failure(&format!("user-{n}"), ip(n), LIMITS, now);
        }
        assert_eq!(t.len(), 100);
        let conn = ConnLogins::default();
        let permit = t.admit(&conn, IP).unwrap();
        assert_eq!(t.len(), 101);
        t.purge(LIMITS, now + Duration::from_secs(1));
        assert_eq!(t.len(), 101, "the windows are still running");
        t.purge(LIMITS, now + LIMITS.window + Duration::from_secs(1));
        assert_eq!(t.len(), 1, "only the login in flight is left");
        drop(permit);
        assert!(t.is_empty());
    }

    #[test]
    fn a_running_lockout_outlives_the_window_in_purge() {
        let long = Limits {
            lockout: LIMITS.window * 3,
            ..LIMITS
        };
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..3 {
            t.record_failure("a", IP, long, now);
        }
        t.purge(long, now + LIMITS.window * 2);
        assert!(t.check("a", ip(1), now + LIMITS.window * 2).is_err());
        t.purge(long, now + LIMITS.window * 3);
        assert!(t.is_empty());
    }

    #[test]
    fn the_cap_on_tracked_names_holds_and_stale_windows_go_first() {
        let t = LoginThrottle::with_cap(3);
        let now = Instant::now();
        for (n, addr) in [ip(0), ip(0), ip(1)].into_iter().enumerate() {
            t.record_failure(&format!("user-{n}"), addr, LIMITS, now);
        }
        assert_eq!(t.users.map.len(), 3);
        // Full: a new name is not tracked, but its address still counts its guesses.
        assert_eq!(t.record_failure("new", IP, LIMITS, now), None);
        assert_eq!(t.record_failure("new", IP, LIMITS, now), None);
        assert_eq!(
            t.record_failure("new", IP, LIMITS, now),
            Some(Locked::Address(LIMITS.lockout)),
            "the address locks"
        );
        assert_eq!(t.users.map.len(), 3, "the cap holds");
        assert!(t.check("new", ip(9), now).is_ok(), "not tracked by name");
        for n in 0..100 {
            let _ = t.try_reserve(&format!("flood-{n}"), ip(2), LIMITS, now);
        }
        assert_eq!(t.users.map.len(), 3, "the cap holds");
        // Once the windows ran out, a new name evicts them and is tracked.
        let later = now + LIMITS.lockout.max(LIMITS.window) + Duration::from_secs(1);
        assert_eq!(t.record_failure("late", ip(3), LIMITS, later), None);
        assert_eq!(t.users.map.len(), 1);
        assert!(t.users.map.contains_key(&t.user_key("late")));
    }

    #[test]
    fn the_cap_on_tracked_addresses_holds() {
        let t = LoginThrottle::with_cap(2);
        let now = Instant::now();
        let many = Limits {
            max_failures: 100,
            ..LIMITS
        };
        for n in 0..10 {
            t.record_failure("a", ip(n), many, now);
        }
        assert_eq!(t.addrs.map.len(), 2, "the cap holds");
        let failures = t.users.map.get(&t.user_key("a")).map(|w| w.failures);
        assert_eq!(failures, Some(10), "the user name still counts every guess");
    }

    #[test]
    fn a_huge_lockout_does_not_overflow() {
        let huge = Limits {
            max_failures: 1,
            window: Duration::from_secs(999_999_999_999 * 86_400),
            lockout: Duration::from_secs(999_999_999_999 * 86_400),
        };
        let t = LoginThrottle::default();
        let now = Instant::now();
        assert_eq!(
            t.record_failure("a", IP, huge, now),
            Some(Locked::Address(huge.lockout))
        );
        let left = t.check("a", IP, now + Duration::from_secs(1)).unwrap_err();
        assert!(left.retry_after() > Duration::from_secs(86_400 * 365));
        t.purge(huge, now);
        assert_eq!(t.len(), 2, "still locked");
        let max = Limits {
            window: Duration::MAX,
            lockout: Duration::MAX,
            ..huge
        };
        assert!(t.record_failure("b", ip(1), max, now).is_some());
        t.purge(max, now);
    }
}
