//! What the gateway holds: `Shared` for the life of the process, `Snapshot` per configuration.
//!
//! `Snapshot` is everything a reload may replace (routes, users, keys, validation rules, TLS
//! certificate), built completely off to the side and then swapped in with one `ArcSwap::store`.
//! `Shared` is what must outlive a reload: the session store with its deny list, the
//! certificate resolver the TLS acceptor keeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rustls::sign::CertifiedKey;

use crate::auth::Verifier;
use crate::config::StoreConfig;
use crate::config::{Config, ConfigErrors, ConfigIssue};
use crate::jwt::{KeyError, KeyRole, KeySet, Rules, ACCESS_AUDIENCE, REFRESH_AUDIENCE};
use crate::login::Users;
use crate::proxy::Upstream;
use crate::route::Router;
use crate::server::tls;
use crate::session::{EmbeddedStore, MemoryStore, RedisStore, SessionStore, StoreError};

/// One generation of configuration, ready to serve.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    /// The keys that sign new tokens and verify presented ones (shared with `verifier`).
    pub keys: Arc<KeySet>,
    pub users: Users,
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
    /// Loads the key material `config` names and builds everything per-generation. Problems are
    /// reported with the key they belong to, like configuration errors.
    pub fn build(config: Config) -> Result<Snapshot, ConfigErrors> {
        let mut issues = Vec::new();
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
                    tls::load_certified_key(&files.cert, &files.key)
                        .map_err(|e| {
                            issues.push(ConfigIssue::new(
                                "server.tls_cert",
                                crate::telemetry::error_chain(&e),
                            ))
                        })
                        .ok()
                })
                .map(Arc::new),
            None => None,
        };
        // Every route's upstream client; each failure names its route.
        let mut upstreams = Vec::with_capacity(config.routes.len());
        for (i, route) in config.routes.iter().enumerate() {
            match Upstream::new(route) {
                Ok(upstream) => upstreams.push((route.clone(), upstream)),
                Err(e) => issues.push(ConfigIssue::new(
                    format!("routes[{i}].upstream_ca"),
                    crate::telemetry::error_chain(&e),
                )),
            }
        }
        let router = Router::new(upstreams);
        let (Some(keys), true) = (keys, issues.is_empty()) else {
            return Err(ConfigErrors(issues));
        };
        let keys = Arc::new(keys);
        let access_rules = Rules::new(keys.algorithm, ACCESS_AUDIENCE, &t.issuer, t.leeway);
        Ok(Snapshot {
            verifier: Verifier::new(keys.clone(), access_rules, t.verified_cache),
            refresh_rules: Rules::new(keys.algorithm, REFRESH_AUDIENCE, &t.issuer, t.leeway),
            jwks: crate::token::discovery::jwks(&keys),
            users: Users::new(&config.users),
            router,
            keys,
            certificate,
            config,
        })
    }
}

/// The configuration key a key-loading error belongs to.
fn key_of(e: &KeyError) -> &'static str {
    match e.key() {
        None => "tokens.algorithm",
        Some(KeyRole::Signing) => "tokens.signing_key",
        Some(KeyRole::Verify(_)) => "tokens.verify_keys",
    }
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
    pub certs: Option<Arc<tls::CertResolver>>,
}

impl Shared {
    /// Opens the session store `snapshot` names and makes `snapshot` current.
    pub fn new(snapshot: Snapshot) -> Result<Arc<Self>, StoreError> {
        Self::with_clock(snapshot, crate::clock::Clock::system())
    }

    /// `new`, reading the time from `clock` (an adjustable one in tests).
    pub fn with_clock(
        snapshot: Snapshot,
        clock: crate::clock::Clock,
    ) -> Result<Arc<Self>, StoreError> {
        let certs = snapshot
            .certificate
            .clone()
            .map(|k| Arc::new(tls::CertResolver::new(k)));
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
        Ok(Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            sessions,
            throttle: Default::default(),
            hashing: Default::default(),
            replays: Default::default(),
            metrics: Default::default(),
            clock,
            certs,
        }))
    }

    /// The current snapshot; take it once per request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }
}

impl Shared {
    /// Makes `snapshot` current; new TLS handshakes get its certificate. Settings that belong to
    /// the listener (address, TLS on or off) only change with a restart.
    pub fn replace(&self, snapshot: Snapshot) -> Result<(), ConfigErrors> {
        match (&self.certs, &snapshot.certificate) {
            (Some(resolver), Some(key)) => resolver.store(key.clone()),
            (None, None) => {}
            _ => {
                return Err(ConfigErrors::one(
                    "server.tls",
                    "turning TLS on or off needs a restart; the old configuration stays",
                ))
            }
        }
        for notice in &snapshot.config.notices {
            tracing::warn!(key = %notice.key, "{}", notice.problem);
        }
        let old = self.snapshot();
        if old.config.store != snapshot.config.store {
            tracing::warn!(
                key = "store",
                "the session store only changes with a restart"
            );
        }
        if old.config.server.listen != snapshot.config.server.listen {
            tracing::warn!(
                key = "server.listen",
                "the listen address only changes with a restart"
            );
        }
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
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
