//! The serde mirror of the TOML file: every key of SPEC §4.2, no logic.
//!
//! `deny_unknown_fields` everywhere, so a misspelt key is an error rather than a silent default.
//! Every value is optional here; defaults and checks live in `validate.rs`.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Root {
    #[serde(default)]
    pub(crate) server: Server,
    #[serde(default)]
    pub(crate) admin: Admin,
    #[serde(default)]
    pub(crate) endpoints: Endpoints,
    #[serde(default)]
    pub(crate) tokens: Tokens,
    #[serde(default)]
    pub(crate) store: Store,
    #[serde(default)]
    pub(crate) login: Login,
    #[serde(default)]
    pub(crate) log: Log,
    #[serde(default)]
    pub(crate) users: Vec<User>,
    #[serde(default)]
    pub(crate) routes: Vec<Route>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Server {
    pub(crate) listen: Option<String>,
    pub(crate) tls: Option<bool>,
    pub(crate) tls_cert: Option<String>,
    pub(crate) tls_key: Option<String>,
    pub(crate) http2: Option<bool>,
    pub(crate) public_url: Option<String>,
    pub(crate) max_header_bytes: Option<i64>,
    pub(crate) header_read_timeout: Option<String>,
    pub(crate) idle_timeout: Option<String>,
    pub(crate) max_connections: Option<i64>,
    pub(crate) workers: Option<i64>,
    pub(crate) shutdown_grace: Option<String>,
    pub(crate) drain_delay: Option<String>,
    pub(crate) trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Admin {
    pub(crate) listen: Option<String>,
    pub(crate) allowed_hosts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Endpoints {
    pub(crate) token: Option<String>,
    pub(crate) logout: Option<String>,
    pub(crate) revoke: Option<String>,
    pub(crate) introspect: Option<String>,
    pub(crate) jwks: Option<String>,
    pub(crate) metadata: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tokens {
    pub(crate) issuer: Option<String>,
    pub(crate) algorithm: Option<String>,
    pub(crate) signing_key: Option<String>,
    pub(crate) verify_keys: Option<Vec<String>>,
    pub(crate) access_ttl: Option<String>,
    pub(crate) refresh_ttl: Option<String>,
    pub(crate) short_refresh_ttl: Option<String>,
    pub(crate) max_session_lifetime: Option<String>,
    pub(crate) leeway: Option<String>,
    pub(crate) refresh_grace: Option<String>,
    pub(crate) verified_cache: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Store {
    pub(crate) kind: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) url: Option<String>,
    /// A file holding `url` (a secret: it may carry a password).
    pub(crate) url_file: Option<String>,
    pub(crate) key_prefix: Option<String>,
    pub(crate) ca: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    pub(crate) max_failures: Option<i64>,
    pub(crate) window: Option<String>,
    pub(crate) lockout: Option<String>,
    pub(crate) users_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Log {
    pub(crate) format: Option<String>,
    pub(crate) access_log: Option<bool>,
    pub(crate) access_fields: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct User {
    pub(crate) name: Option<String>,
    pub(crate) password_hash: Option<String>,
    /// A file holding `password_hash`.
    pub(crate) password_hash_file: Option<String>,
    #[serde(default)]
    pub(crate) roles: Vec<String>,
}

/// A `users_file`: only `[[users]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsersFile {
    #[serde(default)]
    pub(crate) users: Vec<User>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Route {
    pub(crate) name: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) path_prefix: Option<String>,
    pub(crate) upstreams: Option<Vec<String>>,
    pub(crate) auth: Option<String>,
    pub(crate) roles: Option<Vec<String>>,
    pub(crate) strip_prefix: Option<bool>,
    pub(crate) preserve_host: Option<bool>,
    pub(crate) forward_authorization: Option<bool>,
    pub(crate) upstream_protocol: Option<String>,
    pub(crate) upstream_ca: Option<String>,
    pub(crate) connect_timeout: Option<String>,
    pub(crate) timeout: Option<String>,
    pub(crate) websocket: Option<bool>,
    pub(crate) case_insensitive: Option<bool>,
    pub(crate) allow_underscore_headers: Option<bool>,
}
