//! What the gateway holds: `Shared` for the life of the process, `Snapshot` per configuration.
//!
//! `Snapshot` is everything a reload may replace (routes, users, keys, validation rules, TLS
//! certificate), built completely off to the side and then swapped in with one `ArcSwap::store`.
//! `Shared` is what must outlive a reload: the session store with its deny list, the
//! certificate resolver the TLS acceptor keeps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rustls::sign::CertifiedKey;

use crate::auth::Verifier;
use crate::certs::{self, CertResolver};
use crate::config::StoreConfig;
use crate::config::{Config, ConfigErrors, ConfigIssue, LogFormat};
use crate::jwt::{KeyError, KeyRole, KeySet, Rules, ACCESS_AUDIENCE, REFRESH_AUDIENCE};
use crate::login::Users;
use crate::proxy::Upstream;
use crate::route::Router;
use crate::session::{EmbeddedStore, MemoryStore, RedisStore, SessionStore, StoreError};

/// One generation of configuration, ready to serve.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    /// The keys that sign new tokens and verify presented ones (shared with `verifier`).
    pub keys: Arc<KeySet>,
    pub users: Arc<Users>,
    pub router: Router<Upstream>,
    /// The JWKS document, rendered once.
    pub jwks: bytes::Bytes,
    /// Checks access tokens, with a cache of those verified under this snapshot's settings.
    pub verifier: Verifier,
    /// What a refresh token must say.
    pub refresh_rules: Rules,
    /// `None` when `server.tls = false`.
    pub certificate: Option<Arc<CertifiedKey>>,
}

impl Snapshot {
    /// Puts the snapshot's counters (the verified-token cache's, each route's) on `metrics`'
    /// families; done once, when it goes into service.
    fn count_into(&mut self, metrics: &crate::metrics::Metrics) {
        self.verifier.count_into(metrics.token_cache_counters());
        self.router.count_into(metrics);
    }

    /// Loads the key material `config` names and builds everything per-generation. Problems are
    /// reported with the key they belong to, like configuration errors.
    pub fn build(mut config: Config) -> Result<Snapshot, ConfigErrors> {
        let mut issues = Vec::new();
        let notices = no_roots_notices(&config);
        config.notices.extend(notices);
        let t = &config.tokens;
        let keys = KeySet::load(t.algorithm, &t.signing_key, &t.verify_keys)
            .map_err(|e| {
                issues.push(ConfigIssue::new(
                    key_of(&e),
                    crate::telemetry::error_chain(&e),
                ))
            })
            .ok();
        let certificate = match &config.server.tls {
            // The private key must be private, like the signing key; then both files must load.
            Some(files) => crate::keygen::check_private(&files.key)
                .map_err(|e| {
                    issues.push(ConfigIssue::new(
                        "server.tls_key",
                        crate::telemetry::error_chain(&e),
                    ))
                })
                .ok()
                .and_then(|()| {
                    certs::load_certified_key(&files.cert, &files.key)
                        .map_err(|e| {
                            // An unreadable key is the key's problem, the rest the chain's.
                            let key = match e {
                                certs::CertError::Key(..) => "server.tls_key",
                                _ => "server.tls_cert",
                            };
                            issues.push(ConfigIssue::new(key, crate::telemetry::error_chain(&e)))
                        })
                        .ok()
                })
                .map(Arc::new),
            None => None,
        };
        // Every route's upstream client; each failure names its route.
        let mut upstreams = Vec::with_capacity(config.routes.len());
        for (i, route) in config.routes.iter().enumerate() {
            match Upstream::new(route, config.server.workers) {
                Ok(upstream) => upstreams.push((route.clone(), upstream)),
                Err(e) => issues.push(ConfigIssue::new(
                    format!("routes[{i}].upstream_ca"),
                    crate::telemetry::error_chain(&e),
                )),
            }
        }
        let router = Router::new(upstreams);
        let (Some(keys), true) = (keys, issues.is_empty()) else {
            return Err(config.attribute(ConfigErrors(issues)));
        };
        let keys = Arc::new(keys);
        let access_rules = Rules::new(ACCESS_AUDIENCE, &t.issuer, t.leeway);
        Ok(Snapshot {
            verifier: Verifier::new(keys.clone(), access_rules, t.verified_cache),
            refresh_rules: Rules::new(REFRESH_AUDIENCE, &t.issuer, t.leeway),
            jwks: crate::token::discovery::jwks(&keys),
            users: Arc::new(Users::new(&config.users)),
            router,
            keys,
            certificate,
            config: Arc::new(config),
        })
    }
}

/// A warning for each TLS client of `config` that trusts the system's roots when the system
/// has none: an `https://` upstream without `upstream_ca`, a `rediss://` store without
/// `store.ca`. (Logged at start and reload with the other notices; `check` prints them.)
fn no_roots_notices(config: &Config) -> Vec<ConfigIssue> {
    let system = std::cell::OnceCell::new();
    let count = || *system.get_or_init(|| certs::system_roots().len());
    let routes = config.routes.iter().enumerate().filter_map(|(i, route)| {
        let https = (route.upstreams.iter()).any(|u| u.scheme_str() == Some("https"));
        let ca = route.upstream_ca.as_deref();
        certs::no_roots_notice(format!("routes[{i}].upstreams"), https, ca, count)
    });
    let mut notices: Vec<ConfigIssue> = routes.collect();
    if let StoreConfig::Redis { url, ca, .. } = &config.store {
        let tls = url.starts_with("rediss://");
        let key = "store.url".to_owned();
        notices.extend(certs::no_roots_notice(key, tls, ca.as_deref(), count));
    }
    notices
}

