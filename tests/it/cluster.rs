//! SPEC §4.3 `redis`: several gateway instances sharing sessions through a real `redis-server`.

use std::time::{Duration, Instant};

use crate::support::redis::RedisServer;
use crate::support::upstream::MockUpstream;
use crate::support::{
    material, refresh_concurrently, Options, Reply, TestGateway, Tokens, ALICE, BOB,
};

/// The `[store]` lines for `url`, plus `extra`.
fn redis_store(url: &str, extra: &str) -> Options {
    Options {
        store: format!("kind = \"redis\"\nurl = \"{url}\"\n{extra}"),
        ..Options::default()
    }
}

/// Two instances A and B on one Redis, both following its revocations.
async fn two_instances(redis: &RedisServer) -> (MockUpstream, TestGateway, TestGateway) {
    let upstream = MockUpstream::start().await;
    let a = TestGateway::start(upstream.addr, redis_store(&redis.url(), "")).await;
    let b = TestGateway::start(upstream.addr, redis_store(&redis.url(), "")).await;
    wait_until_ready(&a).await;
    wait_until_ready(&b).await;
    (upstream, a, b)
}

/// Polls `/readyz` for at most 10 s.
async fn wait_until_ready(gw: &TestGateway) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.admin("GET", "/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "the gateway never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long until `gw` answers `status` to a call with `access`; panics after `limit`.
async fn time_until_status(
    gw: &TestGateway,
    access: &str,
    status: u16,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        if gw.get("/hello", Some(access)).await.status == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "still not {status} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn login_on_a_refresh_on_b_logout_on_b_is_refused_on_a_within_a_second() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let (_upstream, a, b) = two_instances(&redis).await;

    let first = a.login(ALICE).await;
    assert_eq!(b.get("/hello", Some(&first.access)).await.status, 200);
    let refreshed = b.refresh(&first.refresh).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let second = Tokens::from(&refreshed);
    assert_eq!(a.get("/hello", Some(&second.access)).await.status, 200);

    assert_eq!(b.logout(&second.access).await.status, 200);
    let took = time_until_status(&a, &second.access, 401, Duration::from_secs(1)).await;
    eprintln!("logout on B enforced on A after {took:?}");
    a.refresh(&second.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");

    // Reuse of a spent refresh token on the other instance revokes the session there too.
    let bob = b.login(BOB).await;
    let bob_next = Tokens::from(&a.refresh(&bob.refresh).await);
    b.refresh(&bob.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    time_until_status(&a, &bob_next.access, 401, Duration::from_secs(1)).await;
    a.refresh(&bob_next.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn twenty_concurrent_refreshes_over_two_instances_have_exactly_one_winner() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let (_upstream, a, b) = two_instances(&redis).await;
    let tokens = a.login(ALICE).await;
    let gateways = [std::sync::Arc::new(a), std::sync::Arc::new(b)];
    let statuses = refresh_concurrently(&gateways, &tokens.refresh, 20).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_redis_outage_gives_503_on_the_token_endpoint_and_service_recovers() {
    let Some(mut redis) = RedisServer::start(&[]) else {
        return;
    };
    let (_upstream, a, b) = two_instances(&redis).await;
    let alice = a.login(ALICE).await;

    redis.kill();
    // Proxied calls with a valid token keep flowing: the hot path never waits on Redis.
    assert_eq!(a.get("/hello", Some(&alice.access)).await.status, 200);
    assert_eq!(b.get("/hello", Some(&alice.access)).await.status, 200);
    // The token endpoint says so, with a JSON body and Retry-After.
    let down = a.try_login(BOB).await;
    down.assert_oauth_error(503, "temporarily_unavailable");
    assert!(down.header("retry-after").is_some());
    b.refresh(&alice.refresh)
        .await
        .assert_oauth_error(503, "temporarily_unavailable");
    // Readiness follows.
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.admin("GET", "/readyz").await.status != 503 {
        assert!(Instant::now() < deadline, "/readyz still says ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    redis.restart();
    wait_until_ready(&a).await;
    wait_until_ready(&b).await;
    // The session made before the outage is still there (Redis kept it), and both instances
    // talk to Redis again without a restart: refresh on B, logout on B, refused on A.
    let refreshed = b.refresh(&alice.refresh).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let next = Tokens::from(&refreshed);
    assert_eq!(b.logout(&next.access).await.status, 200);
    time_until_status(&a, &next.access, 401, Duration::from_secs(1)).await;
    assert!(!a.login(BOB).await.access.is_empty());
}

#[tokio::test]
async fn an_instance_started_later_loads_the_revocations_made_before() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let (upstream, a, _b) = two_instances(&redis).await;
    let alice = a.login(ALICE).await;
    assert_eq!(a.logout(&alice.access).await.status, 200);

    let c = TestGateway::start(upstream.addr, redis_store(&redis.url(), "")).await;
    wait_until_ready(&c).await;
    assert_eq!(c.get("/hello", Some(&alice.access)).await.status, 401);
}

#[tokio::test]
async fn a_password_protected_redis_works_and_a_wrong_password_is_unavailable() {
    let Some(redis) = RedisServer::start(&["--requirepass", "s3cret-pw"]) else {
        return;
    };
    let upstream = MockUpstream::start().await;
    let url = format!("redis://:s3cret-pw@127.0.0.1:{}/0", redis.port);
    let good = TestGateway::start(upstream.addr, redis_store(&url, "")).await;
    wait_until_ready(&good).await;
    let tokens = good.login(ALICE).await;
    assert_eq!(good.refresh(&tokens.refresh).await.status, 200);

    let url = format!("redis://:wrong@127.0.0.1:{}/0", redis.port);
    let bad = TestGateway::start(upstream.addr, redis_store(&url, "")).await;
    let reply = bad.try_login(BOB).await;
    reply.assert_oauth_error(503, "temporarily_unavailable");
    assert_eq!(bad.admin("GET", "/readyz").await.status, 503);
    assert_no_password_in(&reply, "s3cret-pw");
}

#[tokio::test]
async fn a_rediss_url_talks_tls_to_redis() {
    let dir = crate::support::TempDir::new();
    let m = material();
    let (cert, key) = (dir.path().join("redis.crt"), dir.path().join("redis.key"));
    std::fs::write(&cert, &m.cert_pem).unwrap();
    std::fs::write(&key, &m.key_pem).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let args = [
        "--port",
        "0",
        "--tls-port",
        "{port}",
        "--tls-cert-file",
        cert,
        "--tls-key-file",
        key,
        "--tls-ca-cert-file",
        cert,
        "--tls-auth-clients",
        "no",
    ];
    let Some(redis) = RedisServer::start(&args) else {
        return;
    };
    let upstream = MockUpstream::start().await;
    let url = format!("rediss://127.0.0.1:{}/0", redis.port);
    let options = Options {
        files: vec![("redis-ca.pem", m.cert_pem.clone())],
        ..redis_store(&url, "ca = \"redis-ca.pem\"")
    };
    let gw = TestGateway::start(upstream.addr, options).await;
    wait_until_ready(&gw).await;
    let tokens = gw.login(ALICE).await;
    assert_eq!(gw.refresh(&tokens.refresh).await.status, 200);
}

#[tokio::test]
async fn session_admin_on_one_instance_acts_on_all() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let (_upstream, a, b) = two_instances(&redis).await;
    let alice_1 = a.login(ALICE).await;
    let alice_2 = b.login(ALICE).await;
    let bob = a.login(BOB).await;

    let listed = b.admin("GET", "/admin/sessions?user=alice").await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(
        b.admin("GET", "/admin/sessions").await.json()["sessions"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let kicked = b.admin("DELETE", "/admin/users/alice/sessions").await;
    assert_eq!(kicked.json()["revoked"], 2);
    for access in [&alice_1.access, &alice_2.access] {
        time_until_status(&a, access, 401, Duration::from_secs(1)).await;
    }
    assert_eq!(a.get("/hello", Some(&bob.access)).await.status, 200);
}

fn assert_no_password_in(reply: &Reply, password: &str) {
    assert!(!reply.text().contains(password), "{}", reply.text());
}
