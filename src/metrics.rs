//! Prometheus metrics (SPEC §4.4): the registry and typed handles, shared across reloads.
//!
//! Label values come from our own vocabulary (route names from the configuration, status
//! codes, fixed reason and kind names), never from request data, so the series count is bounded.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::config::Endpoint;

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: Arc<str>,
    pub status: u16,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: Arc<str>,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct Grant {
    pub grant: &'static str,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct ErrorCode {
    pub error: &'static str,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct UpstreamError {
    pub route: Arc<str>,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct Build {
    pub version: &'static str,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct ReloadResult {
    pub result: &'static str,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct CacheResult {
    pub result: &'static str,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct LockoutKind {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct UpstreamTarget {
    pub route: Arc<str>,
    pub upstream: String,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct WorkerLabel {
    pub worker: u16,
}

/// Every metric family of SPEC §4.4.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteStatus, Counter>,
    pub duration: Family<RouteLabel, Histogram>,
    pub auth_failures: Family<Reason, Counter>,
    pub tokens_issued: Family<Grant, Counter>,
    pub token_errors: Family<ErrorCode, Counter>,
    pub upstream_errors: Family<UpstreamError, Counter>,
    pub open_connections: Gauge,
    /// Connections each request-path worker accepted: how evenly the kernel spreads them.
    pub accepted: Family<WorkerLabel, Counter>,
    pub active_sessions: Gauge,
    /// SIGHUP reloads by result, `success` or `failure`.
    pub reloads: Family<ReloadResult, Counter>,
    /// When the configuration in force was loaded (start or reload), Unix seconds.
    pub last_reload_success: Gauge<f64, AtomicU64>,
    /// Access-token checks answered from the verified-token cache (`hit`) or by a signature
    /// check (`miss`).
    pub token_cache: Family<CacheResult, Counter>,
    /// Locks a run of failed logins put on a `user` or an `address`.
    pub lockouts: Family<LockoutKind, Counter>,
    /// Logins admitted to the hashing pool, waiting or hashing; set at each scrape.
    pub login_queue: Gauge,
    /// 1 while an upstream is in rotation, 0 while it is skipped after failing to connect; set
    /// at each scrape from the current configuration's routes.
    pub upstream_up: Family<UpstreamTarget, Gauge>,
    /// The handles of each of the gateway's own endpoints, by `Endpoint as usize`.
    endpoints: [Arc<RouteMetrics>; Endpoint::ALL.len()],
    /// The handles of requests that matched no route.
    unmatched: Arc<RouteMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        // The process's own families (`process_*`) have no prefix; ours are `portcullis_*`.
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        let build = Family::<Build, Gauge>::default();
        build
            .get_or_create(&Build {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        let reloads = Family::<ReloadResult, Counter>::default();
        let last_reload_success = Gauge::<f64, AtomicU64>::default();
        let registry = root.sub_registry_with_prefix("portcullis");
        registry.register("build_info", "The running version (always 1)", build);
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP) by result",
            reloads.clone(),
        );
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the configuration in force was loaded, at start or by a reload",
            last_reload_success.clone(),
        );
        let requests = Family::<RouteStatus, Counter>::default();
        let duration = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            // 100 µs to ~52 s.
            Histogram::new(exponential_buckets(0.000_1, 2.0, 20))
        });
        let auth_failures = Family::<Reason, Counter>::default();
        let tokens_issued = Family::<Grant, Counter>::default();
        let token_errors = Family::<ErrorCode, Counter>::default();
        let upstream_errors = Family::<UpstreamError, Counter>::default();
        let open_connections = Gauge::default();
        let accepted = Family::<WorkerLabel, Counter>::default();
        let active_sessions = Gauge::default();
        let token_cache = Family::<CacheResult, Counter>::default();
        let lockouts = Family::<LockoutKind, Counter>::default();
        let login_queue = Gauge::default();
        let upstream_up = Family::<UpstreamTarget, Gauge>::default();
        registry.register(
            "token_cache",
            "Access-token checks by verified-token cache result",
            token_cache.clone(),
        );
        registry.register(
            "login_lockouts",
            "Lockouts after failed logins, by what was locked",
            lockouts.clone(),
        );
        registry.register(
            "login_queue_depth",
            "Logins waiting for or running a password hash",
            login_queue.clone(),
        );
        registry.register(
            "upstream_up",
            "Whether an upstream is in rotation (1) or skipped after a failed connect (0)",
            upstream_up.clone(),
        );
        registry.register("requests", "Requests served", requests.clone());
        registry.register(
            "request_duration_seconds",
            "Time from request head to response head",
            duration.clone(),
        );
        registry.register(
            "auth_failures",
            "Refused tokens by reason",
            auth_failures.clone(),
        );
        registry.register(
            "tokens_issued",
            "Token pairs issued by grant",
            tokens_issued.clone(),
        );
        registry.register(
            "token_errors",
            "Token endpoint errors by code",
            token_errors.clone(),
        );
        registry.register(
            "upstream_errors",
            "Failed upstream calls by kind",
            upstream_errors.clone(),
        );
        registry.register(
            "open_connections",
            "Open client connections",
            open_connections.clone(),
        );
        registry.register(
            "connections_accepted",
            "Client connections accepted, by request-path worker",
            accepted.clone(),
        );
        registry.register("active_sessions", "Live sessions", active_sessions.clone());
        let per_route = |label: &str| {
            Arc::new(RouteMetrics::counting_into(
                label.into(),
                &requests,
                &duration,
            ))
        };
        let endpoints = Endpoint::ALL.map(|e| per_route(e.name()));
        let unmatched = per_route("unmatched");
        Self {
            registry: root,
            requests,
            duration,
            auth_failures,
            tokens_issued,
            token_errors,
            upstream_errors,
            open_connections,
            accepted,
            active_sessions,
            reloads,
            last_reload_success,
            token_cache,
            lockouts,
            login_queue,
            upstream_up,
            endpoints,
            unmatched,
        }
    }
}

