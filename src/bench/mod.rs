//! `portcullis bench` (SPEC §6): a load harness for a gateway and the API behind it.
//!
//! N virtual users, each on its own connection with its own session, log in at the token
//! endpoint, then call a path with their access token as fast as the server answers, refresh on
//! `401` and log in again when the refresh fails. The run has two phases: every virtual user
//! connects and logs in (a refused login or connection ends the run with a message: a wrong
//! password must not spin; a busy gateway, `503` or `429 temporarily_unavailable` with
//! `Retry-After`, is asked again: all virtual users log in from one address, and the gateway lets
//! only a few logins per address be in flight), then the measured window of `--duration` starts
//! for all of them at once.
//!
//! - `target.rs`: the URL, TLS trust (`--ca`, `--insecure`, system roots) and connections;
//! - `vu.rs`: one virtual user's loop;
//! - `report.rs`: latency histogram (HdrHistogram), counts, JSON and human output, progress.
//!
//! Traffic goes only where `--url` points. The password and the tokens are never printed.

mod report;
mod target;
mod vu;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use portcullis::config::Span;

pub(crate) use report::Report;
use report::{Latencies, Live, Progress, Tally};
pub(crate) use target::ConnectError;
use target::{Target, Trust};
use vu::{RequestError, VirtualUser};

/// How long connecting and logging in every virtual user may take before the run gives up.
const SET_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// The command line of `portcullis bench`.
#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// The gateway, e.g. https://127.0.0.1:8443 (http:// for a gateway with `tls = false`).
    #[arg(long, value_name = "URL")]
    url: String,
    /// The user name to log in with.
    #[arg(long, value_name = "USER")]
    user: String,
    /// The password (PORTCULLIS_BENCH_PASSWORD keeps it out of the process list).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "PORTCULLIS_BENCH_PASSWORD",
        hide_env_values = true
    )]
    password: String,
    /// Virtual users, each with its own connection and session.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// Length of the measured window, e.g. 500ms, 10s, 1m.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = Span::parse)]
    duration: Span,
    /// Path (and query) to call; default: the URL's path, else `/`.
    #[arg(long, value_name = "P")]
    path: Option<String>,
    /// The gateway's token endpoint (`[endpoints] token`).
    #[arg(long, value_name = "P", default_value = "/api/oauth2/token")]
    token_path: String,
    /// HTTP/2 (ALPN h2 over TLS, prior knowledge over plain TCP); default HTTP/1.1.
    #[arg(long)]
    http2: bool,
    /// Trust only the certificates in this PEM file.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Accept any server certificate (handshake signatures are still checked).
    #[arg(long)]
    insecure: bool,
    /// Print one JSON object on stdout instead of the summary.
    #[arg(long)]
    json: bool,
}

impl BenchArgs {
    pub(crate) fn json(&self) -> bool {
        self.json
    }
}

impl fmt::Debug for BenchArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BenchArgs")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &"…")
            .field("connections", &self.connections)
            .field("duration", &self.duration)
            .field("path", &self.path)
            .field("token_path", &self.token_path)
            .field("http2", &self.http2)
            .field("ca", &self.ca)
            .field("insecure", &self.insecure)
            .field("json", &self.json)
            .finish()
    }
}

/// A validated run: what every virtual user shares, read-only.
pub(crate) struct Plan {
    target: Target,
    user: String,
    /// `grant_type=password&username=…&password=…`, encoded once. Never printed.
    login_form: Bytes,
    connections: u32,
    duration: Duration,
}

impl TryFrom<BenchArgs> for Plan {
    type Error = BenchError;

    fn try_from(args: BenchArgs) -> Result<Self, BenchError> {
        if args.user.is_empty() {
            return Err(BenchError::EmptyUser);
        }
        if args.duration.duration().is_zero() {
            return Err(BenchError::ZeroDuration);
        }
        let trust = match (&args.ca, args.insecure) {
            (Some(_), true) => return Err(BenchError::CaAndInsecure),
            (Some(path), false) => Trust::File(path),
            (None, true) => Trust::Any,
            (None, false) => Trust::System,
        };
        let target = Target::new(
            &args.url,
            args.path.as_deref(),
            &args.token_path,
            args.http2,
            &trust,
        )?;
        let login_form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "password")
            .append_pair("username", &args.user)
            .append_pair("password", &args.password)
            .finish();
        Ok(Self {
            target,
            user: args.user,
            login_form: Bytes::from(login_form),
            connections: args.connections,
            duration: args.duration.duration(),
        })
    }
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("target", &self.target)
            .field("user", &self.user)
            .field("connections", &self.connections)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

