//! SPEC §1.2, §1.5, §4.2 keys: every signing algorithm, rotation, JWKS and metadata, and a
//! token checked by an independent JOSE implementation using only the JWKS.

use jsonwebtoken::Algorithm;

use crate::support::upstream::MockUpstream;
use crate::support::{decode_parts, gateway, material, Options, TempDir, TestGateway, ALICE};

fn keyed(alg: Algorithm, pem: String) -> Options {
    let tokens: &'static str = Box::leak(format!("algorithm = \"{alg:?}\"").into_boxed_str());
    Options {
        tokens,
        signing_pem: Some(pem),
        ..Options::default()
    }
}

#[tokio::test]
async fn every_algorithm_signs_with_its_key_type() {
    let upstream = MockUpstream::start().await;
    let cases = [
        (Algorithm::RS256, "RSA", None),
        (Algorithm::RS384, "RSA", None),
        (Algorithm::PS256, "RSA", None),
        (Algorithm::PS384, "RSA", None),
        (Algorithm::PS512, "RSA", None),
        (Algorithm::ES256, "EC", Some("P-256")),
        (Algorithm::ES384, "EC", Some("P-384")),
        (Algorithm::EdDSA, "OKP", Some("Ed25519")),
    ];
    for (alg, kty, crv) in cases {
        let pem = if kty == "RSA" {
            material().signing_pem.clone()
        } else {
            portcullis::keygen::signing_key_pem_for(alg).unwrap()
        };
        let gw = TestGateway::start(upstream.addr, keyed(alg, pem)).await;
        let tokens = gw.login(ALICE).await;
        let (header, _) = decode_parts(&tokens.access);
        assert_eq!(header["alg"], format!("{alg:?}"));
        assert_eq!(
            gw.get("/x", Some(&tokens.access)).await.status,
            200,
            "{alg:?}"
        );
        assert_eq!(gw.refresh(&tokens.refresh).await.status, 200, "{alg:?}");

        let jwks = gw.get("/.well-known/jwks.json", None).await.json();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], kty, "{alg:?}");
        assert_eq!(key["kid"], header["kid"]);
        assert_eq!(key["alg"], format!("{alg:?}"));
        assert_eq!(key["use"], "sig");
        match crv {
            Some(crv) => {
                assert_eq!(key["crv"], crv);
                assert!(key["x"].is_string());
                assert_eq!(key["y"].is_string(), kty == "EC");
            }
            None => assert!(key["n"].is_string() && key["e"] == "AQAB"),
        }
    }
}

#[tokio::test]
async fn a_key_of_the_wrong_type_is_a_config_error() {
    let dir = TempDir::new();
    let key = dir.path().join("signing.pem");
    portcullis::keygen::write_private(&key, material().signing_pem.as_bytes()).unwrap();
    let text =
        "[tokens]\nalgorithm = \"ES256\"\nsigning_key = \"signing.pem\"\n[server]\ntls = false\n";
    let path = dir.path().join("p.toml");
    std::fs::write(&path, text).unwrap();
    let config = portcullis::config::Config::load(&path).unwrap();
    let err = portcullis::state::Snapshot::build(config).unwrap_err();
    assert_eq!(err.0[0].key, "tokens.signing_key");
    assert!(err.0[0].problem.contains("P-256"), "{err}");
}

