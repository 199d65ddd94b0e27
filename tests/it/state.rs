//! Issue 11, bounded state: one maintenance pass (`Shared::purge`) shrinks every map that lives
//! as long as the process, and keeps what is still live.

use std::time::{Duration, Instant};

/// The wall clock's now, in Unix seconds (the fixture's gateways use the system clock).
fn unix_now() -> u64 {
    portcullis::clock::Clock::system().unix()
}

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
    let cache_len = || gw.shared.snapshot().verifier.cached();
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

/// How a test revokes Alice's session.
#[derive(Clone, Copy, Debug)]
enum Revocation {
    Logout,
    /// RFC 7009 with the refresh token, so that only the store knows the access token's expiry.
    RevokeRefreshToken,
    AdminOne,
    AdminUser,
    /// A refresh (minting a short-lived access token) and then the spent refresh token again.
    Reuse,
    /// A refresh after Alice was removed from the users file.
    RemovedUser,
}

/// Logs Alice in under `access_ttl = 60s`, reloads with `access_ttl = 2s`, revokes her session
/// by `how`, and checks that her first access token stays refused after a purge 10 s later
/// (today's settings would say every token has expired by then; hers lives 60 s).
async fn stays_denied_after_the_access_ttl_was_lowered(how: Revocation) {
    for (name, store, _redis) in stores() {
        let (_upstream, gw) = on_store(&store, "access_ttl = \"60s\"").await;
        let alice = gw.login(ALICE).await;
        let lowered = Options {
            store: store.clone(),
            tokens: "access_ttl = \"2s\"",
            ..Options::default()
        };
        gw.reload(&lowered).unwrap();
        revoke(&gw, how, &alice).await;
        assert_eq!(
            gw.get("/hello", Some(&alice.access)).await.status,
            401,
            "{name} {how:?}"
        );

        gw.shared.purge(unix_now() + 10, Instant::now()).await;
        assert_eq!(
            gw.get("/hello", Some(&alice.access)).await.status,
            401,
            "{name} {how:?}: accepted again after a purge, well before its own expiry"
        );
        // Once the token itself has expired, the entry goes.
        gw.shared.purge(unix_now() + 62, Instant::now()).await;
        assert!(gw.shared.sessions.deny_list().is_empty(), "{name} {how:?}");
    }
}

async fn revoke(gw: &TestGateway, how: Revocation, alice: &crate::support::Tokens) {
    match how {
        Revocation::Logout => assert_eq!(gw.logout(&alice.access).await.status, 200),
        Revocation::RevokeRefreshToken => {
            let req = http::Request::post("/api/oauth2/revoke")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(crate::support::full(format!("token={}", alice.refresh)))
                .unwrap();
            assert_eq!(gw.send(req).await.status, 200);
        }
        Revocation::AdminOne => {
            let sid = crate::support::decode_parts(&alice.access).1["sid"]
                .as_str()
                .unwrap()
                .to_owned();
            let reply = gw.admin("DELETE", &format!("/admin/sessions/{sid}")).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
        Revocation::AdminUser => {
            let reply = gw.admin("DELETE", "/admin/users/alice/sessions").await;
            assert_eq!(reply.json()["revoked"], 1, "{}", reply.text());
        }
        Revocation::Reuse => {
            assert_eq!(gw.refresh(&alice.refresh).await.status, 200);
            gw.refresh(&alice.refresh)
                .await
                .assert_oauth_error(400, "invalid_grant");
        }
        Revocation::RemovedUser => {
            let only_bob = portcullis::init::users_toml(BOB.0, BOB.1, &["admin", "user"]);
            portcullis::keygen::write_private(
                &gw.dir.path().join("users.toml"),
                only_bob.as_bytes(),
            )
            .unwrap();
            portcullis::reload::reload(&gw.shared, &gw.dir.path().join("portcullis.toml")).unwrap();
            gw.refresh(&alice.refresh)
                .await
                .assert_oauth_error(400, "invalid_grant");
        }
    }
}

#[tokio::test]
async fn a_logout_stays_in_force_until_the_sessions_own_tokens_expire() {
    stays_denied_after_the_access_ttl_was_lowered(Revocation::Logout).await;
}

#[tokio::test]
async fn an_rfc7009_revocation_stays_in_force_until_the_sessions_own_tokens_expire() {
    stays_denied_after_the_access_ttl_was_lowered(Revocation::RevokeRefreshToken).await;
}

#[tokio::test]
async fn an_admin_revocation_stays_in_force_until_the_sessions_own_tokens_expire() {
    stays_denied_after_the_access_ttl_was_lowered(Revocation::AdminOne).await;
    stays_denied_after_the_access_ttl_was_lowered(Revocation::AdminUser).await;
}

#[tokio::test]
async fn reuse_detection_stays_in_force_until_the_sessions_own_tokens_expire() {
    stays_denied_after_the_access_ttl_was_lowered(Revocation::Reuse).await;
}

#[tokio::test]
async fn removing_a_user_stays_in_force_until_the_sessions_own_tokens_expire() {
    stays_denied_after_the_access_ttl_was_lowered(Revocation::RemovedUser).await;
}

#[tokio::test]
async fn another_redis_instance_learns_the_sessions_own_deadline() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let store = format!("kind = \"redis\"\nurl = \"{}\"", redis.url());
    let (_upstream, a) = on_store(&store, "access_ttl = \"60s\"").await;
    let (_upstream_b, b) = on_store(&store, "access_ttl = \"2s\"").await;
    let alice = a.login(ALICE).await;
    assert_eq!(b.get("/hello", Some(&alice.access)).await.status, 200);
    a.reload(&Options {
        store: store.clone(),
        tokens: "access_ttl = \"2s\"",
        ..Options::default()
    })
    .unwrap();
    let sid = crate::support::decode_parts(&alice.access).1["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        a.admin("DELETE", &format!("/admin/sessions/{sid}"))
            .await
            .status,
        200
    );

    let deadline = Instant::now() + Duration::from_secs(2);
    while b.get("/hello", Some(&alice.access)).await.status != 401 {
        assert!(
            Instant::now() < deadline,
            "B never learnt of the revocation"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    b.shared.purge(unix_now() + 10, Instant::now()).await;
    assert_eq!(b.get("/hello", Some(&alice.access)).await.status, 401);
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn the_embedded_store_file_is_readable_by_its_owner_only() {
    let (_upstream, gw) = gateway(Options::default()).await;
    gw.login(ALICE).await;
    assert_eq!(mode(&gw.dir.path().join("sessions.db")), 0o600);
}

#[cfg(unix)]
#[test]
fn check_refuses_a_tls_key_or_users_file_that_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    for (file, key) in [
        ("gateway.key", "server.tls_key"),
        ("users.toml", "login.users_file"),
    ] {
        let dir = crate::support::TempDir::new();
        let upstream = "127.0.0.1:9".parse().unwrap();
        let config = crate::support::write_config(dir.path(), upstream, &Options::default());
        let check = || {
            std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
                .arg("check")
                .arg("-c")
                .arg(&config)
                .output()
                .unwrap()
        };
        let out = check();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let path = dir.path().join(file);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = check();
        assert_eq!(out.status.code(), Some(1), "{file}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(key) && stderr.contains("mode 644") && stderr.contains("chmod 600"),
            "{file}: {stderr}"
        );
    }
}