/// The configuration key a key-loading error belongs to.
fn key_of(e: &KeyError) -> &'static str {
    match e.key() {
        None => "tokens.algorithm",
        Some(KeyRole::Signing) => "tokens.signing_key",
        Some(KeyRole::Verify(_)) => "tokens.verify_keys",
    }
}

/// What belongs to the listeners, decided once when they are bound: their addresses, TLS on or
/// off, HTTP/2, the connection cap, and the log format. A reload that changes any of it warns,
/// naming each key ([`Shared::replace`]), and applies none of it. The per-connection limits
/// (`header_read_timeout`, `idle_timeout`, `max_header_bytes`) are not here: each connection
/// takes them from the snapshot current when it is accepted.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ListenerSettings {
    /// `server.listen`
    pub listen: SocketAddr,
    /// `server.tls`: on or off (the certificate itself reloads).
    pub tls: bool,
    /// `server.http2`: ALPN `h2` with TLS, h2c prior knowledge without.
    pub http2: bool,
    /// `server.max_connections`
    pub max_connections: usize,
    /// `server.workers`, resolved (never 0).
    pub workers: usize,
    /// `admin.listen`
    pub admin_listen: SocketAddr,
    /// `log.format`
    pub log_format: LogFormat,
}

impl ListenerSettings {
    pub fn of(config: &Config) -> Self {
        Self {
            listen: config.server.listen,
            tls: config.server.tls.is_some(),
            http2: config.server.http2,
            max_connections: config.server.max_connections,
            workers: config.server.workers,
            admin_listen: config.admin.listen,
            log_format: config.log.format,
        }
    }

    /// Where `configured` differs from these settings, one entry per configuration key.
    pub fn changes(&self, configured: &ListenerSettings) -> Vec<ListenerChange> {
        let mut changes = Vec::new();
        let mut compare = |key, running: String, configured: String| {
            if running != configured {
                changes.push(ListenerChange {
                    key,
                    running,
                    configured,
                });
            }
        };
        compare(
            "server.listen",
            self.listen.to_string(),
            configured.listen.to_string(),
        );
        compare(
            "server.tls",
            self.tls.to_string(),
            configured.tls.to_string(),
        );
        compare(
            "server.http2",
            self.http2.to_string(),
            configured.http2.to_string(),
        );
        compare(
            "server.max_connections",
            self.max_connections.to_string(),
            configured.max_connections.to_string(),
        );
        compare(
            "server.workers",
            self.workers.to_string(),
            configured.workers.to_string(),
        );
        compare(
            "admin.listen",
            self.admin_listen.to_string(),
            configured.admin_listen.to_string(),
        );
        compare(
            "log.format",
            format!("{:?}", self.log_format).to_lowercase(),
            format!("{:?}", configured.log_format).to_lowercase(),
        );
        changes
    }
}

/// One listener setting a configuration changes: its key and both values, for the log.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ListenerChange {
    pub key: &'static str,
    pub running: String,
    pub configured: String,
}

/// Process-lifetime state shared by every connection.
#[derive(Debug)]
pub struct Shared {
    snapshot: ArcSwap<Snapshot>,
    pub sessions: SessionStore,
    pub throttle: crate::login::LoginThrottle,
    /// Where password hashes run: bounded, off the async workers.
    pub hashing: crate::login::HashPool,
    pub replays: crate::token::ReplayCache,
    pub metrics: crate::metrics::Metrics,
    /// The wall clock of tokens, sessions and deadlines.
    pub clock: crate::clock::Clock,
    /// Present when serving TLS; the acceptor resolves certificates through it.
    pub certs: Option<Arc<CertResolver>>,
    /// What the listeners were bound with, from the first snapshot; reloads do not change it.
    pub listener: ListenerSettings,
    /// Set once shutdown has begun: `/readyz` answers 503 from then on.
    draining: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Opens the session store `snapshot` names and makes `snapshot` current; its
    /// [`ListenerSettings`] are the listeners' from now on.
    pub fn new(snapshot: Snapshot) -> Result<Arc<Self>, StoreError> {
        Self::with_clock(snapshot, crate::clock::Clock::system())
    }

