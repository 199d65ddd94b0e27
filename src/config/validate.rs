//! `raw::Root` → `Config`: defaults filled in, every value parsed, every problem collected.
//!
//! Problems are collected rather than returned at the first one, so that `portcullis check`
//! shows all of them at once, each with the dotted key it belongs to.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::raw;
use super::*;

/// Collects issues while converting; `base` is the folder relative paths are resolved against.
struct Checker {
    base: PathBuf,
    issues: Vec<ConfigIssue>,
    notices: Vec<ConfigIssue>,
}

impl Checker {
    fn issue(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.issues.push(ConfigIssue::new(key, problem));
    }

    fn notice(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.notices.push(ConfigIssue::new(key, problem));
    }

    fn span(&mut self, key: &str, value: Option<&str>, default: &str) -> Duration {
        let text = value.unwrap_or(default);
        match Span::parse(text) {
            Ok(span) => span.duration(),
            Err(e) => {
                self.issue(key, format!("{text:?}: {e}"));
                Duration::ZERO
            }
        }
    }

    fn positive(&mut self, key: &str, value: Option<i64>, default: i64, max: i64) -> i64 {
        let n = value.unwrap_or(default);
        if n <= 0 || n > max {
            self.issue(key, format!("{n}: must be between 1 and {max}"));
            return default;
        }
        n
    }

    fn addr(&mut self, key: &str, value: Option<&str>, default: &str) -> SocketAddr {
        let text = value.unwrap_or(default);
        SocketAddr::from_str(text).unwrap_or_else(|_| {
            self.issue(
                key,
                format!("{text:?}: expected an IP address and port, e.g. \"0.0.0.0:8443\""),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    fn path(&self, text: &str) -> PathBuf {
        self.base.join(text)
    }

    /// `Some(path)` for a non-empty string, `None` for `""` or absent.
    fn optional_path(&self, value: Option<String>) -> Option<PathBuf> {
        value.filter(|s| !s.is_empty()).map(|s| self.path(&s))
    }

    fn endpoint(&mut self, key: &str, value: Option<String>, default: &str) -> String {
        let path = value.unwrap_or_else(|| default.to_owned());
        if !path.starts_with('/') || path.contains(['?', '#']) {
            self.issue(
                key,
                format!("{path:?}: must be a path starting with '/', without query"),
            );
        }
        path
    }
}

pub(super) fn validate(raw: raw::Root, source: &Path) -> Result<Config, ConfigErrors> {
    let base = source.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut c = Checker {
        base,
        issues: Vec::new(),
        notices: Vec::new(),
    };

    let server = server(&mut c, raw.server);
    let admin = AdminConfig {
        listen: c.addr(
            "admin.listen",
            raw.admin.listen.as_deref(),
            "127.0.0.1:9901",
        ),
        allowed_hosts: allowed_hosts(&mut c, raw.admin.allowed_hosts.unwrap_or_default()),
    };
    let endpoints = endpoints(&mut c, raw.endpoints);
    let tokens = tokens(&mut c, raw.tokens);
    let store = store(&mut c, raw.store);
    let login = login(&mut c, raw.login);
    let log = log(&mut c, &raw.log);
    let mut users = users(&mut c, "users", raw.users);
    if let Some(file) = &login.users_file {
        users.extend(users_file(&mut c, file));
    }
    check_unique_users(&mut c, &users);
    let routes = routes(&mut c, raw.routes, &endpoints);

    if c.issues.is_empty() {
        Ok(Config {
            source: source.to_path_buf(),
            server,
            admin,
            endpoints,
            tokens,
            store,
            login,
            log,
            users,
            routes,
            notices: c.notices,
        })
    } else {
        Err(ConfigErrors(c.issues))
    }
}

fn server(c: &mut Checker, raw: raw::Server) -> ServerConfig {
    let tls = if raw.tls.unwrap_or(true) {
        let cert = raw
            .tls_cert
            .unwrap_or_else(|| "../certs/gateway.crt".to_owned());
        let key = raw
            .tls_key
            .unwrap_or_else(|| "../certs/gateway.key".to_owned());
        Some(TlsFiles {
            cert: c.path(&cert),
            key: c.path(&key),
        })
    } else {
        c.notice(
            "server.tls",
            "false: serving plain HTTP; only do this behind a TLS-terminating load balancer",
        );
        None
    };
    let public_url = raw
        .public_url
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('/').to_owned());
    if let Some(url) = &public_url {
        let ok = http::Uri::from_str(url)
            .map(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some())
            .unwrap_or(false);
        if !ok {
            c.issue(
                "server.public_url",
                format!("{url:?}: expected an absolute http(s) URL"),
            );
        }
    }
    let idle_timeout = c.span("server.idle_timeout", raw.idle_timeout.as_deref(), "60s");
    let max_header_bytes = c.positive(
        "server.max_header_bytes",
        raw.max_header_bytes,
        16384,
        1 << 20,
    ) as usize;
    if max_header_bytes < MIN_HEADER_BYTES {
        c.issue(
            "server.max_header_bytes",
            format!("{max_header_bytes}: must be at least {MIN_HEADER_BYTES}"),
        );
    }
    let trusted_proxies = trusted_proxies(c, raw.trusted_proxies.as_deref().unwrap_or_default());
    ServerConfig {
        listen: c.addr("server.listen", raw.listen.as_deref(), "0.0.0.0:8443"),
        tls,
        http2: raw.http2.unwrap_or(true),
        public_url,
        max_header_bytes,
        header_read_timeout: c.span(
            "server.header_read_timeout",
            raw.header_read_timeout.as_deref(),
            "10s",
        ),
        idle_timeout,
        max_connections: c.positive(
            "server.max_connections",
            raw.max_connections,
            10_000,
            1 << 20,
        ) as usize,
        shutdown_grace: c.span(
            "server.shutdown_grace",
            raw.shutdown_grace.as_deref(),
            "30s",
        ),
        trusted_proxies,
    }
}

/// The smallest `server.max_header_bytes` the gateway enforces.
const MIN_HEADER_BYTES: usize = 1024;

/// `"10.0.0.0/8"` or a bare address (`"192.0.2.7"`, a /32 or /128).
fn trusted_proxies(c: &mut Checker, raw: &[String]) -> Vec<ipnet::IpNet> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let parsed = ipnet::IpNet::from_str(text)
            .or_else(|_| std::net::IpAddr::from_str(text).map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => out.push(net.trunc()),
            Err(_) => c.issue(
                format!("server.trusted_proxies[{i}]"),
                format!("{text:?}: expected an address or a CIDR block, e.g. \"10.0.0.0/8\""),
            ),
        }
    }
    out
}

/// Host names, lower-cased; an entry with a port, a scheme or a path is refused.
fn allowed_hosts(c: &mut Checker, raw: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, text) in raw.into_iter().enumerate() {
        let name = text.to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if ok {
            out.push(name);
        } else {
            c.issue(
                format!("admin.allowed_hosts[{i}]"),
                format!("{text:?}: expected a host name without port, e.g. \"gateway.internal\""),
            );
        }
    }
    out
}