#[tokio::test]
async fn jwks_and_metadata_documents() {
    let (upstream, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let (header, _) = decode_parts(&tokens.access);

    let reply = gw.get("/.well-known/jwks.json", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
    let jwks = reply.json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    assert_eq!(jwks["keys"][0]["alg"], "RS512");

    let meta = gw
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json();
    let base = format!("https://localhost:{}", gw.addr.port());
    assert_eq!(meta["issuer"], "portcullis");
    assert_eq!(meta["token_endpoint"], format!("{base}/api/oauth2/token"));
    assert_eq!(
        meta["revocation_endpoint"],
        format!("{base}/api/oauth2/revoke")
    );
    assert_eq!(
        meta["introspection_endpoint"],
        format!("{base}/api/oauth2/introspect")
    );
    assert_eq!(meta["jwks_uri"], format!("{base}/.well-known/jwks.json"));
    assert_eq!(
        meta["grant_types_supported"],
        serde_json::json!(["password", "refresh_token"])
    );
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        serde_json::json!(["none"])
    );
    let fields = meta.as_object().unwrap();
    assert!(
        !fields
            .keys()
            .any(|k| k.starts_with("token_endpoint_auth_signing")),
        "no client-authentication field beside \"none\": {meta}"
    );

    let gw = TestGateway::start(
        upstream.addr,
        Options {
            server: "public_url = \"https://gw.example.com/\"",
            ..Options::default()
        },
    )
    .await;
    let meta = gw
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json();
    assert_eq!(
        meta["token_endpoint"],
        "https://gw.example.com/api/oauth2/token"
    );
    assert_eq!(
        meta["issuer"], "https://gw.example.com",
        "the issuer is public_url"
    );
    let tokens = gw.login(ALICE).await;
    let (_, claims) = decode_parts(&tokens.access);
    assert_eq!(claims["iss"], "https://gw.example.com");
    assert_eq!(gw.get("/x", Some(&tokens.access)).await.status, 200);
}

#[tokio::test]
async fn signing_keys_rotate_on_reload_and_old_tokens_stay_valid() {
    let (_upstream, gw) = gateway(Options::default()).await;
    let old = gw.login(ALICE).await;
    let (old_header, _) = decode_parts(&old.access);

    let old_public = rcgen::KeyPair::from_pem(&material().signing_pem)
        .unwrap()
        .public_key_pem();
    let rotated = Options {
        signing_pem: Some(portcullis::keygen::signing_key_pem().unwrap()),
        tokens: "verify_keys = [\"old-public.pem\"]",
        files: vec![("old-public.pem", old_public)],
        ..Options::default()
    };
    gw.reload(&rotated).unwrap();

    let new = gw.login(ALICE).await;
    let (new_header, _) = decode_parts(&new.access);
    assert_ne!(
        new_header["kid"], old_header["kid"],
        "new tokens carry the new kid"
    );
    assert_eq!(
        gw.get("/x", Some(&old.access)).await.status,
        200,
        "old tokens stay valid"
    );
    assert_eq!(gw.refresh(&old.refresh).await.status, 200);
    assert_eq!(gw.get("/x", Some(&new.access)).await.status, 200);
    let jwks = gw.get("/.well-known/jwks.json", None).await.json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [
            new_header["kid"].as_str().unwrap(),
            old_header["kid"].as_str().unwrap()
        ]
    );

    // Once the old key is retired, its tokens are refused as signed by an unknown key.
    let retired = Options {
        signing_pem: rotated.signing_pem.clone(),
        ..Options::default()
    };
    gw.reload(&retired).unwrap();
    let reply = gw.get("/x", Some(&old.access)).await;
    assert_eq!(reply.status, 401);
    assert!(reply.text().contains("unknown key"), "{}", reply.text());

    // A broken configuration is refused and the running one stays.
    let broken = Options {
        tokens: "algorithm = \"RS999\"",
        ..Options::default()
    };
    assert!(gw.reload(&broken).is_err());
    assert_eq!(gw.get("/x", Some(&new.access)).await.status, 200);
}

/// PyJWT, given only the JWKS document, verifies tokens portcullis issued.
#[tokio::test]
async fn an_independent_jose_library_verifies_tokens_with_the_jwks() {
    const SCRIPT: &str = r#"
import json, sys, jwt
jwks = json.load(open(sys.argv[1]))
token = open(sys.argv[2]).read().strip()
kid = jwt.get_unverified_header(token)["kid"]
entry = [k for k in jwks["keys"] if k["kid"] == kid][0]
claims = jwt.decode(token, jwt.PyJWK(entry).key, algorithms=[entry["alg"]],
                    audience="access", issuer="portcullis")
print(claims["sub"])
"#;
    let has_pyjwt = std::process::Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pyjwt {
        assert!(
            std::env::var_os("PORTCULLIS_REQUIRE_PYJWT").is_none(),
            "PORTCULLIS_REQUIRE_PYJWT is set but python3 with pyjwt and cryptography is missing"
        );
        eprintln!(
            "SKIPPED: python3 with pyjwt + cryptography not found (pip install pyjwt cryptography)"
        );
        return;
    }
    let upstream = MockUpstream::start().await;
    let dir = TempDir::new();
    for alg in [
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let pem = match alg {
            Algorithm::RS512 | Algorithm::PS256 => material().signing_pem.clone(),
            _ => portcullis::keygen::signing_key_pem_for(alg).unwrap(),
        };
        let gw = TestGateway::start(upstream.addr, keyed(alg, pem)).await;
        let tokens = gw.login(ALICE).await;
        let jwks = gw.get("/.well-known/jwks.json", None).await;
        std::fs::write(dir.path().join("jwks.json"), &jwks.body).unwrap();
        std::fs::write(dir.path().join("token"), &tokens.access).unwrap();
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(dir.path().join("jwks.json"))
            .arg(dir.path().join("token"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{alg:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), ALICE.0);
    }
}
