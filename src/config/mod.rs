//! The validated, immutable runtime configuration (SPEC §4.2).
//!
//! `Config::load` reads a TOML file, lays the `PORTCULLIS_*` environment over it (`env.rs`),
//! parses that into the serde mirror in `raw.rs` and converts it into the types below in
//! `validate/`, collecting every problem with the key it belongs to; secrets given as `*_file`
//! keys are read there. `sources.rs` records where each value came from.
//! Nothing here opens sockets or key files: loading key material is `state::Snapshot::build`,
//! which reports its problems in the same `ConfigIssue` form.

mod defaults;
mod env;
mod keys;
mod raw;
mod sources;
mod validate;
mod value;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use jsonwebtoken::Algorithm;
use serde::Deserialize as _;
pub use sources::{Setting, Source};
pub use value::{Span, SpanError};

/// The whole configuration, every default filled in.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file this was read from; relative paths inside it were resolved against its folder.
    pub source: PathBuf,
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub endpoints: Endpoints,
    pub tokens: TokensConfig,
    pub store: StoreConfig,
    pub login: LoginConfig,
    pub log: LogConfig,
    pub users: Vec<UserConfig>,
    pub routes: Vec<RouteConfig>,
    /// Notes that are not errors: keys this version does not act on yet, settings worth a
    /// second look (plain HTTP, an issuer that is not an https URL).
    pub notices: Vec<ConfigIssue>,
    /// Every key with a value, where it came from (`portcullis check --explain`).
    pub settings: Vec<Setting>,
}

impl Config {
    /// Reads and validates `path`, with the process's `PORTCULLIS_*` variables over it. Every
    /// problem found is reported, each naming its key.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::one("(file)", format!("cannot read {}: {e}", path.display()))
        })?;
        Self::parse_with_env(&text, path, &process_env())
    }

    /// Only `admin.listen` of the file at `path` and the environment (its default if unset):
    /// for the commands that talk to a running gateway and need nothing else. The rest of the
    /// file is not checked.
    pub fn load_admin_listen(path: &Path) -> Result<SocketAddr, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::one("(file)", format!("cannot read {}: {e}", path.display()))
        })?;
        Self::admin_listen_of(&text, &process_env())
    }

    /// `admin.listen` without a file: `PORTCULLIS_ADMIN_LISTEN`, else the default.
    pub fn env_admin_listen() -> Result<SocketAddr, ConfigErrors> {
        Self::admin_listen_of("", &process_env())
    }

    /// `admin.listen` of `text` with `env` over it.
    fn admin_listen_of(text: &str, env: &[(String, String)]) -> Result<SocketAddr, ConfigErrors> {
        #[derive(serde::Deserialize)]
        struct AdminOnly {
            #[serde(default)]
            admin: raw::Admin,
        }
        let syntax = |e: toml::de::Error| {
            ConfigErrors::one("(syntax)", e.to_string().trim_end().replace('\n', "\n    "))
        };
        let mut table: toml::Table = toml::from_str(text).map_err(syntax)?;
        let overlay = env::overlay(&mut table, env);
        let admin: Vec<ConfigIssue> = (overlay.issues.iter())
            .filter(|i| i.key.starts_with("admin."))
            .cloned()
            .collect();
        if !admin.is_empty() {
            return Err(ConfigErrors(admin));
        }
        let raw = AdminOnly::deserialize(table).map_err(syntax)?;
        validate::admin_listen(&raw.admin)
            .map_err(|e| ConfigErrors(e.0.into_iter().map(|i| overlay.attribute(i)).collect()))
    }

    /// The log format for reporting that the configuration at `path` could not be loaded, read
    /// leniently: `PORTCULLIS_LOG_FORMAT` (the environment's `log.format`) if set, else the
    /// file's `log.format` if the file is TOML at all (nothing else in it is read or checked),
    /// else pretty. Only `"json"` means JSON; anything else, or no answer, is pretty.
    pub fn lenient_log_format(path: &Path) -> LogFormat {
        let from_file = || {
            let text = std::fs::read_to_string(path).ok()?;
            let table = toml::from_str::<toml::Table>(&text).ok()?;
            Some(table.get("log")?.get("format")?.as_str()?.to_owned())
        };
        let format = std::env::var("PORTCULLIS_LOG_FORMAT")
            .ok()
            .or_else(from_file);
        match format.as_deref() {
            Some("json") => LogFormat::Json,
            _ => LogFormat::Pretty,
        }
    }

    /// Validates `text` as if it had been read from `path` (which anchors relative paths),
    /// without the environment.
    ///
    /// Unknown keys are all reported, each with the known key it most resembles, together with
    /// the problems of the rest of the file.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        Self::parse_with_env(text, path, &[])
    }

    /// Validates `text` as if it had been read from `path`, with the `PORTCULLIS_*` variables
    /// of `env` (name, value) over it; other variables in `env` are passed over. A problem
    /// with a value from the environment names its key and the variable.
    pub fn parse_with_env(
        text: &str,
        path: &Path,
        env: &[(String, String)],
    ) -> Result<Config, ConfigErrors> {
        let syntax = |e: toml::de::Error| {
            ConfigIssue::new("(syntax)", e.to_string().trim_end().replace('\n', "\n    "))
        };
        let mut table =
            toml::from_str::<toml::Table>(text).map_err(|e| ConfigErrors(vec![syntax(e)]))?;
        let mut issues = keys::strip_unknown(&mut table);
        if issues.is_empty() {
            // A value of the wrong type in the file, reported with its line.
            if let Err(e) = toml::from_str::<raw::Root>(text) {
                return Err(ConfigErrors(vec![syntax(e)]));
            }
        }
        let overlay = env::overlay(&mut table, env);
        issues.extend(overlay.issues.iter().cloned());
        let laid = table.clone();
        match raw::Root::deserialize(table) {
            Ok(raw) => match validate::validate(raw, path) {
                Ok(mut config) if issues.is_empty() => {
                    let base = path.parent().unwrap_or(Path::new(""));
                    config.settings = sources::settings(&laid, &overlay.origins, base, &config);
                    config.notices.extend(overlay.notices);
                    return Ok(config);
                }
                Ok(_) => {}
                Err(rest) => issues.extend(rest.0.into_iter().map(|i| overlay.attribute(i))),
            },
            Err(e) => issues.push(syntax(e)),
        }
        Err(ConfigErrors(issues))
    }

    /// `errors` (found with this configuration, e.g. loading its keys), each key that was set
    /// from the environment followed by its variable.
    pub fn attribute(&self, errors: ConfigErrors) -> ConfigErrors {
        let issues = errors.0.into_iter().map(|mut issue| {
            let var = self.settings.iter().find_map(|s| match &s.source {
                Source::Env(var) if s.key == issue.key => Some(var),
                _ => None,
            });
            if let Some(var) = var {
                issue.key = format!("{} (from {var})", issue.key);
            }
            issue
        });
        ConfigErrors(issues.collect())
    }
}