impl Metrics {
    /// Counts a reload; a successful one at `now` (Unix seconds) also sets the timestamp.
    pub fn reloaded(&self, ok: bool, now: u64) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ReloadResult { result }).inc();
        if ok {
            self.loaded(now);
        }
    }

    /// The configuration in force was loaded at `now` (Unix seconds).
    pub fn loaded(&self, now: u64) {
        self.last_reload_success.set(now as f64);
    }

    /// The `hit` and `miss` counters of the verified-token cache; take them once per snapshot.
    pub fn token_cache_counters(&self) -> CacheCounters {
        let counter = |result| {
            self.token_cache
                .get_or_create(&CacheResult { result })
                .clone()
        };
        CacheCounters {
            hits: counter("hit"),
            misses: counter("miss"),
        }
    }

    /// The counter of connections worker `worker` accepts; take it once per worker.
    pub fn accepted_by(&self, worker: usize) -> Counter {
        let worker = u16::try_from(worker).unwrap_or(u16::MAX);
        self.accepted.get_or_create(&WorkerLabel { worker }).clone()
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }

    /// The handles of the route named `label`; take them once per snapshot.
    pub fn route(&self, label: Arc<str>) -> RouteMetrics {
        RouteMetrics::counting_into(label, &self.requests, &self.duration)
    }

    /// The handles of the gateway's own `endpoint` (its label is the endpoint's name).
    pub fn endpoint(&self, endpoint: Endpoint) -> &Arc<RouteMetrics> {
        &self.endpoints[endpoint as usize]
    }

    /// The handles of requests that matched no route (label `unmatched`).
    pub fn unmatched(&self) -> &Arc<RouteMetrics> {
        &self.unmatched
    }

    /// Counts a refused token; `reason` is the error's own label (`AuthError::reason`).
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures.get_or_create(&Reason { reason }).inc();
    }
}

