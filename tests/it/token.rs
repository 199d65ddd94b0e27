//! SPEC §1: the token endpoint, rotation, reuse detection, logout.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Request;

use crate::support::{
    decode_parts, full, gateway, material, refresh_concurrently, Options, Tokens, ALICE, BOB,
};

/// The seed API's formatting: `2026-11-25T13:43:43.7826152Z`.
fn assert_seed_instant(text: &str) -> u64 {
    let b = text.as_bytes();
    assert_eq!(b.len(), 28, "{text}");
    let shape = "dddd-dd-ddTdd:dd:dd.dddddddZ";
    for (c, s) in b.iter().zip(shape.bytes()) {
        if s == b'd' {
            assert!(c.is_ascii_digit(), "{text}");
        } else {
            assert_eq!(*c, s, "{text}");
        }
    }
    // Days since the epoch by the civil-from-days inverse, to compare with `exp`.
    let n = |r: std::ops::Range<usize>| text[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)) as u64
}

fn spki_kid(signing_pem: &str) -> String {
    let pair = rcgen::KeyPair::from_pem(signing_pem).unwrap();
    let spki = pem::parse(pair.public_key_pem()).unwrap();
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        spki.contents(),
    );
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

#[tokio::test]
async fn seed_login_returns_the_exact_response_shape() {
    let (_up, gw) = gateway(Options::default()).await;
    let reply = gw
        .token(&format!(
            "grantType=Password&userName={}&password={}",
            ALICE.0, ALICE.1
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));

    let json = reply.json();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "accessTokenExpiresAt",
            "access_token",
            "expires_in",
            "refreshTokenExpiresAt",
            "refresh_token",
            "token_type"
        ]
    );
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["expires_in"], 900);

    let tokens = Tokens::from(&reply);
    let (header, access) = decode_parts(&tokens.access);
    assert_eq!(header["alg"], "RS512");
    assert_eq!(header["typ"], "JWT");
    let kid = spki_kid(&material().signing_pem);
    assert_eq!(kid.len(), 40);
    assert_eq!(header["kid"], kid.as_str());

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(access["iss"], "portcullis");
    assert_eq!(access["sub"], ALICE.0);
    assert_eq!(access["unique_name"], ALICE.0);
    assert_eq!(access["aud"], "access");
    assert_eq!(access["roles"], serde_json::json!(["user"]));
    assert!(access["jti"].as_str().unwrap().len() >= 16);
    let iat = access["iat"].as_u64().unwrap();
    assert!(iat.abs_diff(now) <= 5);
    assert_eq!(access["nbf"].as_u64(), Some(iat));
    assert_eq!(access["exp"].as_u64(), Some(iat + 900));

    let (rheader, refresh) = decode_parts(&tokens.refresh);
    assert_eq!(rheader["kid"], kid.as_str());
    assert_eq!(refresh["aud"], "refresh");
    assert_eq!(refresh["sub"], ALICE.0);
    assert_eq!(refresh["unique_name"], ALICE.0);
    assert_eq!(refresh["short_term_expiration"], "False");
    assert_eq!(refresh["sid"], access["sid"]);
    assert_eq!(refresh["iss"], "portcullis");
    assert!(uuid::Uuid::parse_str(refresh["token_id"].as_str().unwrap()).is_ok());
    assert_eq!(refresh["exp"].as_u64(), Some(iat + 14 * 86_400));

    assert_eq!(
        assert_seed_instant(json["accessTokenExpiresAt"].as_str().unwrap()),
        access["exp"].as_u64().unwrap()
    );
    assert_eq!(
        assert_seed_instant(json["refreshTokenExpiresAt"].as_str().unwrap()),
        refresh["exp"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn rfc_6749_and_json_logins_work_too() {
    let (_up, gw) = gateway(Options::default()).await;
    let reply = gw
        .token(&format!(
            "grant_type=password&username={}&password={}&scope=x",
            BOB.0, BOB.1
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let (_, claims) = decode_parts(reply.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["roles"], serde_json::json!(["admin", "user"]));

    let body =
        serde_json::json!({"grant_type": "password", "username": ALICE.0, "password": ALICE.1});
    let req = Request::post("/api/oauth2/token")
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .unwrap();
    let reply = gw.send(req).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn short_term_refresh_lives_short_refresh_ttl() {
    let (_up, gw) = gateway(Options::default()).await;
    let reply = gw
        .token(&format!(
            "grantType=Password&userName={}&password={}&use_short_term_refresh=true",
            ALICE.0, ALICE.1
        ))
        .await;
    let (_, refresh) = decode_parts(reply.json()["refresh_token"].as_str().unwrap());
    assert_eq!(refresh["short_term_expiration"], "True");
    let lifetime = refresh["exp"].as_u64().unwrap() - refresh["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 30 * 60);
}

#[tokio::test]
async fn refresh_rotates_and_the_old_refresh_token_is_spent() {
    let (_up, gw) = gateway(Options::default()).await;
    let first = gw.login(ALICE).await;
    let reply = gw
        .token(&format!(
            "grantType=RefreshToken&refreshToken={}",
            first.refresh
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let second = Tokens::from(&reply);
    assert_ne!(second.refresh, first.refresh);
    let (_, a1) = decode_parts(&first.access);
    let (_, a2) = decode_parts(&second.access);
    assert_eq!(a1["sid"], a2["sid"], "same session");
    assert_eq!(gw.get("/x", Some(&second.access)).await.status, 200);

    // RFC 6749 spelling with the new token works as well.
    let third = gw.refresh(&second.refresh).await;
    assert_eq!(third.status, 200, "{}", third.text());
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_session() {
    let (_up, gw) = gateway(Options::default()).await;
    let first = gw.login(ALICE).await;
    let second = Tokens::from(&gw.refresh(&first.refresh).await);
    assert_eq!(gw.get("/x", Some(&second.access)).await.status, 200);

    gw.refresh(&first.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");

    // The thief's replay took the legitimate holder's current tokens down with it.
    gw.refresh(&second.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    let reply = gw.get("/x", Some(&second.access)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"], "invalid_token");

    // Other sessions of the same user are untouched.
    let other = gw.login(ALICE).await;
    assert_eq!(gw.get("/x", Some(&other.access)).await.status, 200);
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_have_exactly_one_winner() {
    let (_up, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let statuses = refresh_concurrently(&[std::sync::Arc::new(gw)], &tokens.refresh, 20).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        19,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn logout_revokes_access_and_refresh_tokens() {
    let (_up, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    assert_eq!(gw.get("/x", Some(&tokens.access)).await.status, 200);

    let reply = gw.logout(&tokens.access).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let reply = gw.get("/x", Some(&tokens.access)).await;
    assert_eq!(reply.status, 401);
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
    gw.refresh(&tokens.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");

    // A second logout with the same token is refused like any revoked token.
    assert_eq!(gw.logout(&tokens.access).await.status, 401);
}

#[tokio::test]
async fn logout_needs_a_valid_bearer_token() {
    let (_up, gw) = gateway(Options::default()).await;
    let req = Request::post("/api/oauth2/logout")
        .body(crate::support::empty())
        .unwrap();
    let reply = gw.send(req).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"portcullis\"")
    );
    assert_eq!(gw.logout("not.a.token").await.status, 401);
}

#[tokio::test]
async fn every_error_row_of_the_token_endpoint() {
    let (_up, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;

    // malformed body, missing parameter, wrong content type → invalid_request
    let req = Request::post("/api/oauth2/token")
        .header("content-type", "application/json")
        .body(full("{not json"))
        .unwrap();
    gw.send(req)
        .await
        .assert_oauth_error(400, "invalid_request");
    gw.token("grantType=Password&userName=alice")
        .await
        .assert_oauth_error(400, "invalid_request");
    gw.token("userName=alice&password=x")
        .await
        .assert_oauth_error(400, "invalid_request");
    gw.token("grant_type=refresh_token")
        .await
        .assert_oauth_error(400, "invalid_request");
    let req = Request::post("/api/oauth2/token")
        .header("content-type", "text/plain")
        .body(full(format!(
            "grant_type=password&username={}&password={}",
            ALICE.0, ALICE.1
        )))
        .unwrap();
    gw.send(req)
        .await
        .assert_oauth_error(400, "invalid_request");

    // unknown grant type
    gw.token("grant_type=client_credentials")
        .await
        .assert_oauth_error(400, "unsupported_grant_type");

    // wrong password and unknown user: same status, code and text
    let wrong = gw
        .token("grant_type=password&username=alice&password=nope")
        .await;
    let unknown = gw
        .token("grant_type=password&username=mallory&password=nope")
        .await;
    wrong.assert_oauth_error(400, "invalid_grant");
    unknown.assert_oauth_error(400, "invalid_grant");
    assert_eq!(wrong.body, unknown.body);

    // refresh token invalid, an access token, garbage
    gw.refresh("garbage")
        .await
        .assert_oauth_error(400, "invalid_grant");
    gw.refresh(&tokens.access)
        .await
        .assert_oauth_error(400, "invalid_grant");
    let mut tampered = tokens.refresh.clone();
    tampered.pop();
    tampered.push('A');
    let tampered = if tampered == tokens.refresh {
        tampered.replace('A', "B")
    } else {
        tampered
    };
    gw.refresh(&tampered)
        .await
        .assert_oauth_error(400, "invalid_grant");

    // body larger than 16 KiB
    let big = format!(
        "grant_type=password&username=alice&password={}",
        "x".repeat(17 * 1024)
    );
    let reply = gw.token(&big).await;
    assert_eq!(reply.status, 413);

    // other methods
    let reply = gw.get("/api/oauth2/token", None).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
}

#[tokio::test]
async fn an_expired_refresh_token_is_invalid_grant() {
    let (_upstream, gw) = gateway(Options {
        tokens: "refresh_ttl = \"1s\"",
        ..Options::default()
    })
    .await;
    let tokens = gw.login(ALICE).await;
    gw.shared.clock.advance(Duration::from_secs(2));
    gw.refresh(&tokens.refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
}