    /// `new`, reading the time from `clock` (an adjustable one in tests).
    pub fn with_clock(
        snapshot: Snapshot,
        clock: crate::clock::Clock,
    ) -> Result<Arc<Self>, StoreError> {
        let listener = ListenerSettings::of(&snapshot.config);
        let certs = snapshot
            .certificate
            .clone()
            .map(|k| Arc::new(CertResolver::new(k)));
        let sessions = match &snapshot.config.store {
            StoreConfig::Embedded { path } => {
                SessionStore::Embedded(EmbeddedStore::open(path, clock.unix())?)
            }
            StoreConfig::Memory => SessionStore::Memory(MemoryStore::new()),
            StoreConfig::Redis {
                url,
                key_prefix,
                ca,
            } => SessionStore::Redis(RedisStore::new(
                url,
                key_prefix,
                ca.as_deref(),
                clock.clone(),
            )?),
        };
        let metrics = crate::metrics::Metrics::default();
        metrics.loaded(clock.unix());
        let mut snapshot = snapshot;
        snapshot.count_into(&metrics);
        Ok(Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            sessions,
            throttle: Default::default(),
            hashing: Default::default(),
            replays: Default::default(),
            metrics,
            clock,
            certs,
            listener,
            draining: Default::default(),
        }))
    }

    /// Shutdown has begun: readiness fails from now on, so that load balancers stop sending.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current snapshot; take it once per request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }
}

impl Shared {
    /// Makes `snapshot` current; new TLS handshakes get its certificate. What belongs to the
    /// listeners ([`ListenerSettings`]) and the session store only change with a restart: a
    /// change to them is logged as a warning, naming each key, and none of it is applied.
    pub fn replace(&self, mut snapshot: Snapshot) {
        for notice in &snapshot.config.notices {
            tracing::warn!(key = %notice.key, "{}", notice.problem);
        }
        for change in self
            .listener
            .changes(&ListenerSettings::of(&snapshot.config))
        {
            tracing::warn!(
                key = change.key,
                running = %change.running,
                configured = %change.configured,
                "belongs to the listener and only changes with a restart; the running value stays"
            );
        }
        let old = self.snapshot();
        if old.config.store != snapshot.config.store {
            tracing::warn!(
                key = "store",
                "the session store only changes with a restart"
            );
        }
        // With TLS turned on or off in the new configuration, the listener stays as it is (and
        // keeps its certificate when the new configuration has none).
        if let (Some(resolver), Some(key)) = (&self.certs, &snapshot.certificate) {
            resolver.store(key.clone());
        }
        snapshot.count_into(&self.metrics);
        self.snapshot.store(Arc::new(snapshot));
    }

    /// One maintenance pass over every map that lives as long as the process: the login
    /// throttle and the refresh replay window (against `now`), the current snapshot's
    /// verified-token cache, the sessions and the deny list (against `now_unix`, Unix seconds).
    /// Entries still live at that time are kept. The times are passed in, so that tests can
    /// purge "in the future"; `spawn_maintenance` passes the clock.
    pub async fn purge(&self, now_unix: u64, now: Instant) {
        let snapshot = self.snapshot();
        self.throttle
            .purge(crate::login::Limits::from(&snapshot.config.login), now);
        self.replays
            .purge(snapshot.config.tokens.refresh_grace, now);
        snapshot.verifier.purge(now_unix);
        self.sessions.purge(now_unix).await;
    }

    /// Starts the background maintenance ([`Shared::purge`] every 30 s) and, with Redis,
    /// following revocations made by other instances.
    pub fn spawn_maintenance(self: &Arc<Self>) {
        if let SessionStore::Redis(redis) = &self.sessions {
            redis.start();
        }
        let shared = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                shared.purge(shared.clock.unix(), Instant::now()).await;
            }
        });
    }
}

/// How often [`Shared::spawn_maintenance`] runs a purge.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ListenerSettings {
        ListenerSettings {
            listen: "127.0.0.1:8443".parse().unwrap(),
            tls: true,
            http2: true,
            max_connections: 10,
            workers: 2,
            admin_listen: "127.0.0.1:9901".parse().unwrap(),
            log_format: LogFormat::Pretty,
        }
    }

    #[test]
    fn the_same_settings_change_nothing() {
        assert_eq!(settings().changes(&settings()), []);
    }

    #[test]
    fn each_changed_setting_is_named_by_its_key_with_both_values() {
        let configured = ListenerSettings {
            http2: false,
            admin_listen: "127.0.0.1:9902".parse().unwrap(),
            log_format: LogFormat::Json,
            ..settings()
        };
        let changes = settings().changes(&configured);
        let named: Vec<_> = changes
            .iter()
            .map(|c| (c.key, c.running.as_str(), c.configured.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                ("server.http2", "true", "false"),
                ("admin.listen", "127.0.0.1:9901", "127.0.0.1:9902"),
                ("log.format", "pretty", "json"),
            ]
        );
    }

    #[test]
    fn every_listener_setting_is_compared() {
        let configured = ListenerSettings {
            listen: "127.0.0.1:8444".parse().unwrap(),
            tls: false,
            http2: false,
            max_connections: 11,
            workers: 3,
            admin_listen: "127.0.0.1:9902".parse().unwrap(),
            log_format: LogFormat::Json,
        };
        let keys: Vec<_> = settings()
            .changes(&configured)
            .into_iter()
            .map(|c| c.key)
            .collect();
        assert_eq!(
            keys,
            [
                "server.listen",
                "server.tls",
                "server.http2",
                "server.max_connections",
                "server.workers",
                "admin.listen",
                "log.format",
            ]
        );
    }
}
