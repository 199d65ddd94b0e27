//! SPEC §2: the token check on every proxied request, its statuses and challenges.

use std::time::Duration;

use crate::support::{gateway, Options, ALICE, BOB, PUBLIC_AND_API};

#[tokio::test]
async fn no_token_gets_a_bare_bearer_challenge_and_nothing_goes_upstream() {
    let (upstream, gw) = gateway(Options::default()).await;
    let reply = gw.get("/api/things", None).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"portcullis\"")
    );
    assert_eq!(reply.json()["error"], "unauthorized");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn an_expired_token_gets_the_exact_challenge() {
    let (upstream, gw) = gateway(Options {
        tokens: "access_ttl = \"1s\"",
        ..Options::default()
    })
    .await;
    let tokens = gw.login(ALICE).await;
    assert_eq!(gw.get("/x", Some(&tokens.access)).await.status, 200);
    gw.shared.clock.advance(Duration::from_secs(2));

    let reply = gw.get("/x", Some(&tokens.access)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(
            "Bearer realm=\"portcullis\", error=\"invalid_token\", \
             error_description=\"The access token expired\""
        )
    );
    let json = reply.json();
    assert_eq!(json["error"], "invalid_token");
    assert_eq!(json["error_description"], "The access token expired");
    assert_eq!(
        upstream.count(),
        1,
        "the expired request never went upstream"
    );

    // The refresh token still works and brings a fresh access token.
    let fresh = crate::support::Tokens::from(&gw.refresh(&tokens.refresh).await);
    assert_eq!(gw.get("/x", Some(&fresh.access)).await.status, 200);
}

#[tokio::test]
async fn a_refresh_token_is_not_an_access_token() {
    let (_upstream, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let reply = gw.get("/x", Some(&tokens.refresh)).await;
    assert_eq!(reply.status, 401);
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"portcullis\", error=\"invalid_token\""),
        "{challenge}"
    );
    assert_eq!(reply.json()["error"], "invalid_token");
}

#[tokio::test]
async fn the_scheme_is_case_insensitive_and_basic_is_refused() {
    let (_upstream, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let req = http::Request::get("/x")
        .header("authorization", format!("bearer {}", tokens.access))
        .body(crate::support::empty())
        .unwrap();
    assert_eq!(gw.send(req).await.status, 200);
    let req = http::Request::get("/x")
        .header("authorization", "Basic YWxpY2U6YWxpY2U=")
        .body(crate::support::empty())
        .unwrap();
    let reply = gw.send(req).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"portcullis\"")
    );
}

#[tokio::test]
async fn a_missing_role_is_403_insufficient_scope() {
    let routes = "[[routes]]\nname = \"admin\"\npath_prefix = \"/admin\"\n\
                  upstreams = [\"http://{upstream}\"]\nroles = [\"admin\"]\n\n\
                  [[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstreams = [\"http://{upstream}\"]\n";
    let (upstream, gw) = gateway(Options::with_routes(routes)).await;
    let alice = gw.login(ALICE).await;
    let reply = gw.get("/admin/panel", Some(&alice.access)).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"portcullis\", error=\"insufficient_scope\"")
    );
    assert_eq!(reply.json()["error"], "insufficient_scope");
    assert_eq!(upstream.count(), 0);

    let bob = gw.login(BOB).await;
    assert_eq!(gw.get("/admin/panel", Some(&bob.access)).await.status, 200);
    assert_eq!(gw.get("/other", Some(&alice.access)).await.status, 200);
}

#[tokio::test]
async fn public_routes_need_no_token() {
    let (upstream, gw) = gateway(Options::with_routes(PUBLIC_AND_API)).await;
    assert_eq!(gw.get("/public/page", None).await.status, 200);
    assert!(upstream.last().headers.get("x-auth-user").is_none());
    assert_eq!(gw.get("/private", None).await.status, 401);
}

#[tokio::test]
async fn an_upstream_401_passes_through_untouched() {
    let (_upstream, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let reply = gw.get("/upstream-401", Some(&tokens.access)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Basic realm=\"upstream\"")
    );
    assert_eq!(reply.text(), "upstream says no");
}
