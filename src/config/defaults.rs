//! Every default of the configuration, in one table (SPEC §4.2).
//!
//! Each entry is a key and its default; `validate/` takes both from here, and a test checks
//! `config/reference.toml` (which lists every key with its default) against the table, so the
//! two cannot drift apart. Route keys are written `routes[].key`.

// The table's read side (`ALL`, `Value`) serves `check --explain` and the reference test; the
// list and boolean keys only the test.
#![cfg_attr(not(test), allow(dead_code))]

/// A default, as the reference configuration writes it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Value {
    Str(&'static str),
    Int(i64),
    Bool(bool),
    EmptyList,
}

/// A key whose default is a string (paths, addresses, durations, names).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Str {
    pub(crate) key: &'static str,
    pub(crate) default: &'static str,
}

/// A key whose default is an integer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Int {
    pub(crate) key: &'static str,
    pub(crate) default: i64,
}

/// A key whose default is a boolean.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bool {
    pub(crate) key: &'static str,
    pub(crate) default: bool,
}

/// A key whose default is the empty list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct List {
    pub(crate) key: &'static str,
}

impl Str {
    const fn value(self) -> Value {
        Value::Str(self.default)
    }
}

impl Int {
    const fn value(self) -> Value {
        Value::Int(self.default)
    }
}

impl Bool {
    const fn value(self) -> Value {
        Value::Bool(self.default)
    }
}

impl List {
    const fn value(self) -> Value {
        Value::EmptyList
    }
}

macro_rules! defaults {
    ($($name:ident: $kind:ident $key:literal $(= $default:expr)?;)*) => {
        $(pub(crate) const $name: $kind = $kind { key: $key $(, default: $default)? };)*
        /// Every key that has a default, with it.
        pub(crate) const ALL: &[(&str, Value)] = &[$(($name.key, $name.value())),*];
    };
}