fn endpoints(c: &mut Checker, raw: raw::Endpoints) -> Endpoints {
    let e = Endpoints {
        token: c.endpoint("endpoints.token", raw.token, "/api/oauth2/token"),
        logout: c.endpoint("endpoints.logout", raw.logout, "/api/oauth2/logout"),
        revoke: c.endpoint("endpoints.revoke", raw.revoke, "/api/oauth2/revoke"),
        introspect: c.endpoint(
            "endpoints.introspect",
            raw.introspect,
            "/api/oauth2/introspect",
        ),
        jwks: c.endpoint("endpoints.jwks", raw.jwks, "/.well-known/jwks.json"),
        metadata: c.endpoint(
            "endpoints.metadata",
            raw.metadata,
            "/.well-known/oauth-authorization-server",
        ),
    };
    let all = [
        ("token", &e.token),
        ("logout", &e.logout),
        ("revoke", &e.revoke),
        ("introspect", &e.introspect),
        ("jwks", &e.jwks),
        ("metadata", &e.metadata),
    ];
    let mut seen = HashSet::new();
    for (name, path) in all {
        if !seen.insert(path.as_str()) {
            c.issue(
                format!("endpoints.{name}"),
                format!("{path:?} is used by another endpoint"),
            );
        }
    }
    e
}

