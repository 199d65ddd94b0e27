//! What a run measured: per-virtual-user tallies (latency histogram, status counts, token
//! operations, errors) merged into one `Report`, rendered as a human summary or one JSON object;
//! and the live progress line on stderr.
//!
//! Does not run anything (`vu.rs`, `mod.rs`) and prints nothing to stdout (`main.rs` does).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use http::StatusCode;
use serde::Serialize;

/// Latencies above this (one minute, in microseconds) are recorded as this.
const MAX_MICROS: u64 = 60_000_000;

/// Latencies of the proxied calls (token operations are not in them), in microseconds, in a few
/// stripes: virtual user `i` records into stripe `i % stripes`.
///
/// A histogram per virtual user would cost ~140 KiB each (3 significant digits up to a minute),
/// so thousands of connections would need hundreds of MiB; a handful of stripes keeps it at a few
/// MiB. Each stripe is a `std::sync::Mutex`: the critical section is one counter increment, never
/// held across an `.await`, and with a few stripes per core it is almost never contended.
#[derive(Debug)]
pub(crate) struct Latencies {
    stripes: Box<[Mutex<Histogram<u64>>]>,
}

impl Latencies {
    /// Four stripes per core.
    #[allow(
        clippy::expect_used,
        reason = "constant bounds that new_with_bounds accepts"
    )]
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let stripes = (0..cores * 4)
            .map(|_| {
                // Constant bounds that `new_with_bounds` accepts (low ≥ 1, high ≥ 2·low).
                Mutex::new(
                    Histogram::new_with_bounds(1, MAX_MICROS, 3)
                        .expect("constant histogram bounds are valid"),
                )
            })
            .collect();
        Self { stripes }
    }

    pub(crate) fn record(&self, stripe: usize, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let mut histogram = self.stripes[stripe % self.stripes.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        histogram.saturating_record(micros.min(MAX_MICROS));
    }

    /// All stripes in one histogram.
    #[allow(
        clippy::expect_used,
        reason = "constant bounds, the same on both sides of add"
    )]
    pub(crate) fn merged(&self) -> Histogram<u64> {
        let mut all = Histogram::new_with_bounds(1, MAX_MICROS, 3)
            .expect("constant histogram bounds are valid");
        for stripe in &self.stripes {
            let stripe = stripe.lock().unwrap_or_else(PoisonError::into_inner);
            // Same bounds on both sides, so adding cannot fail.
            all.add(&*stripe)
                .expect("histograms with equal bounds add up");
        }
        all
    }
}

/// What one virtual user counted besides latencies. Only its own task touches it; tallies are
/// merged once, at the end.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    status: BTreeMap<u16, u64>,
    pub(crate) logins: u64,
    pub(crate) refreshes: u64,
    pub(crate) errors: u64,
}

impl Tally {
    /// One proxied call answered with `status`.
    pub(crate) fn record(&mut self, status: StatusCode) {
        *self.status.entry(status.as_u16()).or_insert(0) += 1;
    }

    pub(crate) fn merge(&mut self, other: &Tally) {
        for (code, n) in &other.status {
            *self.status.entry(*code).or_insert(0) += n;
        }
        self.logins += other.logins;
        self.refreshes += other.refreshes;
        self.errors += other.errors;
    }
}

/// Counters read by the progress line while the run goes on (relaxed atomics: a progress line
/// may lag by a request).
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) requests: AtomicU64,
    pub(crate) errors: AtomicU64,
}

/// The result of a run.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) url: String,
    pub(crate) http2: bool,
    pub(crate) connections: u32,
    /// The measured window: from the start signal (every virtual user logged in) to the end.
    pub(crate) elapsed: Duration,
    /// Microseconds per proxied call.
    pub(crate) latency: Histogram<u64>,
    pub(crate) tally: Tally,
}

impl Report {
    fn requests(&self) -> u64 {
        self.latency.len()
    }

    fn percentile_ms(&self, quantile: f64) -> f64 {
        ms(self.latency.value_at_quantile(quantile))
    }

    fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests() as f64 / secs
        } else {
            0.0
        }
    }

    /// The `--json` object (SPEC §6).
    pub(crate) fn json(&self) -> String {
        let t = &self.tally;
        let json = JsonReport {
            duration_s: round(self.elapsed.as_secs_f64(), 3),
            requests: self.requests(),
            throughput_rps: round(self.throughput(), 1),
            latency_ms: JsonLatency {
                p50: self.percentile_ms(0.5),
                p90: self.percentile_ms(0.9),
                p99: self.percentile_ms(0.99),
                p999: self.percentile_ms(0.999),
                max: ms(self.latency.max()),
            },
            status: &t.status,
            logins: t.logins,
            refreshes: t.refreshes,
            errors: t.errors,
        };
        // Plain structs of numbers and a map with integer keys always serialize.
        serde_json::to_string(&json).unwrap_or_default()
    }
}

