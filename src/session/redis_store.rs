//! The Redis backend: any number of gateway instances share sessions (SPEC §4.3).
//!
//! Layout (every name starts with `key_prefix`; `{…}` is a Redis Cluster hash tag, so each
//! session lives in one slot and the rotation script touches only that one key):
//!
//! - `session:{<sid>}`: hash `user`, `tid`, `created`, `exp`, `acc` (until when its access
//!   tokens may be accepted; absent in sessions written by older versions); expires at `exp`.
//! - `sessions`: sorted set sid → `exp`, the live sessions, for listing and the gauge.
//! - `revoked`: sorted set sid → until, every revocation still in force.
//! - `revocations`: pub/sub channel, one `"<until> <sid>"` message per revocation.
//!
//! Rotation is one Lua script on the session key (compare the presented token id, then move it
//! or delete the session on reuse), so of two instances rotating one token exactly one wins.
//! Revocation reads the session's `acc` first, so that the session is denied until its own
//! tokens have expired (a rotation in between mints under the settings the now-based floor of
//! every revocation comes from).
//! The per-request check never waits on Redis: each instance keeps a local [`DenyList`], fed by
//! the channel and reloaded from `revoked` whenever the subscription is (re)established.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Client, RedisError, Script};
use futures_util::StreamExt;

use super::{DenyList, RotateError, Rotation, Session, StoreError};

/// `KEYS[1]` = session key; ARGV = presented token id, next token id, next expiry (Unix s), next
/// access deadline (Unix s). Returns `{"ok", user, created, acc}` (`acc` the later of the old and
/// the next access deadline), `{"unknown"}` or `{"reused", acc}` (the session is then deleted).
const ROTATE: &str = r"
local tid = redis.call('HGET', KEYS[1], 'tid')
if not tid then return {'unknown'} end
local acc = tonumber(redis.call('HGET', KEYS[1], 'acc') or '0') or 0
if tid == ARGV[1] then
  local next_acc = tonumber(ARGV[4])
  if next_acc > acc then acc = next_acc end
  redis.call('HSET', KEYS[1], 'tid', ARGV[2], 'exp', ARGV[3], 'acc', tostring(acc))
  redis.call('EXPIREAT', KEYS[1], ARGV[3])
  return {'ok', redis.call('HGET', KEYS[1], 'user'), redis.call('HGET', KEYS[1], 'created'),
    tostring(acc)}
end
redis.call('DEL', KEYS[1])
return {'reused', tostring(acc)}
";

/// How long one command may take before the store counts as unreachable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the subscription is pinged, so that a silent outage is noticed.
const PING_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct RedisStore {
    inner: Arc<Inner>,
    /// The subscriber task; aborted when the store is dropped.
    subscriber: Mutex<Option<tokio::task::AbortHandle>>,
}

struct Inner {
    client: Client,
    conn: ConnectionManager,
    keys: Keys,
    rotate: Script,
    deny: DenyList,
    /// Subscribed to the channel and resynchronised since the last disconnect.
    synced: AtomicBool,
    /// Live sessions as of the last purge.
    count: AtomicUsize,
    /// What "revoked until later than now" is measured against when resynchronising.
    clock: crate::clock::Clock,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client's connection info may hold a password: never print it.
        f.debug_struct("Inner")
            .field("keys", &self.keys)
            .field("synced", &self.synced)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Keys {
    prefix: String,
    sessions: String,
    revoked: String,
    channel: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            sessions: format!("{prefix}sessions"),
            revoked: format!("{prefix}revoked"),
            channel: format!("{prefix}revocations"),
        }
    }

    fn session(&self, sid: &str) -> String {
        format!("{}session:{{{sid}}}", self.prefix)
    }
}