fn tokens(c: &mut Checker, raw: raw::Tokens) -> TokensConfig {
    let algorithm_text = raw.algorithm.unwrap_or_else(|| "RS512".to_owned());
    let algorithm = match algorithm_text.as_str() {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        other => {
            c.issue(
                "tokens.algorithm",
                format!(
                    "{other:?}: expected one of RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA"
                ),
            );
            Algorithm::RS512
        }
    };
    let issuer = raw.issuer.unwrap_or_else(|| "portcullis".to_owned());
    if issuer.is_empty() {
        c.issue("tokens.issuer", "must not be empty");
    }
    let signing_key = raw
        .signing_key
        .unwrap_or_else(|| "../certs/signing.pem".to_owned());
    let access_ttl = c.span("tokens.access_ttl", raw.access_ttl.as_deref(), "15m");
    let refresh_ttl = c.span("tokens.refresh_ttl", raw.refresh_ttl.as_deref(), "14d");
    let short_refresh_ttl = c.span(
        "tokens.short_refresh_ttl",
        raw.short_refresh_ttl.as_deref(),
        "30m",
    );
    let max_session = c.span(
        "tokens.max_session_lifetime",
        raw.max_session_lifetime.as_deref(),
        "90d",
    );
    let refresh_grace = c.span("tokens.refresh_grace", raw.refresh_grace.as_deref(), "0s");
    for (key, ttl) in [
        ("tokens.access_ttl", access_ttl),
        ("tokens.refresh_ttl", refresh_ttl),
        ("tokens.short_refresh_ttl", short_refresh_ttl),
    ] {
        let unparsed = c.issues.iter().any(|i| i.key == key);
        if ttl < Duration::from_secs(1) && !unparsed {
            c.issue(key, "must be at least 1s");
        }
    }
    TokensConfig {
        issuer,
        algorithm,
        signing_key: c.path(&signing_key),
        verify_keys: raw
            .verify_keys
            .unwrap_or_default()
            .iter()
            .map(|p| c.path(p))
            .collect(),
        access_ttl,
        refresh_ttl,
        short_refresh_ttl,
        max_session_lifetime: (!max_session.is_zero()).then_some(max_session),
        leeway: c.span("tokens.leeway", raw.leeway.as_deref(), "30s"),
        refresh_grace,
        verified_cache: match raw.verified_cache {
            Some(0) => 0,
            n => c.positive("tokens.verified_cache", n, 10_000, 10_000_000) as usize,
        },
    }
}

fn store(c: &mut Checker, raw: raw::Store) -> StoreConfig {
    match raw.kind.as_deref().unwrap_or("embedded") {
        "embedded" => {
            if raw.url.is_some() || raw.key_prefix.is_some() || raw.ca.is_some() {
                c.issue("store.url", "only used with kind = \"redis\"");
            }
            let path = raw.path.unwrap_or_else(|| "../data/sessions.db".to_owned());
            StoreConfig::Embedded {
                path: c.path(&path),
            }
        }
        "memory" => {
            c.notice(
                "store.kind",
                "\"memory\": sessions are lost on restart; use \"embedded\" in production",
            );
            StoreConfig::Memory
        }
        "redis" => {
            if raw.path.is_some() {
                c.issue("store.path", "only used with kind = \"embedded\"");
            }
            let url = match raw.url {
                None => {
                    c.issue("store.url", "required with kind = \"redis\"");
                    String::new()
                }
                Some(url) => {
                    // The message never repeats the URL: it may hold a password.
                    if redis::Client::open(url.as_str()).is_err() {
                        c.issue(
                            "store.url",
                            "not a Redis URL (redis://[:password@]host[:port][/db] or rediss://…)",
                        );
                    }
                    url
                }
            };
            let ca = raw.ca.map(|ca| {
                if !url.starts_with("rediss://") {
                    c.issue("store.ca", "only used with a rediss:// URL");
                }
                let ca = c.path(&ca);
                if !ca.is_file() {
                    c.issue(
                        "store.ca",
                        format!("{} is not a readable file", ca.display()),
                    );
                }
                ca
            });
            StoreConfig::Redis {
                url,
                key_prefix: raw.key_prefix.unwrap_or_else(|| "portcullis:".to_owned()),
                ca,
            }
        }
        other => {
            c.issue(
                "store.kind",
                format!("{other:?}: expected \"embedded\", \"redis\" or \"memory\""),
            );
            StoreConfig::Embedded {
                path: PathBuf::new(),
            }
        }
    }
}