/// The process's `PORTCULLIS_*` variables (a value that is not UTF-8 is taken lossily).
fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            name.to_ascii_uppercase()
                .starts_with("PORTCULLIS_")
                .then(|| (name, value.to_string_lossy().into_owned()))
        })
        .collect()
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// `None` when `tls = false`: plain HTTP behind a TLS-terminating load balancer.
    pub tls: Option<TlsFiles>,
    pub http2: bool,
    /// Base for absolute URLs in discovery documents; `None` means "from the request".
    pub public_url: Option<String>,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Request-path threads, each with its own single-threaded runtime (`0` configured: one
    /// per core).
    pub workers: usize,
    pub shutdown_grace: Duration,
    /// After SIGTERM: how long `/readyz` answers 503 while both listeners keep serving, so that
    /// load balancers stop sending before the listeners close.
    pub drain_delay: Duration,
    /// Peers whose `X-Forwarded-For`, `-Proto` and `-Host` are believed (SPEC §3).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// `Host` names accepted besides IP literals and `localhost` (lower case, without port).
    pub allowed_hosts: Vec<String>,
}

/// The gateway's own endpoints (SPEC §1): the one list that dispatch, validation and the
/// discovery document go by.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Endpoint {
    Token,
    Logout,
    Revoke,
    Introspect,
    Jwks,
    Metadata,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Self::Token,
        Self::Logout,
        Self::Revoke,
        Self::Introspect,
        Self::Jwks,
        Self::Metadata,
    ];

    /// Its key in `[endpoints]`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Logout => "logout",
            Self::Revoke => "revoke",
            Self::Introspect => "introspect",
            Self::Jwks => "jwks",
            Self::Metadata => "metadata",
        }
    }
}

/// Paths of the gateway's own endpoints; each is matched exactly, before any route.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// Indexed by `Endpoint as usize`.
    paths: [String; 6],
}

impl Endpoints {
    pub(crate) fn new(paths: [String; 6]) -> Self {
        Self { paths }
    }

    pub fn path(&self, endpoint: Endpoint) -> &str {
        &self.paths[endpoint as usize]
    }

    /// The endpoint served at `path` (canonical), if any.
    pub fn find(&self, path: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| self.path(*e) == path)
    }
}

