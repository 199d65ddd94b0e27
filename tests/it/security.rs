//! SPEC §2 and §5: forged tokens, and secrets never logged.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;

use crate::support::{captured_logs, decode_parts, gateway, material, Options, TestGateway, ALICE};

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
    let (upstream, gw) = gateway(Options::default()).await;
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
    let (_upstream, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let _ = gw
        .token("grant_type=password&username=alice&password=wrong-secret-xyz")
        .await;
    // A user name with a newline cannot start a forged log line.
    let _ = gw
        .token("grant_type=password&username=evil%0Aforged-line&password=x")
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
    assert!(text.contains("evil\\nforged-line"), "escaped: {text}");
    assert!(!text.contains("\nforged-line"), "a forged line: {text}");
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

/// Tokens signed with a real key (ours or another), with one thing wrong each.
#[tokio::test]
async fn validly_signed_tokens_with_one_thing_wrong_are_refused() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

    let (_upstream, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let (header, claims) = decode_parts(&tokens.access);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let ours = EncodingKey::from_rsa_pem(material().signing_pem.as_bytes()).unwrap();
    let sign = |alg: Algorithm, key: &EncodingKey, claims: &serde_json::Value| {
        let mut h = Header::new(alg);
        h.kid = Some(kid.clone());
        encode(&h, claims, key).unwrap()
    };

    // Control: our key, our algorithm, the original claims: accepted.
    assert_eq!(
        gw.get("/x", Some(&sign(Algorithm::RS512, &ours, &claims)))
            .await
            .status,
        200
    );

    // Another RSA algorithm than the configured one, same key.
    refused(&gw, &sign(Algorithm::RS256, &ours, &claims)).await;
    refused(&gw, &sign(Algorithm::PS512, &ours, &claims)).await;

    // Another key, presented under our kid.
    let other_pem = portcullis::keygen::signing_key_pem().unwrap();
    let other = EncodingKey::from_rsa_pem(other_pem.as_bytes()).unwrap();
    refused(&gw, &sign(Algorithm::RS512, &other, &claims)).await;

    // Wrong issuer; not yet valid; wrong audience.
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("evil");
    refused(&gw, &sign(Algorithm::RS512, &ours, &wrong_iss)).await;
    let mut future = claims.clone();
    future["nbf"] = json!(claims["iat"].as_u64().unwrap() + 3600);
    refused(&gw, &sign(Algorithm::RS512, &ours, &future)).await;
    let mut refresh_aud = claims.clone();
    refresh_aud["aud"] = json!("refresh");
    refused(&gw, &sign(Algorithm::RS512, &ours, &refresh_aud)).await;

    // An x5c header, even on a correctly signed token.
    let mut h = Header::new(Algorithm::RS512);
    h.kid = Some(kid.clone());
    h.x5c = Some(vec!["MIIB".to_owned()]);
    refused(&gw, &encode(&h, &claims, &ours).unwrap()).await;

    // An access token is not a refresh token.
    gw.refresh(&tokens.access)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn oversized_tokens_are_refused() {
    let (upstream, gw) = gateway(Options::default()).await;
    // Above the token length cap, below the header size limit: refused unparsed.
    let big = format!(
        "{}.{}.{}",
        "a".repeat(4000),
        "b".repeat(4000),
        "c".repeat(2000)
    );
    let reply = gw.get("/x", Some(&big)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.json()["error_description"],
        "The access token is malformed"
    );
    // A 20 KB token does not even fit the request head limit.
    let huge = format!(
        "{}.{}.{}",
        "a".repeat(10_000),
        "b".repeat(10_000),
        "c".repeat(500)
    );
    assert_eq!(gw.get("/x", Some(&huge)).await.status, 431);
    assert_eq!(upstream.count(), 0);
}