/// Handles on `portcullis_token_cache_total`, resolved once so that a check only increments.
/// The default ones count into nothing registered (a snapshot that is never served, `check`).
#[derive(Clone, Debug, Default)]
pub struct CacheCounters {
    pub hits: Counter,
    pub misses: Counter,
}

/// The per-request families: `requests_total` and `request_duration_seconds`.
type Requests = Family<RouteStatus, Counter>;
type Durations = Family<RouteLabel, Histogram>;

/// One route label's handles in the families every request counts into (`requests_total` by
/// status, `request_duration_seconds`), so that a request counts itself without hashing its
/// label into the families' maps (a `get_or_create` per family per request).
///
/// Each handle is resolved at its first use, so that a route nobody called has no series,
/// as before. Status counters are kept per hundred: a class's 100 slots (1.6 KiB) are
/// allocated when the route first answers with a status of that class; a status above 599
/// (valid, rare, and only from an upstream) is looked up in the family each time. The
/// handles share the families' series, so a reload that builds them anew counts on where the
/// last snapshot stopped. Built [`RouteMetrics::detached`], they count into nothing.
#[derive(Debug)]
pub struct RouteMetrics {
    label: Arc<str>,
    /// `None` when detached.
    families: Option<(Requests, Durations)>,
    duration: OnceLock<Histogram>,
    /// Classes 1xx to 5xx.
    by_status: [OnceLock<Box<[OnceLock<Counter>; 100]>>; 5],
}

impl RouteMetrics {
    /// Handles that count into nothing registered: a snapshot that is not serving (`check`,
    /// unit tests) until [`Metrics::route`] replaces them.
    pub fn detached(label: Arc<str>) -> Self {
        Self {
            label,
            families: None,
            duration: OnceLock::new(),
            by_status: Default::default(),
        }
    }

    fn counting_into(label: Arc<str>, requests: &Requests, durations: &Durations) -> Self {
        Self {
            families: Some((requests.clone(), durations.clone())),
            ..Self::detached(label)
        }
    }

    /// The label: the route's name, the endpoint's, or `unmatched`.
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    /// Counts one request answered with `status` after `elapsed`.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let Some((requests, durations)) = &self.families else {
            return;
        };
        let duration = self.duration.get_or_init(|| {
            let route = self.label.clone();
            durations.get_or_create(&RouteLabel { route }).clone()
        });
        duration.observe(elapsed.as_secs_f64());
        let resolve = || {
            let route = self.label.clone();
            requests
                .get_or_create(&RouteStatus { route, status })
                .clone()
        };
        let class = usize::from(status / 100).checked_sub(1);
        match class.and_then(|class| self.by_status.get(class)) {
            Some(class) => {
                let slots =
                    class.get_or_init(|| Box::new(std::array::from_fn(|_| OnceLock::new())));
                slots[usize::from(status % 100)].get_or_init(resolve).inc();
            }
            None => {
                resolve().inc();
            }
        }
    }
}

/// `process_*` as Prometheus's client libraries name them, read from `/proc` at each scrape
/// (elsewhere than Linux: none).
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(p) = ProcessStats::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu_seconds);
        let descriptor = encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?;
        cpu.encode(descriptor)?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                p.resident_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                p.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                p.start_time,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            let descriptor = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(descriptor)?;
        }
        Ok(())
    }
}

/// What `/proc` says about this process.
#[derive(Debug, PartialEq)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: f64,
    open_fds: f64,
    max_fds: f64,
    start_time: f64,
}

/// Clock ticks per second in `/proc/*/stat`: `USER_HZ`, 100 on every Linux architecture.
const USER_HZ: f64 = 100.0;

