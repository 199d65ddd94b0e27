//! Round robin over a route's upstreams, skipping the ones that recently failed to connect
//! (passive health). When every upstream is marked down, the rotation goes on regardless: a
//! marked-down upstream may have come back, and refusing outright would turn a blip into an
//! outage.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::uri::{Authority, Scheme};
use http::HeaderValue;

/// How long an upstream that failed to connect is skipped.
pub(super) const COOLDOWN: Duration = Duration::from_secs(10);

/// One upstream URL of a route.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) scheme: Scheme,
    pub(super) authority: Authority,
    /// The URL's path without a trailing `/` (`""` for the root).
    pub(super) base_path: String,
    /// The `Host` of an HTTP/1.1 request to it that does not keep the client's: its
    /// authority, without the scheme's default port, as hyper-util's client and curl write it.
    pub(super) host: HeaderValue,
    /// Its place among the route's targets (for per-target state such as idle connections).
    pub(super) index: usize,
    /// Milliseconds after `Balancer::epoch` until which this target is skipped; 0 = healthy.
    down_until: AtomicU64,
}

impl Target {
    /// The port to connect to: the URL's, or the scheme's default.
    pub(super) fn port(&self) -> u16 {
        self.authority
            .port_u16()
            .unwrap_or(default_port(&self.scheme))
    }

    pub(super) fn new(uri: &http::Uri) -> Option<Self> {
        let (scheme, authority) = (uri.scheme()?, uri.authority()?);
        let host = if authority.port_u16() == Some(default_port(scheme)) {
            authority.host()
        } else {
            authority.as_str()
        };
        Some(Self {
            scheme: scheme.clone(),
            authority: authority.clone(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            host: HeaderValue::from_str(host).ok()?,
            index: 0,
            down_until: AtomicU64::new(0),
        })
    }
}

fn default_port(scheme: &Scheme) -> u16 {
    if *scheme == Scheme::HTTPS {
        443
    } else {
        80
    }
}

/// The upstreams of one route and the round-robin cursor.
#[derive(Debug)]
pub(super) struct Balancer {
    targets: Vec<Target>,
    next: AtomicUsize,
    epoch: Instant,
}

impl Balancer {
    /// `None` for an empty list.
    pub(super) fn new(mut targets: Vec<Target>) -> Option<Self> {
        for (index, target) in targets.iter_mut().enumerate() {
            target.index = index;
        }
        (!targets.is_empty()).then(|| Self {
            targets,
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
        })
    }

    /// The next healthy target in rotation, or simply the next one if none is healthy.
    pub(super) fn pick(&self) -> &Target {
        let n = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        (0..n)
            .map(|i| &self.targets[(start + i) % n])
            .find(|t| t.down_until.load(Ordering::Relaxed) <= now)
            .unwrap_or(&self.targets[start % n])
    }

    /// Another healthy target than `failed`, for one retry; `None` if there is none.
    pub(super) fn other_than(&self, failed: &Target) -> Option<&Target> {
        let now = self.now_ms();
        self.targets
            .iter()
            .find(|t| !std::ptr::eq(*t, failed) && t.down_until.load(Ordering::Relaxed) <= now)
    }

    /// Each target's URL and whether it is in rotation now.
    pub(super) fn health(&self) -> impl Iterator<Item = (String, bool)> + '_ {
        let now = self.now_ms();
        self.targets.iter().map(move |t| {
            let url = format!("{}://{}{}", t.scheme, t.authority, t.base_path);
            (url, t.down_until.load(Ordering::Relaxed) <= now)
        })
    }

    /// How many targets there are.
    pub(super) fn len(&self) -> usize {
        self.targets.len()
    }

    /// Skips `target` for the cooldown.
    pub(super) fn mark_down(&self, target: &Target) {
        let until = self.now_ms() + COOLDOWN.as_millis() as u64;
        target.down_until.store(until, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        // At least 1, so that a fresh target (0) always counts as healthy.
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_leaves_out_only_the_schemes_default_port() {
        for (url, host) in [
            ("http://api.internal:80/base", "api.internal"),
            ("https://api.internal:443", "api.internal"),
            ("http://api.internal", "api.internal"),
            ("http://127.0.0.1:8080", "127.0.0.1:8080"),
            ("https://api.internal:80", "api.internal:80"),
            ("http://[::1]:443", "[::1]:443"),
        ] {
            let target = Target::new(&url.parse().unwrap()).unwrap();
            assert_eq!(target.host, host, "{url}");
        }
    }

    fn balancer(n: usize) -> Balancer {
        let targets = (0..n)
            .map(|i| {
                Target::new(&format!("http://127.0.0.1:{}", 9000 + i).parse().unwrap()).unwrap()
            })
            .collect();
        Balancer::new(targets).unwrap()
    }

    fn port(t: &Target) -> u16 {
        t.authority.port_u16().unwrap()
    }

    #[test]
    fn round_robin_skips_marked_down_targets() {
        let b = balancer(3);
        let picks: Vec<u16> = (0..6).map(|_| port(b.pick())).collect();
        assert_eq!(picks, [9000, 9001, 9002, 9000, 9001, 9002]);
        b.mark_down(&b.targets[1]);
        let picks: Vec<u16> = (0..4).map(|_| port(b.pick())).collect();
        assert!(!picks.contains(&9001), "{picks:?}");
        assert_eq!(port(b.other_than(&b.targets[0]).unwrap()), 9002);
        let health: Vec<(String, bool)> = b.health().collect();
        assert_eq!(
            health,
            [
                ("http://127.0.0.1:9000".to_owned(), true),
                ("http://127.0.0.1:9001".to_owned(), false),
                ("http://127.0.0.1:9002".to_owned(), true),
            ]
        );
    }

    #[test]
    fn with_every_target_down_the_rotation_goes_on() {
        let b = balancer(2);
        b.mark_down(&b.targets[0]);
        b.mark_down(&b.targets[1]);
        let picks: Vec<u16> = (0..2).map(|_| port(b.pick())).collect();
        assert_eq!(picks.len(), 2);
        assert!(b.other_than(&b.targets[0]).is_none());
    }
}
