//! SPEC §2 and §5: forged tokens, and secrets never logged.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;

use crate::support::upstream::MockUpstream;
use crate::support::{captured_logs, decode_parts, material, Options, TestGateway, ALICE};

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn refused(gw: &TestGateway, token: &str) {
    let reply = gw.get("/x", Some(token)).await;
    assert_eq!(reply.status, 401, "{token}: {}", reply.text());
    assert_eq!(reply.json()["error"], "invalid_token");
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer realm=\"portcullis\", error=\"invalid_token\""));
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let upstream = MockUpstream::start().await;
    let gw = TestGateway::start(upstream.addr, Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let (header, claims) = decode_parts(&tokens.access);
    let parts: Vec<&str> = tokens.access.split('.').collect();

    // alg: none, no signature
    let mut none = header.clone();
    none["alg"] = json!("none");
    refused(&gw, &format!("{}.{}.", b64(&none), parts[1])).await;

    // HS256 "signed" with the public key as the HMAC secret (algorithm confusion)
    let mut hs = header.clone();
    hs["alg"] = json!("HS256");
    let signing_input = format!("{}.{}", b64(&hs), parts[1]);
    let key =
        aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, material().cert_pem.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    refused(
        &gw,
        &format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())),
    )
    .await;

    // tampered payload: roles elevated, original signature kept
    let mut elevated = claims.clone();
    elevated["roles"] = json!(["admin"]);
    refused(
        &gw,
        &format!("{}.{}.{}", parts[0], b64(&elevated), parts[2]),
    )
    .await;

    // stripped signature
    refused(&gw, &format!("{}.{}.", parts[0], parts[1])).await;

    // unknown kid, missing kid, embedded jwk / jku / x5u
    let mut unknown = header.clone();
    unknown["kid"] = json!("0000000000000000000000000000000000000000");
    refused(&gw, &format!("{}.{}.{}", b64(&unknown), parts[1], parts[2])).await;
    let mut no_kid = header.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    refused(&gw, &format!("{}.{}.{}", b64(&no_kid), parts[1], parts[2])).await;
    for (name, value) in [
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("jwk", json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})),
    ] {
        let mut h = header.clone();
        h[name] = value;
        refused(&gw, &format!("{}.{}.{}", b64(&h), parts[1], parts[2])).await;
    }

    // garbage
    refused(&gw, "a.b.c").await;
    assert_eq!(upstream.count(), 0, "no forged request went upstream");
}

#[tokio::test]
async fn passwords_and_tokens_are_never_logged() {
    let logs = captured_logs();
    let upstream = MockUpstream::start().await;
    let gw = TestGateway::start(upstream.addr, Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let _ = gw
        .token("grant_type=password&username=alice&password=wrong-secret-xyz")
        .await;
    assert_eq!(
        gw.get("/x?token=query-secret", Some(&tokens.access))
            .await
            .status,
        200
    );
    let fresh = crate::support::Tokens::from(&gw.refresh(&tokens.refresh).await);
    let _ = gw.refresh(&tokens.refresh).await; // reuse: an audit warning
    let _ = gw.logout(&fresh.access).await;

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        text.contains("login_success"),
        "the audit log is captured: {text}"
    );
    assert!(text.contains("reuse_detected"));
    for secret in [
        ALICE.1,
        "wrong-secret-xyz",
        "query-secret",
        tokens.access.as_str(),
        tokens.refresh.as_str(),
        fresh.access.as_str(),
        fresh.refresh.as_str(),
    ] {
        assert!(!text.contains(secret), "logged a secret: {secret}");
    }
    // Not even a token's signature part.
    let signature = tokens.access.rsplit('.').next().unwrap();
    assert!(!text.contains(signature));
}