fn login(c: &mut Checker, raw: raw::Login) -> LoginConfig {
    let cfg = LoginConfig {
        max_failures: c.positive("login.max_failures", raw.max_failures, 5, 1_000_000) as u32,
        window: c.span("login.window", raw.window.as_deref(), "15m"),
        lockout: c.span("login.lockout", raw.lockout.as_deref(), "15m"),
        users_file: c.optional_path(raw.users_file),
    };
    cfg
}

fn log(c: &mut Checker, raw: &raw::Log) -> LogConfig {
    let format = match raw.format.as_deref().unwrap_or("pretty") {
        "pretty" => LogFormat::Pretty,
        "json" => LogFormat::Json,
        other => {
            c.issue(
                "log.format",
                format!("{other:?}: expected \"pretty\" or \"json\""),
            );
            LogFormat::Pretty
        }
    };
    LogConfig {
        format,
        access_log: raw.access_log.unwrap_or(true),
    }
}

fn users(c: &mut Checker, prefix: &str, raw: Vec<raw::User>) -> Vec<UserConfig> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, u) in raw.into_iter().enumerate() {
        let key = format!("{prefix}[{i}]");
        let name = u.name.unwrap_or_default();
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            c.issue(
                format!("{key}.name"),
                "must be 1 to 256 printable characters",
            );
        }
        let hash = u.password_hash.unwrap_or_default();
        match argon2::PasswordHash::new(&hash) {
            Ok(phc) if phc.algorithm.as_str() == "argon2id" && phc.hash.is_some() => {}
            Ok(_) | Err(_) => c.issue(
                format!("{key}.password_hash"),
                "expected an argon2id PHC string ($argon2id$v=19$...); make one with \
                 `portcullis hash-password`",
            ),
        }
        out.push(UserConfig {
            name,
            password_hash: hash,
            roles: u.roles,
        });
    }
    out
}

fn users_file(c: &mut Checker, path: &Path) -> Vec<UserConfig> {
    let key = "login.users_file";
    // Password hashes are secrets too: the file is refused, like the signing key, if group or
    // others may read it.
    if let Err(e) = crate::keygen::check_private(path) {
        c.issue(key, e.to_string());
        return Vec::new();
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            c.issue(key, format!("cannot read {}: {e}", path.display()));
            return Vec::new();
        }
    };
    match toml::from_str::<raw::UsersFile>(&text) {
        Ok(file) => users(c, &format!("{key}: users"), file.users),
        Err(e) => {
            c.issue(
                key,
                format!("{}: {}", path.display(), e.to_string().trim_end()),
            );
            Vec::new()
        }
    }
}

fn check_unique_users(c: &mut Checker, users: &[UserConfig]) {
    let mut seen = HashSet::new();
    for user in users {
        if !user.name.is_empty() && !seen.insert(user.name.as_str()) {
            c.issue(
                "users",
                format!("user {:?} is defined more than once", user.name),
            );
        }
    }
}

