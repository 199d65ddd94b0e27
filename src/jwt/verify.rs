//! JWT verification with a key set and the [`Rules`] of one audience (SPEC §2).
//!
//! The header is checked before any signature work: the algorithm must be the configured one
//! (so never `none`, never HMAC with a public key), `kid` must name one of our keys, and `jwk`,
//! `jku`, `x5u`, `x5c` are refused outright. Then the signature, then the registered claims.
//!
//! jsonwebtoken reads the header; the signature is checked here with the key set's keys, each
//! parsed once per snapshot into an aws-lc `ParsedPublicKey` (no key parsing per token), over
//! the token's own `header.payload` bytes. The claims (all registered ones required by their
//! types) are then read from the payload, and the time claims, the issuer and the audience are
//! checked against the `now` the caller passes (its clock, adjustable in tests), not against
//! the system clock.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::decode_header;

use super::{JwtError, KeySet, Registered};

/// What a token must say besides being signed by one of our keys: its audience and issuer, and
/// how far `exp` and `nbf` may be off the clock. Built once per snapshot, for one audience.
#[derive(Clone, Debug)]
pub struct Rules {
    audience: String,
    issuer: String,
    leeway: u64,
}

impl Rules {
    /// The rules for tokens for `audience` from `issuer`, accepting `exp` and `nbf` up to
    /// `leeway` (whole seconds) off the clock. The algorithm is the key set's.
    pub fn new(audience: &str, issuer: &str, leeway: Duration) -> Self {
        Self {
            audience: audience.to_owned(),
            issuer: issuer.to_owned(),
            leeway: leeway.as_secs(),
        }
    }

    /// The leeway, in seconds.
    pub fn leeway(&self) -> u64 {
        self.leeway
    }

    /// The registered claims of a token whose signature verified, at `now` (Unix seconds):
    /// expired once `exp < now - leeway`, not yet valid while `nbf > now + leeway`, then the
    /// issuer and the audience. An expired token of the wrong audience is reported expired.
    fn check(&self, claims: &impl Registered, now: u64) -> Result<(), JwtError> {
        in_time(claims.exp(), claims.nbf(), self.leeway, now)?;
        if claims.iss() != self.issuer {
            return Err(JwtError::Issuer);
        }
        if claims.aud() != self.audience {
            return Err(JwtError::Audience);
        }
        Ok(())
    }
}

/// Whether a token valid from `nbf` to `exp` is valid at `now` (Unix seconds, `leeway` seconds
/// either way): expired once `exp < now - leeway`, not yet valid while `nbf > now + leeway`.
/// The one time check, for a full verification and for a token verified before.
pub fn in_time(exp: u64, nbf: u64, leeway: u64, now: u64) -> Result<(), JwtError> {
    if exp < now.saturating_sub(leeway) {
        Err(JwtError::Expired)
    } else if nbf > now.saturating_add(leeway) {
        Err(JwtError::NotYetValid)
    } else {
        Ok(())
    }
}

