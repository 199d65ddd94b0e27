//! SPEC §1.3, §1.4, §4.3: durable sessions, revocation, introspection, the replay window,
//! login throttling and session lifetimes.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use http::Request;

use crate::support::child::ChildGateway;
use crate::support::upstream::MockUpstream;
use crate::support::{
    captured_logs, decode_parts, empty, full, gateway, send_to, tls_client, write_config, Options,
    Reply, TempDir, TestGateway, Tokens, ALICE, BOB,
};

#[tokio::test]
async fn sessions_survive_kill_9_and_revocations_stay_revoked() {
    let upstream = MockUpstream::start().await;
    let dir = TempDir::new();
    let config = write_config(dir.path(), upstream.addr, &Options::default());

    let gw = ChildGateway::start(&config);
    let alice_1 = gw.login(ALICE).await;
    let alice_2 = gw.login(ALICE).await;
    let bob_old = gw.login(BOB).await;
    let bob = Tokens::from(&gw.refresh(&bob_old.refresh).await);
    let logout = Request::post("/api/oauth2/logout")
        .header("authorization", format!("Bearer {}", alice_1.access))
        .body(empty())
        .unwrap();
    assert_eq!(
        send_to(&tls_client(false), gw.port, logout).await.status,
        200
    );
    gw.kill_9();

    let gw = ChildGateway::start(&config);
    // The logged-out session stays revoked: access and refresh token alike.
    assert_eq!(gw.status_of_get(&alice_1.access).await, 401);
    gw.refresh(&alice_1.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    // Every live session carries on.
    assert_eq!(gw.status_of_get(&alice_2.access).await, 200);
    assert_eq!(gw.refresh(&alice_2.refresh).await.status, 200);
    let bob_next = gw.refresh(&bob.refresh).await;
    assert_eq!(
        bob_next.status, 200,
        "the rotation before the crash was durable"
    );
    // Bob's pre-rotation token is still spent (and presenting it is reuse).
    gw.refresh(&bob_old.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn a_corrupt_store_stops_start_up_and_is_kept() {
    let upstream = MockUpstream::start().await;
    let dir = TempDir::new();
    let config = write_config(dir.path(), upstream.addr, &Options::default());
    let store = dir.path().join("sessions.db");
    let garbage = vec![0xA5_u8; 32 * 1024];
    std::fs::write(&store, &garbage).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open the session store") && stderr.contains("sessions.db"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&store).unwrap(), garbage);
}

async fn form(gw: &TestGateway, path: &str, bearer: Option<&str>, body: String) -> Reply {
    let mut req = Request::post(path).header("content-type", "application/x-www-form-urlencoded");
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    gw.send(req.body(full(body)).unwrap()).await
}

#[tokio::test]
async fn revoke_ends_the_session_of_an_access_or_refresh_token() {
    let (_upstream, gw) = gateway(Options::default()).await;

    let by_refresh = gw.login(ALICE).await;
    let reply = form(
        &gw,
        "/api/oauth2/revoke",
        None,
        format!("token={}", by_refresh.refresh),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(gw.get("/x", Some(&by_refresh.access)).await.status, 401);
    gw.refresh(&by_refresh.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");

    let by_access = gw.login(ALICE).await;
    let body = format!("token={}&token_type_hint=access_token", by_access.access);
    assert_eq!(
        form(&gw, "/api/oauth2/revoke", None, body).await.status,
        200
    );
    assert_eq!(gw.get("/x", Some(&by_access.access)).await.status, 401);
    gw.refresh(&by_access.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");

    // Invalid tokens are not an error (RFC 7009 §2.2); a missing one is.
    assert_eq!(
        form(&gw, "/api/oauth2/revoke", None, "token=garbage".to_owned())
            .await
            .status,
        200
    );
    form(&gw, "/api/oauth2/revoke", None, String::new())
        .await
        .assert_oauth_error(400, "invalid_request");
    let other = gw.login(BOB).await;
    assert_eq!(
        gw.get("/x", Some(&other.access)).await.status,
        200,
        "other sessions untouched"
    );
}

#[tokio::test]
async fn introspection_reports_live_tokens_only() {
    let (_upstream, gw) = gateway(Options::default()).await;
    let caller = gw.login(BOB).await;
    let subject = gw.login(ALICE).await;
    let introspect = |token: String| {
        let gw = &gw;
        let caller = caller.access.clone();
        async move {
            form(
                gw,
                "/api/oauth2/introspect",
                Some(&caller),
                format!("token={token}"),
            )
            .await
        }
    };

    let reply = introspect(subject.access.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let json = reply.json();
    let (_, claims) = decode_parts(&subject.access);
    assert_eq!(json["active"], true);
    assert_eq!(json["sub"], ALICE.0);
    assert_eq!(json["aud"], "access");
    assert_eq!(json["token_type"], "access_token");
    assert_eq!(json["sid"], claims["sid"]);
    assert_eq!(json["exp"], claims["exp"]);
    assert_eq!(json["iat"], claims["iat"]);
    assert_eq!(json["roles"], serde_json::json!(["user"]));

    let json = introspect(subject.refresh.clone()).await.json();
    assert_eq!(
        (json["active"].as_bool(), json["token_type"].as_str()),
        (Some(true), Some("refresh_token"))
    );

    let next = Tokens::from(&gw.refresh(&subject.refresh).await);
    assert_eq!(
        introspect(subject.refresh.clone()).await.json(),
        serde_json::json!({"active": false}),
        "spent"
    );
    assert_eq!(
        introspect("garbage".to_owned()).await.json(),
        serde_json::json!({"active": false})
    );
    gw.logout(&next.access).await;
    assert_eq!(
        introspect(next.access.clone()).await.json(),
        serde_json::json!({"active": false}),
        "revoked"
    );

    // The caller must authenticate.
    let reply = form(
        &gw,
        "/api/oauth2/introspect",
        None,
        format!("token={}", caller.access),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"portcullis\"")
    );
}

#[tokio::test]
async fn twenty_simultaneous_refreshes_in_the_grace_window_get_the_same_pair() {
    let upstream = MockUpstream::start().await;
    let gw = Arc::new(
        TestGateway::start(
            upstream.addr,
            Options {
                tokens: "refresh_grace = \"2s\"",
                ..Options::default()
            },
        )
        .await,
    );
    let tokens = gw.login(ALICE).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let gw = gw.clone();
            let refresh = tokens.refresh.clone();
            tokio::spawn(async move { gw.refresh(&refresh).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        bodies.push(reply.body);
    }
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "identical responses"
    );
    let pair = Tokens::from(&gw.refresh(&tokens.refresh).await);
    assert_eq!(
        gw.get("/x", Some(&pair.access)).await.status,
        200,
        "a replay, not a reuse"
    );

    // After the window, the spent token is reuse: the whole session is revoked.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    gw.refresh(&tokens.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(gw.get("/x", Some(&pair.access)).await.status, 401);
    gw.refresh(&pair.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn repeated_failures_lock_the_user_out_until_the_lockout_passes() {
    let logs = captured_logs();
    let (_upstream, gw) = gateway(Options {
        login: "max_failures = 3\nwindow = \"1m\"\nlockout = \"2s\"",
        ..Options::default()
    })
    .await;
    for _ in 0..3 {
        gw.token("grant_type=password&username=alice&password=wrong")
            .await
            .assert_oauth_error(400, "invalid_grant");
    }
    // Locked: even the right password is refused, without a password check.
    let reply = gw.try_login(ALICE).await;
    reply.assert_oauth_error(429, "invalid_grant");
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert!(reply.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("try again in"));
    assert!(String::from_utf8_lossy(&logs.lock().unwrap()).contains("lockout"));

    tokio::time::sleep(Duration::from_millis(2100)).await;
    gw.login(ALICE).await;
}

#[tokio::test]
async fn max_session_lifetime_caps_refreshes() {
    let (_upstream, gw) = gateway(Options {
        tokens: "max_session_lifetime = \"3s\"",
        ..Options::default()
    })
    .await;
    let tokens = gw.login(ALICE).await;
    let (_, claims) = decode_parts(&tokens.refresh);
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!(lifetime <= 3, "{lifetime}");
    let next = Tokens::from(&gw.refresh(&tokens.refresh).await);
    let (_, again) = decode_parts(&next.refresh);
    assert!(
        again["exp"].as_u64() <= claims["exp"].as_u64(),
        "the cap does not slide"
    );
    gw.shared.clock.advance(Duration::from_secs(4));
    gw.refresh(&next.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
}