#[derive(Clone, Debug)]
pub struct TokensConfig {
    /// `tokens.issuer`; by default `server.public_url` when that is set, else `"portcullis"`.
    pub issuer: String,
    pub algorithm: Algorithm,
    pub signing_key: PathBuf,
    pub verify_keys: Vec<PathBuf>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub short_refresh_ttl: Duration,
    /// Absolute cap on a session across refreshes; `None` for no cap.
    pub max_session_lifetime: Option<Duration>,
    pub leeway: Duration,
    pub refresh_grace: Duration,
    /// How many verified access tokens to remember (0: verify every request's signature).
    pub verified_cache: usize,
}

#[derive(Clone, Debug, Eq, PartialEq)]
pub enum StoreConfig {
    /// Durable: one redb file.
    Embedded { path: PathBuf },
    /// In memory only, lost on restart: for tests and benchmarks.
    Memory,
    /// Shared by every instance using the same Redis.
    Redis {
        /// `redis://` or `rediss://` (TLS), optionally with a user name and password.
        url: String,
        key_prefix: String,
        /// PEM file of the CA that signed a `rediss://` server's certificate (default: the
        /// system's roots).
        ca: Option<PathBuf>,
    },
}

#[derive(Clone, Debug)]
pub struct LoginConfig {
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
    pub users_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    pub access_log: bool,
    /// The access log's fields, in the order they are written: `log.access_fields`, else
    /// [`AccessField::ALL`]. Never empty.
    pub access_fields: std::sync::Arc<[AccessField]>,
}

/// One field of the access log (SPEC §4.4), named as `log.access_fields` and the log line name
/// it. Query strings, tokens, passwords and header values other than the user agent are never
/// among them.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum AccessField {
    Method,
    Path,
    Status,
    DurationMs,
    User,
    Route,
    Upstream,
    RequestId,
    Peer,
    Client,
    BytesIn,
    BytesOut,
    UserAgent,
    Host,
    Protocol,
    TlsVersion,
    Cause,
}

impl AccessField {
    /// Every field, in the default order; `AccessField as usize` indexes it.
    pub const ALL: [AccessField; 17] = [
        Self::Method,
        Self::Path,
        Self::Status,
        Self::DurationMs,
        Self::User,
        Self::Route,
        Self::Upstream,
        Self::RequestId,
        Self::Peer,
        Self::Client,
        Self::BytesIn,
        Self::BytesOut,
        Self::UserAgent,
        Self::Host,
        Self::Protocol,
        Self::TlsVersion,
        Self::Cause,
    ];

    /// The names, by `AccessField as usize`.
    pub const NAMES: [&'static str; 17] = [
        "method",
        "path",
        "status",
        "duration_ms",
        "user",
        "route",
        "upstream",
        "request_id",
        "peer",
        "client",
        "bytes_in",
        "bytes_out",
        "user_agent",
        "host",
        "protocol",
        "tls_version",
        "cause",
    ];

    /// Its name in `log.access_fields` and in the log line.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// A user allowed to log in. `password_hash` is an argon2id PHC string (checked to parse).
#[derive(Clone, Debug)]
pub struct UserConfig {
    pub name: String,
    pub password_hash: String,
    pub roles: Vec<String>,
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum AuthMode {
    Required,
    Public,
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum UpstreamProtocol {
    Http1,
    Http2,
}

#[derive(Clone, Debug)]
pub struct RouteConfig {
    pub name: String,
    /// Lower-case host name without port; `None` matches any host.
    pub host: Option<String>,
    /// Starts with `/`; matched on whole path segments.
    pub path_prefix: String,
    pub upstreams: Vec<http::Uri>,
    pub auth: AuthMode,
    pub roles: Vec<String>,
    pub strip_prefix: bool,
    pub preserve_host: bool,
    pub forward_authorization: bool,
    pub upstream_protocol: UpstreamProtocol,
    pub upstream_ca: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub websocket: bool,
    /// Match `path_prefix` ignoring ASCII case (for upstreams that do, such as IIS).
    pub case_insensitive: bool,
    /// Forward client headers whose names hold `_` (dropped by default, as nginx does).
    pub allow_underscore_headers: bool,
}

/// One problem with one key, e.g. `routes[2].upstreams[0]: scheme must be http or https`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ConfigIssue {
    pub key: String,
    pub problem: String,
}

impl ConfigIssue {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Every problem found in a configuration; never empty.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl ConfigErrors {
    pub fn one(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self(vec![ConfigIssue::new(key, problem)])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} problem{} in the configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.0 {
            write!(f, "\n  - {issue}")?;
        }
        Ok(())
    }
}