/// Verifies `token` with `keys` and `rules` at `now` (Unix seconds) and returns its claims.
pub fn verify<T: Registered>(
    keys: &KeySet,
    rules: &Rules,
    token: &str,
    now: u64,
) -> Result<T, JwtError> {
    let header = decode_header(token).map_err(|_| JwtError::Malformed)?;
    if header.alg != keys.algorithm {
        return Err(JwtError::Algorithm);
    }
    if header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() || header.x5c.is_some()
    {
        return Err(JwtError::ForbiddenHeader);
    }
    let kid = header.kid.ok_or(JwtError::UnknownKid)?;
    let key = keys.verifying(&kid).ok_or(JwtError::UnknownKid)?;
    // `header.payload` is what was signed; exactly three segments.
    let (signed, signature) = token.rsplit_once('.').ok_or(JwtError::Malformed)?;
    let (_, payload) = signed.split_once('.').ok_or(JwtError::Malformed)?;
    if payload.contains('.') {
        return Err(JwtError::Malformed);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Malformed)?;
    key.verify_sig(signed.as_bytes(), &signature)
        .map_err(|_| JwtError::Signature)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| JwtError::Malformed)?;
    let claims: T = serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)?;
    rules.check(&claims, now)?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;
    use serde_json::json;

    use super::*;
    use crate::jwt::{AccessClaims, RefreshClaims, ACCESS_AUDIENCE, REFRESH_AUDIENCE};

    const NOW: u64 = 1_800_000_000;
    const LEEWAY: u64 = 30;

    fn keys(algorithm: Algorithm) -> KeySet {
        let pem = crate::keygen::signing_key_pem_for(algorithm).unwrap();
        KeySet::from_pem(algorithm, pem.as_bytes(), &[]).unwrap()
    }

    fn rules(audience: &str) -> Rules {
        Rules::new(audience, "portcullis", Duration::from_secs(LEEWAY))
    }

    /// Access claims valid from `NOW - 10` to `NOW + 60`.
    fn claims() -> serde_json::Value {
        json!({
            "iss": "portcullis", "sub": "alice", "unique_name": "alice", "aud": ACCESS_AUDIENCE,
            "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 60, "jti": "j", "sid": "s",
            "roles": ["reader"],
        })
    }

    fn with(mut claims: serde_json::Value, key: &str, value: serde_json::Value) -> String {
        claims[key] = value;
        claims.to_string()
    }

    fn check(keys: &KeySet, token: &str, now: u64) -> Result<AccessClaims, JwtError> {
        verify(keys, &rules(ACCESS_AUDIENCE), token, now)
    }

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Each algorithm verifies with its key parsed once at load (the aws-lc verification
    /// algorithm chosen for it), and refuses the token one byte off.
    #[test]
    fn every_algorithm_verifies_with_its_key_parsed_once() {
        use Algorithm::{EdDSA, ES256, ES384, PS256, PS384, PS512, RS256, RS384, RS512};
        for algorithm in [
            RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
        ] {
            let keys = keys(algorithm);
            let rules = rules(ACCESS_AUDIENCE);
            let token = keys.sign(&claims()).unwrap();
            let claims: AccessClaims = verify(&keys, &rules, &token, NOW).unwrap();
            assert_eq!(claims.sub, "alice", "{algorithm:?}");

            let (signed, signature) = token.rsplit_once('.').unwrap();
            let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
            bytes[0] ^= 1;
            let flipped = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&bytes));
            let refused = verify::<AccessClaims>(&keys, &rules, &flipped, NOW);
            assert_eq!(refused.unwrap_err(), JwtError::Signature, "{algorithm:?}");
        }
    }

    #[test]
    fn a_token_is_exactly_three_unpadded_segments() {
        let keys = keys(Algorithm::EdDSA);
        let token = keys.sign(&claims()).unwrap();
        for bad in [
            format!("{token}.x"),
            format!("{token}="),
            token.replacen('.', "..", 1),
        ] {
            assert_eq!(
                check(&keys, &bad, NOW).unwrap_err(),
                JwtError::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_token_verifies_within_its_lifetime_and_leeway() {
        let keys = keys(Algorithm::EdDSA);
        let token = keys.sign(&claims()).unwrap();
        let at = |now| check(&keys, &token, now).map(|c| c.sub);
        assert_eq!(at(NOW).unwrap(), "alice");
        assert_eq!(
            at(NOW - 10 - LEEWAY).unwrap(),
            "alice",
            "nbf minus the leeway"
        );
        assert_eq!(at(NOW - 11 - LEEWAY), Err(JwtError::NotYetValid));
        assert_eq!(
            at(NOW + 60 + LEEWAY).unwrap(),
            "alice",
            "exp plus the leeway"
        );
        assert_eq!(at(NOW + 61 + LEEWAY), Err(JwtError::Expired));
    }

    #[test]
    fn the_time_is_the_callers_not_the_system_clock() {
        // A token that expired in 1970 verifies at a `now` of that time, and a token from far
        // in the future is not valid yet today.
        let keys = keys(Algorithm::EdDSA);
        let old = claims_at(&keys, 100, 200);
        assert!(check(&keys, &old, 150).is_ok());
        assert_eq!(check(&keys, &old, NOW).unwrap_err(), JwtError::Expired);
        // A `now` below the leeway does not underflow.
        assert!(check(&keys, &claims_at(&keys, 0, 10), 5).is_ok());
        let future = claims_at(&keys, 4_000_000_000, 4_000_000_600);
        assert_eq!(
            check(&keys, &future, NOW).unwrap_err(),
            JwtError::NotYetValid
        );
    }

    fn claims_at(keys: &KeySet, nbf: u64, exp: u64) -> String {
        let mut c = claims();
        c["iat"] = nbf.into();
        c["nbf"] = nbf.into();
        c["exp"] = exp.into();
        keys.sign(&c).unwrap()
    }

    #[test]
    fn claims_are_checked_in_order_expiry_first() {
        let keys = keys(Algorithm::EdDSA);
        let sign = |payload: String| {
            keys.sign(&serde_json::from_str::<serde_json::Value>(&payload).unwrap())
                .unwrap()
        };
        let refresh = sign(with(claims(), "aud", REFRESH_AUDIENCE.into()));
        assert_eq!(check(&keys, &refresh, NOW).unwrap_err(), JwtError::Audience);
        let issuer = sign(with(claims(), "iss", "elsewhere".into()));
        assert_eq!(check(&keys, &issuer, NOW).unwrap_err(), JwtError::Issuer);
        // Expired and of the wrong audience: expired, as jsonwebtoken ordered it.
        assert_eq!(
            check(&keys, &refresh, NOW + 61 + LEEWAY).unwrap_err(),
            JwtError::Expired
        );
        // Of the wrong issuer and audience: the issuer.
        let both = sign(with(
            serde_json::from_str(&with(claims(), "iss", "x".into())).unwrap(),
            "aud",
            "y".into(),
        ));
        assert_eq!(check(&keys, &both, NOW).unwrap_err(), JwtError::Issuer);
        // As a refresh token, the access token is the wrong audience.
        let access = sign(claims().to_string());
        let as_refresh = verify::<RefreshClaims>(&keys, &rules(REFRESH_AUDIENCE), &access, NOW);
        assert_eq!(as_refresh.unwrap_err(), JwtError::Audience);
    }

    #[test]
    fn missing_or_mistyped_claims_are_malformed() {
        let keys = keys(Algorithm::EdDSA);
        for claim in ["exp", "nbf", "iat", "aud", "iss", "sub", "sid"] {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(claim);
            let token = keys.sign(&c).unwrap();
            assert_eq!(
                check(&keys, &token, NOW).unwrap_err(),
                JwtError::Malformed,
                "{claim}"
            );
        }
        for (claim, value) in [
            ("exp", json!("soon")),
            ("exp", json!(1.5e9)),
            ("aud", json!([ACCESS_AUDIENCE])),
        ] {
            let token = keys
                .sign(
                    &serde_json::from_str::<serde_json::Value>(&with(
                        claims(),
                        claim,
                        value.clone(),
                    ))
                    .unwrap(),
                )
                .unwrap();
            assert_eq!(
                check(&keys, &token, NOW).unwrap_err(),
                JwtError::Malformed,
                "{claim}: {value}"
            );
        }
        assert_eq!(
            check(&keys, "not.a.token", NOW).unwrap_err(),
            JwtError::Malformed
        );
        assert_eq!(check(&keys, "", NOW).unwrap_err(), JwtError::Malformed);
    }

    #[test]
    fn the_header_is_checked_before_the_signature() {
        let keys = keys(Algorithm::EdDSA);
        let token = keys.sign(&claims()).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        let kid = keys.signing_kid();
        let forged = |header: serde_json::Value| format!("{}.{rest}", b64(&header.to_string()));

        let none = forged(json!({"alg": "none", "kid": kid}));
        assert_eq!(check(&keys, &none, NOW).unwrap_err(), JwtError::Malformed);
        let hmac = forged(json!({"alg": "HS256", "kid": kid}));
        assert_eq!(check(&keys, &hmac, NOW).unwrap_err(), JwtError::Algorithm);
        for param in ["jwk", "jku", "x5u", "x5c"] {
            let value = if param == "x5c" {
                json!(["MIIB"])
            } else if param == "jwk" {
                json!({"kty": "OKP", "crv": "Ed25519", "x": "AA"})
            } else {
                json!("https://example.com/k")
            };
            let carrying = forged(json!({"alg": "EdDSA", "kid": kid, param: value}));
            assert_eq!(
                check(&keys, &carrying, NOW).unwrap_err(),
                JwtError::ForbiddenHeader,
                "{param}"
            );
        }
        let no_kid = forged(json!({"alg": "EdDSA", "typ": "JWT"}));
        assert_eq!(
            check(&keys, &no_kid, NOW).unwrap_err(),
            JwtError::UnknownKid
        );
        let other_kid = forged(json!({"alg": "EdDSA", "kid": "0000"}));
        assert_eq!(
            check(&keys, &other_kid, NOW).unwrap_err(),
            JwtError::UnknownKid
        );

        // Another key of the same kind: its kid is not ours.
        let stranger = self::keys(Algorithm::EdDSA).sign(&claims()).unwrap();
        assert_eq!(
            check(&keys, &stranger, NOW).unwrap_err(),
            JwtError::UnknownKid
        );
        // Another algorithm altogether.
        let es = self::keys(Algorithm::ES256).sign(&claims()).unwrap();
        assert_eq!(check(&keys, &es, NOW).unwrap_err(), JwtError::Algorithm);
    }

    #[test]
    fn a_tampered_payload_or_signature_is_a_bad_signature() {
        let keys = keys(Algorithm::EdDSA);
        let token = keys.sign(&claims()).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let genuine = parts.clone();
        parts[1] = b64(&with(claims(), "roles", json!(["admin"])));
        assert_eq!(
            check(&keys, &parts.join("."), NOW).unwrap_err(),
            JwtError::Signature
        );
        let mut parts = genuine;
        parts[2] = b64("not the signature");
        assert_eq!(
            check(&keys, &parts.join("."), NOW).unwrap_err(),
            JwtError::Signature
        );
        parts[2].clear();
        assert_eq!(
            check(&keys, &parts.join("."), NOW).unwrap_err(),
            JwtError::Signature
        );
    }
}