fn routes(c: &mut Checker, raw: Vec<raw::Route>, endpoints: &Endpoints) -> Vec<RouteConfig> {
    let mut out: Vec<RouteConfig> = Vec::with_capacity(raw.len());
    let mut names = HashSet::new();
    let mut matches = HashSet::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = format!("routes[{i}]");
        let name = r.name.unwrap_or_else(|| format!("route{i}"));
        if !names.insert(name.clone()) {
            c.issue(
                format!("{key}.name"),
                format!("{name:?} is used by another route"),
            );
        }
        // Both are matched against the request's canonical host and path, so both must be
        // canonical themselves.
        let host =
            r.host
                .filter(|h| !h.is_empty())
                .map(|h| match crate::route::canonical_host(&h) {
                    Ok(canonical) if canonical.port().is_none() => canonical.name().to_owned(),
                    _ => {
                        c.issue(
                            format!("{key}.host"),
                            format!("{h:?}: a host name without port"),
                        );
                        h
                    }
                });
        let path_prefix = r.path_prefix.unwrap_or_else(|| "/".to_owned());
        let canonical =
            crate::route::canonical_path(&path_prefix).is_ok_and(|p| p == path_prefix.as_str());
        if !canonical || path_prefix.contains(['?', '#', '%']) {
            c.issue(
                format!("{key}.path_prefix"),
                format!(
                    "{path_prefix:?}: must start with '/' and be a canonical path: no '?', '#', \
                     '%', ';', '\\', dot or empty segments"
                ),
            );
        }
        if !matches.insert((host.clone(), path_prefix.clone())) {
            c.issue(
                format!("{key}.path_prefix"),
                format!("another route already matches {path_prefix:?} on the same host"),
            );
        }
        let upstreams = upstreams(c, &key, r.upstreams.as_deref().unwrap_or_default());
        let auth = match r.auth.as_deref().unwrap_or("required") {
            "required" => AuthMode::Required,
            "public" => AuthMode::Public,
            other => {
                c.issue(
                    format!("{key}.auth"),
                    format!("{other:?}: expected \"required\" or \"public\""),
                );
                AuthMode::Required
            }
        };
        let roles = r.roles.unwrap_or_default();
        if auth == AuthMode::Public && !roles.is_empty() {
            c.issue(
                format!("{key}.roles"),
                "a public route cannot require roles",
            );
        }
        let upstream_protocol = match r.upstream_protocol.as_deref().unwrap_or("http1") {
            "http1" => UpstreamProtocol::Http1,
            "http2" => UpstreamProtocol::Http2,
            other => {
                c.issue(
                    format!("{key}.upstream_protocol"),
                    format!("{other:?}: expected \"http1\" or \"http2\""),
                );
                UpstreamProtocol::Http1
            }
        };
        let upstream_ca = c.optional_path(r.upstream_ca);
        let websocket = r.websocket.unwrap_or(true);
        let case_insensitive = r.case_insensitive.unwrap_or(false);
        let allow_underscore_headers = r.allow_underscore_headers.unwrap_or(false);
        if path_prefix_shadows_endpoint(&path_prefix, endpoints) {
            c.notice(
                format!("{key}.path_prefix"),
                "the gateway's own endpoints take precedence over this route for their paths",
            );
        }
        out.push(RouteConfig {
            name,
            host,
            path_prefix,
            upstreams,
            auth,
            roles,
            strip_prefix: r.strip_prefix.unwrap_or(false),
            preserve_host: r.preserve_host.unwrap_or(true),
            forward_authorization: r.forward_authorization.unwrap_or(true),
            upstream_protocol,
            upstream_ca,
            connect_timeout: c.span(
                &format!("{key}.connect_timeout"),
                r.connect_timeout.as_deref(),
                "5s",
            ),
            timeout: c.span(&format!("{key}.timeout"), r.timeout.as_deref(), "60s"),
            websocket,
            case_insensitive,
            allow_underscore_headers,
        });
    }
    out
}

fn upstreams(c: &mut Checker, key: &str, raw: &[String]) -> Vec<http::Uri> {
    if raw.is_empty() {
        c.issue(
            format!("{key}.upstreams"),
            "at least one upstream URL is required",
        );
    }
    let mut out = Vec::with_capacity(raw.len());
    for (j, text) in raw.iter().enumerate() {
        let ukey = format!("{key}.upstreams[{j}]");
        match http::Uri::from_str(text) {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.authority().is_some() =>
            {
                if uri.query().is_some() {
                    c.issue(ukey, format!("{text:?}: must not have a query"));
                } else {
                    out.push(uri);
                }
            }
            Ok(uri) if uri.scheme_str() == Some("https") => {
                c.issue(
                    ukey,
                    format!("{text:?}: https upstreams are not supported yet"),
                );
            }
            _ => c.issue(
                ukey,
                format!("{text:?}: expected an http:// URL with a host"),
            ),
        }
    }
    out
}