impl RedisStore {
    /// Prepares a store for `url` (`redis://` or `rediss://`, optionally with a password). No
    /// connection is made here: commands connect on first use, and [`RedisStore::start`]
    /// subscribes to revocations.
    pub fn new(
        url: &str,
        key_prefix: &str,
        ca: Option<&Path>,
        clock: crate::clock::Clock,
    ) -> Result<Self, StoreError> {
        let client = open_client(url, ca)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(StoreError::Unavailable)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                conn,
                keys: Keys::new(key_prefix),
                rotate: Script::new(ROTATE),
                deny: DenyList::default(),
                synced: AtomicBool::new(false),
                count: AtomicUsize::new(0),
                clock,
            }),
            subscriber: Mutex::new(None),
        })
    }

    /// Starts following revocations (needs a Tokio runtime). Idempotent.
    pub fn start(&self) {
        let mut slot = self.subscriber.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(tokio::spawn(follow_revocations(self.inner.clone())).abort_handle());
        }
    }

    /// Whether revocations are being followed: Redis is reachable and the deny list is in sync.
    pub fn is_synced(&self) -> bool {
        self.inner.synced.load(Ordering::Relaxed)
    }

    pub(super) fn deny_list(&self) -> &DenyList {
        &self.inner.deny
    }

    pub(super) fn len(&self) -> usize {
        self.inner.count.load(Ordering::Relaxed)
    }

    pub(super) async fn create(&self, session: Session) -> Result<(), StoreError> {
        let keys = &self.inner.keys;
        let key = keys.session(&session.sid);
        ::redis::pipe()
            .hset_multiple(
                &key,
                &[
                    ("user", session.user.as_str()),
                    ("tid", session.token_id.as_str()),
                    ("created", &session.created_at.to_string()),
                    ("exp", &session.expires_at.to_string()),
                    ("acc", &session.access_until.to_string()),
                ],
            )
            .ignore()
            .expire_at(&key, unix_i64(session.expires_at))
            .ignore()
            .zadd(&keys.sessions, &session.sid, session.expires_at)
            .ignore()
            .exec_async(&mut self.conn())
            .await
            .map_err(StoreError::Unavailable)
    }

    pub(super) async fn get(&self, sid: &str) -> Result<Option<Session>, StoreError> {
        if self.inner.deny.is_denied(sid) {
            return Ok(None);
        }
        let fields: HashMap<String, String> = self
            .conn()
            .hgetall(self.inner.keys.session(sid))
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(session_from(sid, &fields))
    }

    pub(super) async fn rotate(
        &self,
        sid: &str,
        presented: &str,
        next: Rotation,
        revoke_until: u64,
    ) -> Result<Session, RotateError> {
        if self.inner.deny.is_denied(sid) {
            return Err(RotateError::Revoked);
        }
        let mut conn = self.conn();
        let reply: Vec<String> = self
            .inner
            .rotate
            .key(self.inner.keys.session(sid))
            .arg(presented)
            .arg(&next.token_id)
            .arg(next.expires_at)
            .arg(next.access_until)
            .invoke_async(&mut conn)
            .await
            .map_err(StoreError::Unavailable)?;
        match reply.as_slice() {
            [ok, user, created, access_until] if ok == "ok" => {
                // Listing only; a failure here leaves a stale score that listing tolerates.
                let listed: Result<(), RedisError> = ::redis::cmd("ZADD")
                    .arg(&self.inner.keys.sessions)
                    .arg("XX")
                    .arg(next.expires_at)
                    .arg(sid)
                    .exec_async(&mut conn)
                    .await;
                if let Err(e) = listed {
                    tracing::debug!(error = %e, "could not update the session listing");
                }
                Ok(Session {
                    sid: sid.to_owned(),
                    user: user.clone(),
                    token_id: next.token_id,
                    created_at: created.parse().unwrap_or(0),
                    expires_at: next.expires_at,
                    access_until: access_until.parse().unwrap_or(next.access_until),
                })
            }
            [reused, access_until] if reused == "reused" => {
                let access_until = access_until.parse().unwrap_or(0);
                self.revoke(sid, revoke_until.max(access_until)).await?;
                Err(RotateError::Reused)
            }
            _ => Err(RotateError::Unknown),
        }
    }

    /// Revokes `sid` here at once and, through Redis, on every instance, until `until` or the
    /// session's own access deadline, whichever is later. Returns whether a live session was
    /// revoked.
    pub(super) async fn revoke(&self, sid: &str, until: u64) -> Result<bool, StoreError> {
        // In force on this instance even if Redis cannot be told.
        self.inner.deny.insert(sid, until);
        let keys = &self.inner.keys;
        let key = keys.session(sid);
        let mut conn = self.conn();
        let recorded: Option<String> = conn
            .hget(&key, "acc")
            .await
            .map_err(StoreError::Unavailable)?;
        let until = until.max(recorded.and_then(|n| n.parse().ok()).unwrap_or(0));
        self.inner.deny.insert(sid, until);
        let (deleted,): (u64,) = ::redis::pipe()
            .del(&key)
            .zrem(&keys.sessions, sid)
            .ignore()
            .cmd("ZADD")
            .arg(&keys.revoked)
            .arg("GT")
            .arg(until)
            .arg(sid)
            .ignore()
            .publish(&keys.channel, format!("{until} {sid}"))
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(deleted > 0)
    }

    /// The live sessions, optionally only those of `user`.
    pub(super) async fn list(
        &self,
        user: Option<&str>,
        now: u64,
    ) -> Result<Vec<Session>, StoreError> {
        let mut conn = self.conn();
        let sids: Vec<String> = conn
            .zrangebyscore(&self.inner.keys.sessions, format!("({now}"), "+inf")
            .await
            .map_err(StoreError::Unavailable)?;
        let mut sessions = Vec::new();
        for chunk in sids.chunks(256) {
            let mut pipe = ::redis::pipe();
            for sid in chunk {
                pipe.hgetall(self.inner.keys.session(sid));
            }
            let all: Vec<HashMap<String, String>> = pipe
                .query_async(&mut conn)
                .await
                .map_err(StoreError::Unavailable)?;
            sessions.extend(
                chunk
                    .iter()
                    .zip(&all)
                    .filter_map(|(sid, fields)| session_from(sid, fields))
                    .filter(|s| user.is_none_or(|u| s.user == u)),
            );
        }
        Ok(sessions)
    }

    /// Drops expired entries from the shared sets and the local deny list, and recounts.
    pub(super) async fn purge(&self, now: u64) {
        self.inner.deny.purge(now);
        let keys = &self.inner.keys;
        let counted: Result<(usize,), RedisError> = ::redis::pipe()
            .zrembyscore(&keys.sessions, "-inf", now)
            .ignore()
            .zrembyscore(&keys.revoked, "-inf", now)
            .ignore()
            .zcount(&keys.sessions, format!("({now}"), "+inf")
            .query_async(&mut self.conn())
            .await;
        match counted {
            Ok((n,)) => self.inner.count.store(n, Ordering::Relaxed),
            Err(e) => tracing::debug!(error = %e, "session purge skipped: Redis unreachable"),
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        let slot = self.subscriber.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = slot.take() {
            task.abort();
        }
    }
}