/// The human summary.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tally;
        let protocol = if self.http2 { "HTTP/2" } else { "HTTP/1.1" };
        writeln!(
            f,
            "{} ({protocol}, {} connections, {:.1} s)",
            self.url,
            self.connections,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  requests   {} ({:.1} req/s)",
            self.requests(),
            self.throughput()
        )?;
        writeln!(
            f,
            "  latency    p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
            self.percentile_ms(0.5),
            self.percentile_ms(0.9),
            self.percentile_ms(0.99),
            self.percentile_ms(0.999),
            ms(self.latency.max())
        )?;
        let status: Vec<String> = t.status.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        let status = if status.is_empty() {
            "-".to_owned()
        } else {
            status.join(", ")
        };
        writeln!(f, "  status     {status}")?;
        writeln!(
            f,
            "  tokens     {} logins, {} refreshes",
            t.logins, t.refreshes
        )?;
        writeln!(
            f,
            "  errors     {} (transport failures without an HTTP status)",
            t.errors
        )
    }
}

#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    duration_s: f64,
    requests: u64,
    throughput_rps: f64,
    latency_ms: JsonLatency,
    status: &'a BTreeMap<u16, u64>,
    logins: u64,
    refreshes: u64,
    errors: u64,
}

#[derive(Debug, Serialize)]
struct JsonLatency {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

fn ms(micros: u64) -> f64 {
    round(micros as f64 / 1000.0, 3)
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// The progress line on stderr, once a second: overwritten in place (`\r`) on a terminal, one
/// line per second otherwise. Ends its line when dropped.
#[derive(Debug)]
pub(crate) struct Progress {
    tty: bool,
    dirty: bool,
    last_requests: u64,
    last_elapsed: Duration,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            dirty: false,
            last_requests: 0,
            last_elapsed: Duration::ZERO,
        }
    }

    pub(crate) fn setting_up(&mut self, ready: u32, connections: u32) {
        self.show(&format!(
            "connecting and logging in: {ready}/{connections} virtual users ready"
        ));
    }

    pub(crate) fn running(&mut self, live: &Live, elapsed: Duration) {
        let requests = live.requests.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        let window = (elapsed - self.last_elapsed.min(elapsed)).as_secs_f64();
        let rps = if window > 0.0 {
            (requests - self.last_requests.min(requests)) as f64 / window
        } else {
            0.0
        };
        self.last_requests = requests;
        self.last_elapsed = elapsed;
        self.show(&format!(
            "{:>5.1} s  {requests} requests  {rps:.0} req/s  {errors} errors",
            elapsed.as_secs_f64()
        ));
    }

    fn show(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        // A closed stderr must not stop the run: progress is best effort.
        let _ = if self.tty {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        self.dirty = true;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.tty && self.dirty {
            let _ = writeln!(std::io::stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_spec_shape_and_percentiles() {
        let latencies = Latencies::new();
        let mut a = Tally::default();
        let mut b = Tally::default();
        for i in 1..=1000u64 {
            let (t, stripe) = if i % 2 == 0 { (&mut a, 0) } else { (&mut b, 1) };
            t.record(StatusCode::OK);
            latencies.record(stripe, Duration::from_micros(i * 10));
        }
        b.record(StatusCode::UNAUTHORIZED);
        latencies.record(7, Duration::from_millis(20));
        a.logins = 2;
        b.refreshes = 1;
        b.errors = 3;
        a.merge(&b);
        let report = Report {
            url: "https://127.0.0.1:8443".to_owned(),
            http2: false,
            connections: 2,
            elapsed: Duration::from_secs(2),
            latency: latencies.merged(),
            tally: a,
        };
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(json["requests"], 1001);
        assert_eq!(json["duration_s"], 2.0);
        assert_eq!(json["throughput_rps"], 500.5);
        assert_eq!(json["status"]["200"], 1000);
        assert_eq!(json["status"]["401"], 1);
        assert_eq!(json["logins"], 2);
        assert_eq!(json["refreshes"], 1);
        assert_eq!(json["errors"], 3);
        let p50 = json["latency_ms"]["p50"].as_f64().unwrap();
        assert!((4.9..=5.1).contains(&p50), "{p50}");
        let max = json["latency_ms"]["max"].as_f64().unwrap();
        assert!((19.9..=20.1).contains(&max), "{max}");
        for key in ["p90", "p99", "p999"] {
            assert!(json["latency_ms"][key].as_f64().unwrap() <= max);
        }
        let text = report.to_string();
        assert!(text.contains("200: 1000, 401: 1"), "{text}");
        assert!(text.contains("2 logins, 1 refreshes"), "{text}");
    }

    #[test]
    fn an_empty_run_reports_zeros() {
        let report = Report {
            url: "http://127.0.0.1".to_owned(),
            http2: true,
            connections: 1,
            elapsed: Duration::ZERO,
            latency: Latencies::new().merged(),
            tally: Tally::default(),
        };
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(json["requests"], 0);
        assert_eq!(json["throughput_rps"], 0.0);
        assert_eq!(json["latency_ms"]["max"], 0.0);
        assert_eq!(json["status"], serde_json::json!({}));
    }
}
