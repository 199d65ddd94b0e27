//! Prometheus metrics (SPEC §4.4): the registry and typed handles, shared across reloads.
//!
//! Label values come from our own vocabulary (route names from the configuration, status
//! codes, fixed reason and kind names), never from request data, so the series count is bounded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
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
    pub route: String,
    pub kind: &'static str,
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
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
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
        Self {
            registry,
            requests,
            duration,
            auth_failures,
            tokens_issued,
            token_errors,
            upstream_errors,
            open_connections,
            accepted,
            active_sessions,
        }
    }
}

impl Metrics {
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

    /// Counts a refused token; `reason` is the error's own label (`AuthError::reason`).
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures.get_or_create(&Reason { reason }).inc();
    }
}
