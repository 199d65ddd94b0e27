//! `raw::Root` → `Config`: defaults filled in, every value parsed, every problem collected.
//!
//! Problems are collected rather than returned at the first one, so that `portcullis check`
//! shows all of them at once, each with the dotted key it belongs to. One file per section;
//! every default comes from `defaults.rs`.

mod endpoints;
mod log;
mod login;
mod routes;
mod server;
mod store;
mod tokens;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::defaults;
use super::raw;
use super::{Config, ConfigErrors, ConfigIssue, Span};

/// Collects issues while converting; `base` is the folder relative paths are resolved against.
pub(super) struct Checker {
    base: PathBuf,
    issues: Vec<ConfigIssue>,
    notices: Vec<ConfigIssue>,
}

impl Checker {
    pub(super) fn issue(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.issues.push(ConfigIssue::new(key, problem));
    }

    /// How many issues so far: to tell whether a step added one.
    pub(super) fn issue_count(&self) -> usize {
        self.issues.len()
    }

    pub(super) fn notice(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.notices.push(ConfigIssue::new(key, problem));
    }

    /// The duration `value` of `d`'s key, else its default.
    pub(super) fn span(&mut self, d: defaults::Str, value: Option<&str>) -> Duration {
        self.span_at(d.key, value, d.default)
    }

    /// The duration `value` of `key` (a key of one route), else `default`.
    pub(super) fn span_at(&mut self, key: &str, value: Option<&str>, default: &str) -> Duration {
        let text = value.unwrap_or(default);
        match Span::parse(text) {
            Ok(span) => span.duration(),
            Err(e) => {
                self.issue(key, format!("{text:?}: {e}"));
                Duration::ZERO
            }
        }
    }

    /// The integer `value` of `d`'s key in `1..=max`, else its default.
    pub(super) fn positive(&mut self, d: defaults::Int, value: Option<i64>, max: i64) -> i64 {
        let n = value.unwrap_or(d.default);
        if n <= 0 || n > max {
            self.issue(d.key, format!("{n}: must be between 1 and {max}"));
            return d.default;
        }
        n
    }