defaults! {
    SERVER_LISTEN: Str "server.listen" = "0.0.0.0:8443";
    SERVER_TLS: Bool "server.tls" = true;
    SERVER_TLS_CERT: Str "server.tls_cert" = "../certs/gateway.crt";
    SERVER_TLS_KEY: Str "server.tls_key" = "../certs/gateway.key";
    SERVER_HTTP2: Bool "server.http2" = true;
    SERVER_PUBLIC_URL: Str "server.public_url" = "";
    SERVER_MAX_HEADER_BYTES: Int "server.max_header_bytes" = 16384;
    SERVER_HEADER_READ_TIMEOUT: Str "server.header_read_timeout" = "10s";
    SERVER_IDLE_TIMEOUT: Str "server.idle_timeout" = "60s";
    SERVER_MAX_CONNECTIONS: Int "server.max_connections" = 10_000;
    SERVER_WORKERS: Int "server.workers" = 0;
    SERVER_SHUTDOWN_GRACE: Str "server.shutdown_grace" = "30s";
    SERVER_DRAIN_DELAY: Str "server.drain_delay" = "0s";
    SERVER_TRUSTED_PROXIES: List "server.trusted_proxies";

    ADMIN_LISTEN: Str "admin.listen" = "127.0.0.1:9901";
    ADMIN_ALLOWED_HOSTS: List "admin.allowed_hosts";

    ENDPOINT_TOKEN: Str "endpoints.token" = "/api/oauth2/token";
    ENDPOINT_LOGOUT: Str "endpoints.logout" = "/api/oauth2/logout";
    ENDPOINT_REVOKE: Str "endpoints.revoke" = "/api/oauth2/revoke";
    ENDPOINT_INTROSPECT: Str "endpoints.introspect" = "/api/oauth2/introspect";
    ENDPOINT_JWKS: Str "endpoints.jwks" = "/.well-known/jwks.json";
    ENDPOINT_METADATA: Str "endpoints.metadata" = "/.well-known/oauth-authorization-server";

    TOKENS_ISSUER: Str "tokens.issuer" = "portcullis";
    TOKENS_ALGORITHM: Str "tokens.algorithm" = "RS512";
    TOKENS_SIGNING_KEY: Str "tokens.signing_key" = "../certs/signing.pem";
    TOKENS_VERIFY_KEYS: List "tokens.verify_keys";
    TOKENS_ACCESS_TTL: Str "tokens.access_ttl" = "15m";
    TOKENS_REFRESH_TTL: Str "tokens.refresh_ttl" = "14d";
    TOKENS_SHORT_REFRESH_TTL: Str "tokens.short_refresh_ttl" = "30m";
    TOKENS_MAX_SESSION_LIFETIME: Str "tokens.max_session_lifetime" = "90d";
    TOKENS_LEEWAY: Str "tokens.leeway" = "30s";
    TOKENS_REFRESH_GRACE: Str "tokens.refresh_grace" = "0s";
    TOKENS_VERIFIED_CACHE: Int "tokens.verified_cache" = 10_000;

    STORE_KIND: Str "store.kind" = "embedded";
    STORE_PATH: Str "store.path" = "../data/sessions.db";
    STORE_KEY_PREFIX: Str "store.key_prefix" = "portcullis:";

    LOGIN_MAX_FAILURES: Int "login.max_failures" = 5;
    LOGIN_WINDOW: Str "login.window" = "15m";
    LOGIN_LOCKOUT: Str "login.lockout" = "15m";
    LOGIN_USERS_FILE: Str "login.users_file" = "";

    LOG_FORMAT: Str "log.format" = "pretty";
    LOG_ACCESS_LOG: Bool "log.access_log" = true;
    LOG_ACCESS_FIELDS: List "log.access_fields";

    ROUTE_PATH_PREFIX: Str "routes[].path_prefix" = "/";
    ROUTE_AUTH: Str "routes[].auth" = "required";
    ROUTE_ROLES: List "routes[].roles";
    ROUTE_STRIP_PREFIX: Bool "routes[].strip_prefix" = false;
    ROUTE_PRESERVE_HOST: Bool "routes[].preserve_host" = true;
    ROUTE_FORWARD_AUTHORIZATION: Bool "routes[].forward_authorization" = true;
    ROUTE_UPSTREAM_PROTOCOL: Str "routes[].upstream_protocol" = "http1";
    ROUTE_UPSTREAM_CA: Str "routes[].upstream_ca" = "";
    ROUTE_CONNECT_TIMEOUT: Str "routes[].connect_timeout" = "5s";
    ROUTE_TIMEOUT: Str "routes[].timeout" = "60s";
    ROUTE_WEBSOCKET: Bool "routes[].websocket" = true;
    ROUTE_CASE_INSENSITIVE: Bool "routes[].case_insensitive" = false;
    ROUTE_ALLOW_UNDERSCORE_HEADERS: Bool "routes[].allow_underscore_headers" = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str = include_str!("../../config/reference.toml");

    /// Keys of the reference configuration that have no default.
    const WITHOUT_DEFAULT: &[&str] = &[
        "routes[].name",
        "routes[].host",
        "routes[].upstreams",
        "store.url",
        "store.ca",
    ];

    fn lookup<'a>(root: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
        match key.strip_prefix("routes[].") {
            Some(leaf) => root.get("routes")?.as_array()?.first()?.get(leaf),
            None => {
                let (section, leaf) = key.split_once('.')?;
                root.get(section)?.get(leaf)
            }
        }
    }

    fn same(value: Value, written: &toml::Value) -> bool {
        match (value, written) {
            (Value::Str(s), toml::Value::String(w)) => s == w,
            (Value::Int(i), toml::Value::Integer(w)) => i == *w,
            (Value::Bool(b), toml::Value::Boolean(w)) => b == *w,
            (Value::EmptyList, toml::Value::Array(w)) => w.is_empty(),
            _ => false,
        }
    }

    #[test]
    fn the_reference_configuration_writes_every_default() {
        let root: toml::Table = toml::from_str(REFERENCE).unwrap();
        for (key, value) in ALL {
            match lookup(&root, key) {
                Some(written) => {
                    assert!(same(*value, written), "{key}: {written} is not {value:?}")
                }
                None => {
                    // Keys of one store kind only are written as comments.
                    let leaf = key.rsplit('.').next().unwrap_or(key);
                    let Value::Str(s) = value else {
                        panic!("{key} is missing from config/reference.toml");
                    };
                    let line = format!("# {leaf} = \"{s}\"");
                    assert!(
                        REFERENCE.contains(&line),
                        "{key} is missing from config/reference.toml"
                    );
                }
            }
        }
    }

    #[test]
    fn every_key_of_the_reference_configuration_is_in_the_table() {
        let root: toml::Table = toml::from_str(REFERENCE).unwrap();
        for (section, table) in &root {
            let entries = match table {
                toml::Value::Table(t) => t.iter().map(|(k, _)| format!("{section}.{k}")).collect(),
                toml::Value::Array(routes) => routes
                    .iter()
                    .filter_map(toml::Value::as_table)
                    .flat_map(|t| {
                        t.keys()
                            .map(|k| format!("routes[].{k}"))
                            .collect::<Vec<_>>()
                    })
                    .collect(),
                _ => vec![section.clone()],
            };
            for key in entries {
                assert!(
                    ALL.iter().any(|(k, _)| *k == key) || WITHOUT_DEFAULT.contains(&key.as_str()),
                    "{key} is in config/reference.toml but not in defaults.rs"
                );
            }
        }
    }
}