fn path_prefix_shadows_endpoint(prefix: &str, endpoints: &Endpoints) -> bool {
    [
        &endpoints.token,
        &endpoints.logout,
        &endpoints.revoke,
        &endpoints.introspect,
        &endpoints.jwks,
        &endpoints.metadata,
    ]
    .iter()
    .any(|e| e.starts_with(prefix) && prefix != "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(text, Path::new("/etc/portcullis/portcullis.toml"))
    }

    fn keys(err: ConfigErrors) -> Vec<String> {
        err.0.into_iter().map(|i| i.key).collect()
    }

    #[test]
    fn empty_file_takes_every_default() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.server.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(cfg.tokens.algorithm, Algorithm::RS512);
        assert_eq!(cfg.tokens.access_ttl, Duration::from_secs(900));
        assert_eq!(cfg.tokens.refresh_ttl, Duration::from_secs(14 * 86_400));
        assert_eq!(
            cfg.tokens.max_session_lifetime,
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(
            cfg.tokens.signing_key,
            Path::new("/etc/portcullis/../certs/signing.pem")
        );
        assert_eq!(cfg.endpoints.token, "/api/oauth2/token");
        assert_eq!(cfg.admin.listen.to_string(), "127.0.0.1:9901");
    }

    #[test]
    fn the_reference_configuration_parses() {
        let cfg = parse(include_str!("../../config/reference.toml")).unwrap();
        assert_eq!(cfg.routes[0].host.as_deref(), Some("api.example.com"));
        assert_eq!(cfg.tokens.refresh_grace, Duration::ZERO);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse("[server]\nlisten_addr = \"0.0.0.0:1\"\n").unwrap_err();
        assert_eq!(keys(err), ["(syntax)"]);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = parse(
            r#"
            [server]
            listen = "nowhere"
            [tokens]
            access_ttl = "15 minutes"
            algorithm = "HS256"
            [[users]]
            name = "a"
            password_hash = "plain"
            [[routes]]
            path_prefix = "api"
            upstreams = ["ftp://x", "http://127.0.0.1:1"]
            auth = "maybe"
            "#,
        )
        .unwrap_err();
        assert_eq!(
            keys(err),
            [
                "server.listen",
                "tokens.algorithm",
                "tokens.access_ttl",
                "users[0].password_hash",
                "routes[0].path_prefix",
                "routes[0].upstreams[0]",
                "routes[0].auth",
            ]
        );
    }

    #[test]
    fn durations_longer_than_100_years_are_refused_naming_the_key() {
        let err = parse(
            r#"
            [server]
            idle_timeout = "36501d"
            [tokens]
            max_session_lifetime = "36500d"
            [login]
            lockout = "999999999999d"
            [[routes]]
            path_prefix = "/"
            upstreams = ["http://127.0.0.1:1"]
            timeout = "3153600001s"
            "#,
        )
        .unwrap_err();
        assert!(
            err.0.iter().all(|i| i.problem.contains("100 years")),
            "{err}"
        );
        assert_eq!(
            keys(err),
            ["server.idle_timeout", "login.lockout", "routes[0].timeout"]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_users_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("portcullis-users-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("users.toml");
        std::fs::write(&file, "").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let config = format!("[login]\nusers_file = {:?}\n", file.display().to_string());
        let err = parse(&config).unwrap_err();
        assert!(err.to_string().contains("mode 640"), "{err}");
        assert_eq!(keys(err), ["login.users_file"]);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        parse(&config).unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn redis_store_settings_are_checked_without_echoing_the_url() {
        let cfg = parse("[store]\nkind = \"redis\"\nurl = \"rediss://:pw@h:6380/1\"\n").unwrap();
        assert!(
            matches!(cfg.store, StoreConfig::Redis { ref key_prefix, ca: None, .. }
            if key_prefix == "portcullis:")
        );
        assert_eq!(
            keys(parse("[store]\nkind = \"redis\"\n").unwrap_err()),
            ["store.url"]
        );
        let err = parse("[store]\nkind = \"redis\"\nurl = \"http://:hunter2@h\"\n").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert_eq!(keys(err), ["store.url"]);
        let err = parse("[store]\nkind = \"redis\"\nurl = \"redis://h\"\nca = \"/nonexistent\"\n");
        assert_eq!(keys(err.unwrap_err()), ["store.ca", "store.ca"]);
    }

    #[test]
    fn zero_max_session_lifetime_means_none() {
        let cfg = parse("[tokens]\nmax_session_lifetime = \"0s\"\n").unwrap();
        assert_eq!(cfg.tokens.max_session_lifetime, None);
    }

    #[test]
    fn duplicate_routes_and_users_are_refused() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$ZGVhZGJlZWZkZWFkYmVlZmRlYWRiZWVmZGVhZGJlZWY";
        let text = format!(
            r#"
            [[users]]
            name = "a"
            password_hash = "{hash}"
            [[users]]
            name = "a"
            password_hash = "{hash}"
            [[routes]]
            name = "x"
            upstreams = ["http://127.0.0.1:1"]
            [[routes]]
            name = "x"
            upstreams = ["http://127.0.0.1:1"]
            "#
        );
        let err = parse(&text).unwrap_err();
        assert_eq!(
            keys(err),
            ["users", "routes[1].name", "routes[1].path_prefix"]
        );
    }
}