    /// The socket address `value` of `d`'s key, else its default.
    pub(super) fn addr(&mut self, d: defaults::Str, value: Option<&str>) -> SocketAddr {
        let text = value.unwrap_or(d.default);
        SocketAddr::from_str(text).unwrap_or_else(|_| {
            self.issue(
                d.key,
                format!("{text:?}: expected an IP address and port, e.g. \"0.0.0.0:8443\""),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    /// The secret of `key`: `value`, or the contents of the file `file` names (relative to the
    /// config file's folder), read now, so that a reload reads it again. Trailing line ends are
    /// not part of it. `None` when neither is set or the file is unusable (an issue naming
    /// `<key>_file` and the path, never the contents).
    pub(super) fn secret(
        &mut self,
        key: &str,
        value: Option<String>,
        file: Option<String>,
    ) -> Option<String> {
        let file_key = format!("{key}_file");
        let Some(file) = file else {
            return value;
        };
        if value.is_some() {
            let leaf = key.rsplit('.').next().unwrap_or(key);
            self.issue(
                file_key,
                format!("{leaf} is set too; set only one of the two"),
            );
            return value;
        }
        let path = self.path(&file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let secret = text.trim_end_matches(['\n', '\r']);
                if secret.is_empty() {
                    self.issue(file_key, format!("{} is empty", path.display()));
                    return None;
                }
                Some(secret.to_owned())
            }
            Err(e) => {
                self.issue(file_key, format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    }

    pub(super) fn path(&self, text: &str) -> PathBuf {
        self.base.join(text)
    }

    /// `Some(path)` for a non-empty string, `None` for `""` or absent.
    pub(super) fn optional_path(&self, value: Option<String>) -> Option<PathBuf> {
        value.filter(|s| !s.is_empty()).map(|s| self.path(&s))
    }

    /// The endpoint path `value` of `d`'s key, else its default.
    pub(super) fn endpoint(&mut self, d: defaults::Str, value: Option<String>) -> String {
        let path = value.unwrap_or_else(|| d.default.to_owned());
        if !path.starts_with('/') || path.contains(['?', '#']) {
            self.issue(
                d.key,
                format!("{path:?}: must be a path starting with '/', without query"),
            );
        }
        path
    }
}

/// `admin.listen` alone, for the commands that only talk to a running gateway.
pub(super) fn admin_listen(raw: &raw::Admin) -> Result<SocketAddr, ConfigErrors> {
    let mut c = Checker {
        base: PathBuf::new(),
        issues: Vec::new(),
        notices: Vec::new(),
    };
    let listen = c.addr(defaults::ADMIN_LISTEN, raw.listen.as_deref());
    if c.issues.is_empty() {
        Ok(listen)
    } else {
        Err(ConfigErrors(c.issues))
    }
}

pub(super) fn validate(raw: raw::Root, source: &Path) -> Result<Config, ConfigErrors> {
    let base = source.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut c = Checker {
        base,
        issues: Vec::new(),
        notices: Vec::new(),
    };

    let server = server::server(&mut c, raw.server);
    let admin = server::admin(&mut c, raw.admin);
    let endpoints = endpoints::endpoints(&mut c, raw.endpoints);
    let tokens = tokens::tokens(&mut c, raw.tokens, server.public_url.as_deref());
    let store = store::store(&mut c, raw.store);
    let login = login::login(&mut c, raw.login);
    let log = log::log(&mut c, &raw.log);
    let mut users = login::users(&mut c, "users", raw.users);
    if let Some(file) = &login.users_file {
        users.extend(login::users_file(&mut c, file));
    }
    login::check_unique_users(&mut c, &users);
    let routes = routes::routes(&mut c, raw.routes, &endpoints);

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
            settings: Vec::new(),
        })
    } else {
        Err(ConfigErrors(c.issues))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::{Algorithm, StoreConfig};

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
        assert_eq!(
            cfg.endpoints.path(crate::config::Endpoint::Token),
            "/api/oauth2/token"
        );
        assert_eq!(
            cfg.endpoints.find("/.well-known/jwks.json"),
            Some(crate::config::Endpoint::Jwks)
        );
        assert_eq!(cfg.admin.listen.to_string(), "127.0.0.1:9901");
    }

    #[test]
    fn the_reference_configuration_parses() {
        let cfg = parse(include_str!("../../../config/reference.toml")).unwrap();
        assert_eq!(cfg.routes[0].host.as_deref(), Some("api.example.com"));
        assert_eq!(cfg.tokens.refresh_grace, Duration::ZERO);
    }

    #[test]
    fn unknown_keys_are_refused_all_at_once_beside_the_other_problems() {
        let err = parse("[server]\nlisten_addr = \"0.0.0.0:1\"\n").unwrap_err();
        assert_eq!(err.0[0].problem, "unknown key; did you mean `listen`?");
        assert_eq!(keys(err), ["server.listen_addr"]);
        let err = parse(
            "[server]\nlisten_on = 1\n[tokens]\nacess_ttl = \"1m\"\nrefresh_ttl = \"soon\"\n",
        )
        .unwrap_err();
        assert_eq!(
            keys(err),
            ["server.listen_on", "tokens.acess_ttl", "tokens.refresh_ttl"]
        );
        let err = parse("[server]\nlisten_on = 1\nlisten = 5\n").unwrap_err();
        assert_eq!(keys(err), ["server.listen_on", "(syntax)"]);
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
    fn an_upstream_without_a_host_is_refused_for_what_it_is() {
        let err = parse(
            r#"
            [[routes]]
            path_prefix = "/"
            upstreams = ["https:///x", "http:/x", "https://127.0.0.1:1/?q"]
            "#,
        )
        .unwrap_err();
        let problems: Vec<&str> = err.0.iter().map(|i| i.problem.as_str()).collect();
        assert_eq!(
            problems,
            [
                "\"https:///x\": expected an http:// or https:// URL with a host",
                "\"http:/x\": expected an http:// or https:// URL with a host",
                "\"https://127.0.0.1:1/?q\": must not have a query",
            ],
            "{err}"
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
    fn the_issuer_defaults_to_public_url_and_an_explicit_one_wins() {
        let notes =
            |cfg: &Config| -> Vec<String> { cfg.notices.iter().map(|n| n.key.clone()).collect() };
        let cfg = parse("").unwrap();
        assert_eq!(cfg.tokens.issuer, "portcullis");
        assert_eq!(notes(&cfg), ["tokens.issuer"], "not an https URL: a note");
        let cfg = parse("[server]\npublic_url = \"https://gw.example.com/\"\n").unwrap();
        assert_eq!(cfg.tokens.issuer, "https://gw.example.com");
        assert!(notes(&cfg).is_empty(), "{:?}", cfg.notices);
        let cfg =
            parse("[server]\npublic_url = \"https://gw.example.com\"\n[tokens]\nissuer = \"me\"\n")
                .unwrap();
        assert_eq!(cfg.tokens.issuer, "me");
        assert_eq!(notes(&cfg), ["tokens.issuer"]);
        assert!(cfg.notices[0].problem.contains("RFC 8414"));
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parse_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        Config::parse_with_env(
            text,
            Path::new("/etc/portcullis/portcullis.toml"),
            &env(vars),
        )
    }

    /// A fresh folder and a config path in it, for `*_file` secrets beside the file.
    fn folder() -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("portcullis-env-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("portcullis.toml");
        (dir, config)
    }

    #[test]
    fn the_environment_wins_over_the_file_and_is_recorded_as_the_source() {
        let cfg = parse_env(
            "[tokens]\naccess_ttl = \"15m\"\n[store]\nkind = \"redis\"\nurl = \"redis://file\"\n",
            &[
                ("PORTCULLIS_TOKENS_ACCESS_TTL", "2m"),
                ("PORTCULLIS_STORE_URL", "redis://:hunter2@env:6379/0"),
                ("PATH", "/usr/bin"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.tokens.access_ttl, Duration::from_secs(120));
        assert!(
            matches!(&cfg.store, StoreConfig::Redis { url, .. } if url == "redis://:hunter2@env:6379/0"),
            "{:?}",
            cfg.store
        );
        let source = |key: &str| {
            let s = cfg.settings.iter().find(|s| s.key == key).unwrap();
            format!("{} {}", s.source, s.value)
        };
        assert_eq!(
            source("tokens.access_ttl"),
            "env PORTCULLIS_TOKENS_ACCESS_TTL \"2m\""
        );
        assert_eq!(
            source("store.url"),
            "env PORTCULLIS_STORE_URL \"redis://:***@env:6379/0\""
        );
        assert_eq!(source("store.kind"), "file \"redis\"");
        assert_eq!(source("tokens.refresh_ttl"), "default \"14d\"");
        assert!(cfg.notices.iter().all(|n| !n.key.starts_with("PORTCULLIS")));
        // `Config::parse` is the file alone.
        let cfg = parse("[tokens]\naccess_ttl = \"15m\"\n").unwrap();
        assert_eq!(cfg.tokens.access_ttl, Duration::from_secs(900));
    }

    #[test]
    fn a_bad_value_from_the_environment_names_its_key_and_variable() {
        let err = parse_env(
            "[server]\nlisten = \"nowhere\"\n",
            &[
                ("PORTCULLIS_TOKENS_ACCESS_TTL", "soon"),
                ("PORTCULLIS_SERVER_MAX_CONNECTIONS", "lots"),
            ],
        )
        .unwrap_err();
        assert_eq!(
            keys(err),
            [
                "server.max_connections (from PORTCULLIS_SERVER_MAX_CONNECTIONS)",
                "server.listen",
                "tokens.access_ttl (from PORTCULLIS_TOKENS_ACCESS_TTL)",
            ]
        );
        // The file's own type errors keep their line.
        let err = parse_env(
            "[server]\nlisten = 5\n",
            &[("PORTCULLIS_LOG_FORMAT", "json")],
        )
        .unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn a_variable_that_names_no_key_is_a_notice_not_an_error() {
        let cfg = parse_env(
            "",
            &[
                ("PORTCULLIS_FOO", "1"),
                ("PORTCULLIS_CONFIG", "/etc/portcullis/portcullis.toml"),
            ],
        )
        .unwrap();
        let notes: Vec<&str> = cfg.notices.iter().map(|n| n.key.as_str()).collect();
        assert!(notes.contains(&"PORTCULLIS_FOO"), "{notes:?}");
        assert!(!notes.contains(&"PORTCULLIS_CONFIG"), "{notes:?}");
    }

    #[test]
    fn a_store_url_file_is_read_and_problems_with_it_name_the_key() {
        let (dir, config) = folder();
        let url = "redis://:hunter2@h:6379/0";
        std::fs::write(dir.join("redis-url"), format!("{url}\n")).unwrap();
        let parse_in =
            |text: &str, vars: &[(&str, &str)]| Config::parse_with_env(text, &config, &env(vars));
        let redis = "[store]\nkind = \"redis\"\n";
        let cfg = parse_in(&format!("{redis}url_file = \"redis-url\"\n"), &[]).unwrap();
        assert!(
            matches!(&cfg.store, StoreConfig::Redis { url: u, .. } if u == url),
            "the trailing newline is not part of it: {:?}",
            cfg.store
        );
        let setting = cfg.settings.iter().find(|s| s.key == "store.url").unwrap();
        assert_eq!(
            setting.source,
            crate::config::Source::SecretFile(dir.join("redis-url"))
        );
        assert_eq!(setting.value, "\"redis://:***@h:6379/0\"");
        // From the environment, as a container's secret would be.
        let path = dir.join("redis-url").display().to_string();
        let cfg = parse_in(redis, &[("PORTCULLIS_STORE_URL_FILE", &path)]).unwrap();
        assert!(matches!(&cfg.store, StoreConfig::Redis { url: u, .. } if u == url));

        let err = parse_in(&format!("{redis}url_file = \"missing\"\n"), &[]).unwrap_err();
        assert_eq!(keys(ConfigErrors(err.0.clone())), ["store.url_file"]);
        assert!(
            err.0[0]
                .problem
                .contains(&dir.join("missing").display().to_string()),
            "{err}"
        );
        let err = parse_in(
            &format!("{redis}url = \"{url}\"\nurl_file = \"redis-url\"\n"),
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err.0[0].to_string(),
            "store.url_file: url is set too; set only one of the two"
        );
        let err = parse_in(redis, &[("PORTCULLIS_STORE_URL_FILE", "missing")]).unwrap_err();
        assert_eq!(
            keys(err),
            ["store.url_file (from PORTCULLIS_STORE_URL_FILE)"]
        );
        std::fs::write(dir.join("empty"), "\n").unwrap();
        let err = parse_in(&format!("{redis}url_file = \"empty\"\n"), &[]).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
        assert!(!err.to_string().contains("hunter2"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_password_hash_file_is_read_and_problems_with_it_name_the_key() {
        let (dir, config) = folder();
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$ZGVhZGJlZWZkZWFkYmVlZmRlYWRiZWVmZGVhZGJlZWY";
        std::fs::write(dir.join("alice.hash"), format!("{hash}\r\n")).unwrap();
        let user = |line: &str| format!("[[users]]\nname = \"alice\"\n{line}\n");
        let cfg = Config::parse(&user("password_hash_file = \"alice.hash\""), &config).unwrap();
        assert_eq!(cfg.users[0].password_hash, hash);
        let setting = cfg
            .settings
            .iter()
            .find(|s| s.key == "users[0].password_hash")
            .unwrap();
        assert_eq!(
            format!("{} {}", setting.source, setting.value),
            format!("file {} (redacted)", dir.join("alice.hash").display())
        );

        let err = Config::parse(&user("password_hash_file = \"nope\""), &config).unwrap_err();
        assert_eq!(
            keys(ConfigErrors(err.0.clone())),
            ["users[0].password_hash_file"]
        );
        assert!(err.to_string().contains("nope"), "{err}");
        let both = user(&format!(
            "password_hash = \"{hash}\"\npassword_hash_file = \"alice.hash\""
        ));
        let err = Config::parse(&both, &config).unwrap_err();
        assert_eq!(keys(err), ["users[0].password_hash_file"]);
        let _ = std::fs::remove_dir_all(dir);
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
