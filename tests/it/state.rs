//! Issue 11, bounded state: one maintenance pass (`Shared::purge`) shrinks every map that lives
//! as long as the process, and keeps what is still live.

use std::time::{Duration, Instant};

use portcullis::session::unix_now;

use crate::support::redis::RedisServer;
use crate::support::{gateway, Options, TestGateway, ALICE, BOB};

/// Far enough ahead that every token, session and window has run out.
const FAR: u64 = 200 * 365 * 86_400;

/// The `[store]` sections the session tests run against: memory, embedded, and Redis when
/// `redis-server` is installed (the returned server lives as long as the test needs it).
fn stores() -> Vec<(&'static str, String, Option<RedisServer>)> {
    let mut stores = vec![
        ("memory", "kind = \"memory\"".to_owned(), None),
        ("embedded", String::new(), None),
    ];
    if let Some(redis) = RedisServer::start(&[]) {
        let store = format!("kind = \"redis\"\nurl = \"{}\"", redis.url());
        stores.push(("redis", store, Some(redis)));
    }
    stores
}

/// A gateway on `store`, ready (with Redis: following revocations).
async fn on_store(
    store: &str,
    tokens: &'static str,
) -> (crate::support::upstream::MockUpstream, TestGateway) {
    let (upstream, gw) = gateway(Options {
        store: store.to_owned(),
        tokens,
        ..Options::default()
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.admin("GET", "/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "the gateway never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (upstream, gw)
}

#[tokio::test]
async fn purge_forgets_replay_slots_once_their_window_has_passed() {
    let (_upstream, gw) = gateway(Options {
        tokens: "refresh_grace = \"5s\"",
        ..Options::default()
    })
    .await;
    for user in [ALICE, BOB] {
        let tokens = gw.login(user).await;
        assert_eq!(gw.refresh(&tokens.refresh).await.status, 200);
    }
    assert_eq!(gw.shared.replays.len(), 2);

    gw.shared.purge(unix_now(), Instant::now()).await;
    assert_eq!(gw.shared.replays.len(), 2, "both windows are still open");
    gw.shared
        .purge(unix_now(), Instant::now() + Duration::from_secs(6))
        .await;
    assert_eq!(gw.shared.replays.len(), 0);
}

#[tokio::test]
async fn purge_forgets_verified_tokens_once_they_expire() {
    let (_upstream, gw) = gateway(Options::default()).await;
    let alice = gw.login(ALICE).await;
    let bob = gw.login(BOB).await;
    for access in [&alice.access, &bob.access] {
        assert_eq!(gw.get("/hello", Some(access)).await.status, 200);
    }
    let cache_len = || gw.shared.snapshot().token_cache.len();
    assert_eq!(cache_len(), 2);

    gw.shared.purge(unix_now(), Instant::now()).await;
    assert_eq!(cache_len(), 2, "both tokens are live");
    assert_eq!(gw.get("/hello", Some(&alice.access)).await.status, 200);
    gw.shared.purge(unix_now() + FAR, Instant::now()).await;
    assert_eq!(cache_len(), 0);
}

#[tokio::test]
async fn purge_forgets_deny_list_entries_once_the_tokens_have_expired() {
    for (name, store, _redis) in stores() {
        let (_upstream, gw) = on_store(&store, "").await;
        let alice = gw.login(ALICE).await;
        let bob = gw.login(BOB).await;
        assert_eq!(gw.logout(&alice.access).await.status, 200, "{name}");
        assert_eq!(gw.logout(&bob.access).await.status, 200, "{name}");
        let deny = gw.shared.sessions.deny_list();
        assert_eq!(deny.len(), 2, "{name}");

        gw.shared.purge(unix_now(), Instant::now()).await;
        assert_eq!(
            deny.len(),
            2,
            "{name}: the access tokens are still within their lifetime"
        );
        assert_eq!(
            gw.get("/hello", Some(&alice.access)).await.status,
            401,
            "{name}"
        );
        gw.shared.purge(unix_now() + FAR, Instant::now()).await;
        assert_eq!(deny.len(), 0, "{name}");
    }
}

#[tokio::test]
async fn purge_forgets_sessions_once_their_refresh_tokens_expire() {
    for (name, store, _redis) in stores() {
        let (_upstream, gw) = on_store(&store, "").await;
        let alice = gw.login(ALICE).await;
        gw.login(BOB).await;
        gw.shared.purge(unix_now(), Instant::now()).await;
        assert_eq!(
            gw.shared.sessions.len(),
            2,
            "{name}: both sessions are live"
        );
        assert_eq!(gw.refresh(&alice.refresh).await.status, 200, "{name}");

        gw.shared.purge(unix_now() + FAR, Instant::now()).await;
        assert_eq!(gw.shared.sessions.len(), 0, "{name}");
    }
}