impl ProcessStats {
    fn read() -> Option<Self> {
        let read = |path| std::fs::read_to_string(path).ok();
        Self::parse(
            &read("/proc/self/stat")?,
            &read("/proc/self/status")?,
            &read("/proc/self/limits")?,
            &read("/proc/stat")?,
            std::fs::read_dir("/proc/self/fd").ok()?.count(),
        )
    }

    fn parse(stat: &str, status: &str, limits: &str, system: &str, fds: usize) -> Option<Self> {
        // After the command name, which may hold spaces and parentheses: field 3 on.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let boot: f64 = system
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let rss_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        let max_fds = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|soft| soft.parse().ok())
            .unwrap_or(f64::INFINITY);
        Some(Self {
            cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
            resident_bytes: rss_kib * 1024.0,
            open_fds: fds as f64,
            max_fds,
            start_time: boot + field(22)? / USER_HZ,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `requests_total` and `request_duration_seconds` lines of `route` in `text`.
    fn route_lines(text: &str, route: &str) -> Vec<String> {
        let label = format!("route=\"{route}\"");
        (text.lines())
            .filter(|l| {
                l.contains(&label) && (l.contains("requests_total") || l.contains("_count"))
            })
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn route_handles_count_into_the_families_and_survive_a_reload() {
        let metrics = Metrics::default();
        assert!(
            route_lines(&metrics.render(), "api").is_empty(),
            "no series before use"
        );
        let api = metrics.route("api".into());
        for status in [200, 200, 404, 999] {
            api.observe(status, Duration::from_millis(3));
        }
        // A reload resolves the handles anew; they count on in the same series.
        let reloaded = metrics.route("api".into());
        reloaded.observe(200, Duration::from_millis(3));
        let mut lines = route_lines(&metrics.render(), "api");
        lines.sort();
        assert_eq!(
            lines,
            [
                "portcullis_request_duration_seconds_count{route=\"api\"} 5",
                "portcullis_requests_total{route=\"api\",status=\"200\"} 3",
                "portcullis_requests_total{route=\"api\",status=\"404\"} 1",
                "portcullis_requests_total{route=\"api\",status=\"999\"} 1",
            ]
        );
        // The endpoints' and the unmatched requests' handles are the same families'.
        metrics
            .endpoint(Endpoint::Token)
            .observe(400, Duration::ZERO);
        metrics.unmatched().observe(404, Duration::ZERO);
        let text = metrics.render();
        assert!(text.contains("portcullis_requests_total{route=\"token\",status=\"400\"} 1"));
        assert!(text.contains("portcullis_requests_total{route=\"unmatched\",status=\"404\"} 1"));
    }

    #[test]
    fn detached_route_handles_count_nothing() {
        let metrics = Metrics::default();
        let detached = RouteMetrics::detached("api".into());
        detached.observe(200, Duration::from_millis(1));
        assert_eq!(detached.label().as_ref(), "api");
        assert!(route_lines(&metrics.render(), "api").is_empty());
    }

    #[test]
    fn process_stats_come_from_the_proc_files() {
        let stat = "4242 (a (odd) name) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 \
                    9 0 123400 1000000 300 18446744073709551615";
        let status = "Name:\tportcullis\nVmRSS:\t   20480 kB\nThreads:\t9\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        let system = "cpu  1 2 3\nbtime 1764590000\nprocesses 5\n";
        let p = ProcessStats::parse(stat, status, limits, system, 12).unwrap();
        assert_eq!(
            p,
            ProcessStats {
                cpu_seconds: 3.0,
                resident_bytes: 20480.0 * 1024.0,
                open_fds: 12.0,
                max_fds: 1024.0,
                start_time: 1764590000.0 + 1234.0,
            }
        );
        assert!(ProcessStats::parse("garbage", status, limits, system, 1).is_none());
        // This process's own files parse.
        assert!(ProcessStats::read().is_some_and(|p| p.resident_bytes > 0.0 && p.open_fds > 0.0));
    }
}
