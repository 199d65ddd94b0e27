//! Shared fixture for the JWT fuzz targets: a freshly generated signing key loaded the way the
//! gateway loads it (`KeySet::load`), the access-token `Rules` the gateway builds, and one
//! genuinely signed, currently valid access token.
//!
//! The key is generated once per fuzzing process, written with mode 0600 to a temporary file
//! (which `KeySet::load` insists on), loaded and then deleted. Nothing here is ever committed.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use portcullis::jwt::{self, AccessClaims, KeySet, Rules};

pub const ALGORITHM: Algorithm = Algorithm::RS512;
pub const AUDIENCE: &str = "access";
pub const ISSUER: &str = "portcullis";
pub const LEEWAY: Duration = Duration::from_secs(30);

pub struct Fixture {
    pub keys: KeySet,
    /// The same private key, for signing arbitrary header and payload segments.
    pub encoding: EncodingKey,
    pub rules: Rules,
    /// The `kid` of the signing key.
    pub kid: String,
    /// A valid access token signed with the key, and its three segments.
    pub token: String,
    pub header_b64: String,
    pub payload_b64: String,
    pub signature_b64: String,
    /// Unix seconds when the fixture was made; the token is valid for an hour from then.
    pub created: u64,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(make_fixture)
}

fn make_fixture() -> Fixture {
    let pem = portcullis::keygen::signing_key_pem().expect("generate RSA key");
    let path = std::env::temp_dir().join(format!(
        "portcullis-fuzz-{}-{}.pem",
        std::process::id(),
        now()
    ));
    portcullis::keygen::write_private(&path, pem.as_bytes()).expect("write key");
    let loaded = KeySet::load(ALGORITHM, &path, &[]);
    let _ = std::fs::remove_file(&path);
    let keys = loaded.expect("load key");
    let rules = Rules::new(AUDIENCE, ISSUER, LEEWAY);
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("encoding key");
    let kid = keys.signing_kid().to_owned();

    let created = now();
    let claims = AccessClaims {
        iss: ISSUER.to_owned(),
        sub: "alice".to_owned(),
        unique_name: "alice".to_owned(),
        aud: AUDIENCE.to_owned(),
        iat: created,
        nbf: created,
        exp: created + 3600,
        jti: "8f7d3c2e-0000-4000-8000-000000000001".to_owned(),
        sid: "5b1e9a40-0000-4000-8000-000000000002".to_owned(),
        roles: vec!["reader".to_owned(), "admin".to_owned()],
    };
    // Signed the way the token endpoint signs.
    let token = keys.sign(&claims).expect("sign token");
    let mut parts = token.split('.');
    let header_b64 = parts.next().unwrap().to_owned();
    let payload_b64 = parts.next().unwrap().to_owned();
    let signature_b64 = parts.next().unwrap().to_owned();
    assert!(parts.next().is_none());

    // The fixture must itself be accepted, or the targets would test nothing past the signature.
    let back: AccessClaims =
        jwt::verify(&keys, &rules, &token, created).expect("fixture token verifies");
    assert_eq!(back.sub, "alice");

    // A signature made outside the KeySet with the same key must verify too.
    let message = format!("{header_b64}.{payload_b64}");
    let resigned = jsonwebtoken::crypto::sign(message.as_bytes(), &encoding, ALGORITHM).unwrap();
    assert_eq!(resigned, signature_b64, "RS512 signatures are deterministic");

    Fixture {
        keys,
        encoding,
        rules,
        kid,
        token,
        header_b64,
        payload_b64,
        signature_b64,
        created,
    }
}

/// Signs `header_b64 + "." + payload_b64` with the fixture's key: the base64url signature.
pub fn sign(message: &str) -> String {
    jsonwebtoken::crypto::sign(message.as_bytes(), &fixture().encoding, ALGORITHM).expect("sign")
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What must hold of any token that `verify` accepted: it can only have been signed by us, with
/// the configured algorithm and our `kid`, with no key-carrying header, and its claims must pass
/// the access validation. `before` and `after` are Unix seconds taken around the `verify` call.
pub fn check_accepted(token: &str, claims: &AccessClaims, before: u64, after: u64) {
    let header = jsonwebtoken::decode_header(token).expect("an accepted token has a header");
    assert_eq!(header.alg, ALGORITHM, "accepted a token with another alg");
    assert_eq!(
        header.kid.as_deref(),
        Some(fixture().kid.as_str()),
        "accepted a token with another kid"
    );
    assert!(
        header.jwk.is_none() && header.jku.is_none() && header.x5u.is_none() && header.x5c.is_none(),
        "accepted a token with a key-carrying header"
    );
    assert_eq!(claims.aud, AUDIENCE, "accepted a token for another audience");
    assert_eq!(claims.iss, ISSUER, "accepted a token from another issuer");
    assert!(
        claims.exp.saturating_add(LEEWAY.as_secs()) >= before,
        "accepted an expired token: exp {} at {before}",
        claims.exp
    );
    assert!(
        claims.nbf <= after.saturating_add(LEEWAY.as_secs()),
        "accepted a token not yet valid: nbf {} at {after}",
        claims.nbf
    );
}