/// Runs `plan` to its end and returns what it measured. Progress goes to stderr.
pub(crate) async fn run(plan: Plan) -> Result<Report, BenchError> {
    let plan = Arc::new(plan);
    let live = Arc::new(Live::default());
    let latencies = Arc::new(Latencies::new());
    let n = plan.connections;
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(n as usize);
    let (start_tx, start_rx) = watch::channel(None);
    // Dropping the set (on any early return) aborts every virtual user.
    let mut users = JoinSet::new();
    for index in 0..n as usize {
        let user = VirtualUser::new(plan.clone(), live.clone(), latencies.clone(), index);
        users.spawn(user.run(ready_tx.clone(), start_rx.clone()));
    }
    drop(ready_tx);
    let mut progress = Progress::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await;

    // Phase 1: every virtual user connected and logged in.
    let set_up_deadline = Instant::now() + SET_UP_TIMEOUT;
    let mut ready = 0;
    while ready < n {
        tokio::select! {
            Some(()) = ready_rx.recv() => ready += 1,
            Some(joined) = users.join_next() => return Err(match joined {
                Ok(Err(fatal)) => fatal,
                Ok(Ok(_)) => BenchError::StoppedEarly,
                Err(e) => BenchError::Task(e),
            }),
            _ = ticker.tick() => progress.setting_up(ready, n),
            () = tokio::time::sleep_until(set_up_deadline) => {
                return Err(BenchError::SetUpTimeout { ready, connections: n });
            }
        }
    }

    // Phase 2: the measured window, the same for everyone.
    let started = Instant::now();
    start_tx.send_replace(Some(started + plan.duration));
    ticker.reset();
    let mut tally = Tally::default();
    loop {
        tokio::select! {
            joined = users.join_next() => match joined {
                None => break,
                Some(Ok(Ok(user))) => tally.merge(&user),
                Some(Ok(Err(fatal))) => return Err(fatal),
                Some(Err(e)) => return Err(BenchError::Task(e)),
            },
            _ = ticker.tick() => progress.running(&live, started.elapsed()),
        }
    }
    let elapsed = started.elapsed();
    drop(progress);
    Ok(Report {
        url: plan.target.url().to_owned(),
        http2: plan.target.http2(),
        connections: n,
        elapsed,
        latency: latencies.merged(),
        tally,
    })
}

/// Why a run could not start or had to stop. Messages name the flag at fault.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    #[error("--url {0:?} is not a URL")]
    UrlSyntax(String, #[source] http::uri::InvalidUri),
    #[error("--url {0:?}: the scheme must be http:// or https://")]
    UrlScheme(String),
    #[error("--url {0:?}: the URL has no usable host")]
    UrlHost(String),
    #[error("--url {0:?}: user information (user@host) is not supported; use --user")]
    UrlUserinfo(String),
    #[error("--url {0:?}: cannot build the request target")]
    UrlParts(String, #[source] http::uri::InvalidUriParts),
    #[error("--url {0:?}: cannot resolve the host")]
    Resolve(String, #[source] std::io::Error),
    #[error("--url {0:?}: the host has no address")]
    NoAddress(String),
    #[error("--{flag} {value:?}: must be a path starting with '/'")]
    PathNotAbsolute { flag: &'static str, value: String },
    #[error("--{flag} {value:?} is not a valid path")]
    PathSyntax {
        flag: &'static str,
        value: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error("--user must not be empty")]
    EmptyUser,
    #[error("--duration must be longer than 0")]
    ZeroDuration,
    #[error("--ca and --insecure exclude each other")]
    CaAndInsecure,
    #[error("--ca and --insecure apply to https:// URLs only")]
    TlsOptionWithoutTls,
    #[error("--ca {}: cannot read the certificates", .0.display())]
    CaRead(PathBuf, #[source] rustls::pki_types::pem::Error),
    #[error("--ca {}: the file holds no usable certificate", .0.display())]
    CaEmpty(PathBuf),
    #[error("no system root certificates could be loaded; use --ca FILE or --insecure")]
    NoSystemRoots,
    #[error("TLS client configuration")]
    TlsConfig(#[source] rustls::Error),
    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: ConnectError,
    },
    #[error("logging in as {user:?} failed")]
    LoginFailed {
        user: String,
        #[source]
        source: RequestError,
    },
    #[error(
        "logging in as {user:?} was refused: {refusal} (check --user, --password and --token-path)"
    )]
    LoginRefused { user: String, refusal: Refusal },
    #[error("the answer of {uri} is not a token response (check --token-path)")]
    NotTokens {
        uri: String,
        #[source]
        source: Option<serde_json::Error>,
    },
    #[error("only {ready} of {connections} virtual users had connected and logged in after {SET_UP_TIMEOUT:?}; try fewer --connections")]
    SetUpTimeout { ready: u32, connections: u32 },
    #[error("a virtual user stopped before the start")]
    StoppedEarly,
    #[error("a virtual user failed")]
    Task(#[source] tokio::task::JoinError),
}

/// A refused token request: the status and, when the body is an RFC 6749 error, its code and
/// description (which never echo the password).
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    error: Option<String>,
    description: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct OAuthError {
            error: String,
            error_description: Option<String>,
        }
        let parsed = serde_json::from_slice::<OAuthError>(body).ok();
        Self {
            status,
            error: parsed.as_ref().map(|e| e.error.clone()),
            description: parsed.and_then(|e| e.error_description),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        match (&self.error, &self.description) {
            (Some(error), Some(description)) => write!(f, " {error}: {description}"),
            (Some(error), None) => write!(f, " {error}"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_shows_the_oauth_error() {
        let body =
            br#"{"error":"invalid_grant","error_description":"wrong user name or password"}"#;
        let refusal = Refusal::new(StatusCode::BAD_REQUEST, body);
        assert_eq!(
            refusal.to_string(),
            "400 Bad Request invalid_grant: wrong user name or password"
        );
        let refusal = Refusal::new(StatusCode::NOT_FOUND, b"<html>not found</html>");
        assert_eq!(refusal.to_string(), "404 Not Found");
    }
}