fn open_client(url: &str, ca: Option<&Path>) -> Result<Client, StoreError> {
    let Some(ca) = ca else {
        return Client::open(url).map_err(StoreError::Unavailable);
    };
    let root_cert = std::fs::read(ca).map_err(|e| {
        StoreError::Unavailable(RedisError::from((
            ::redis::ErrorKind::InvalidClientConfig,
            "cannot read store.ca",
            format!("{}: {e}", ca.display()),
        )))
    })?;
    let certificates = ::redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(root_cert),
    };
    Client::build_with_tls(url, certificates).map_err(StoreError::Unavailable)
}

/// Subscribes to the revocation channel, reloads the revoked set, then applies every message;
/// on any failure marks the store unsynced and starts over after a short pause.
async fn follow_revocations(inner: Arc<Inner>) {
    let mut pause = Duration::from_millis(100);
    loop {
        match follow_once(&inner).await {
            Ok(()) => pause = Duration::from_millis(100),
            Err(e) => {
                if inner.synced.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %crate::telemetry::error_chain(&e),
                        "lost the Redis session store; token requests get 503 until it returns"
                    );
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn follow_once(inner: &Inner) -> Result<(), RedisError> {
    let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, inner.client.get_async_pubsub())
        .await
        .map_err(|_| timed_out("connecting to Redis"))??;
    let (mut sink, mut messages) = pubsub.split();
    sink.subscribe(&inner.keys.channel).await?;
    // Subscribed first, then loaded: a revocation published in between is not missed.
    let now = inner.clock.unix();
    let revoked: Vec<(String, u64)> = inner
        .conn
        .clone()
        .zrangebyscore_withscores(&inner.keys.revoked, format!("({now}"), "+inf")
        .await?;
    for (sid, until) in &revoked {
        inner.deny.insert(sid, *until);
    }
    if !inner.synced.swap(true, Ordering::Relaxed) {
        tracing::info!(
            revoked = revoked.len(),
            "following session revocations in Redis"
        );
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Err(timed_out("the Redis subscription closed"));
                };
                let payload = message.get_payload_bytes();
                match parse_revocation(payload) {
                    Some((until, sid)) => inner.deny.insert(sid, until),
                    None => tracing::warn!("ignoring a malformed revocation message"),
                }
            }
            _ = ping.tick() => {
                tokio::time::timeout(RESPONSE_TIMEOUT, sink.ping::<::redis::Value>())
                    .await
                    .map_err(|_| timed_out("pinging Redis"))??;
            }
        }
    }
}

/// `"<until> <sid>"` → (until, sid).
fn parse_revocation(payload: &[u8]) -> Option<(u64, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (until, sid) = text.split_once(' ')?;
    let until = until.parse().ok()?;
    (!sid.is_empty()).then_some((until, sid))
}

fn session_from(sid: &str, fields: &HashMap<String, String>) -> Option<Session> {
    let number = |name: &str| fields.get(name)?.parse::<u64>().ok();
    Some(Session {
        sid: sid.to_owned(),
        user: fields.get("user")?.clone(),
        token_id: fields.get("tid")?.clone(),
        created_at: number("created")?,
        expires_at: number("exp")?,
        access_until: number("acc").unwrap_or(0),
    })
}

fn timed_out(what: &'static str) -> RedisError {
    RedisError::from((::redis::ErrorKind::Io, what))
}

fn unix_i64(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_use_hash_tags_per_session() {
        let keys = Keys::new("p:");
        assert_eq!(keys.session("abc"), "p:session:{abc}");
        assert_eq!(keys.revoked, "p:revoked");
    }

    #[test]
    fn revocation_messages_parse_strictly() {
        assert_eq!(parse_revocation(b"17 abc"), Some((17, "abc")));
        assert_eq!(parse_revocation(b"x abc"), None);
        assert_eq!(parse_revocation(b"17 "), None);
        assert_eq!(parse_revocation(b"17"), None);
        assert_eq!(parse_revocation(b"\xff 1"), None);
    }
}
