//! JWT verification with a key set and the [`Rules`] of one audience (SPEC §2).
//!
//! The header is checked before any signature work: the algorithm must be the configured one
//! (so never `none`, never HMAC with a public key), `kid` must name one of our keys, and `jwk`,
//! `jku`, `x5u`, `x5c` are refused outright. Then the signature, then the registered claims.
//!
//! The token is split once; the header is read borrowed from its decoded bytes, and the
//! signature is checked with the key set's keys, each parsed once per snapshot into an aws-lc
//! `ParsedPublicKey` (no key parsing per token), over the token's own `header.payload` bytes.
//! Only the payload is allocated: the claims (all registered ones required by their types) are
//! read from it, borrowed where the caller's claim type allows ([`Payload::claims`]), and the
//! time claims, the issuer and the audience are checked against the `now` the caller passes
//! (its clock, adjustable in tests), not against the system clock.

use std::borrow::Cow;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;

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
    fn check<T: Registered>(&self, claims: &T, now: u64) -> Result<(), JwtError> {
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
pub fn verify<T: Registered + DeserializeOwned>(
    keys: &KeySet,
    rules: &Rules,
    token: &str,
    now: u64,
) -> Result<T, JwtError> {
    signed_payload(keys, token.as_bytes())?.claims(rules, now)
}

/// The decoded payload of a token whose header and signature passed; its claims are read
/// (borrowed from it where they need no unescaping) and checked by [`Payload::claims`].
#[derive(Debug)]
pub struct Payload(Vec<u8>);

impl Payload {
    /// The claims, checked against `rules` at `now` (Unix seconds).
    pub fn claims<'a, T: Registered + Deserialize<'a>>(
        &'a self,
        rules: &Rules,
        now: u64,
    ) -> Result<T, JwtError> {
        let claims: T = serde_json::from_slice(&self.0).map_err(|_| JwtError::Malformed)?;
        rules.check(&claims, now)?;
        Ok(claims)
    }
}

/// The JOSE header parameters the check reads, borrowed from the decoded header; the others
/// are ignored. Key-carrying parameters are refused whatever their value.
#[derive(Deserialize)]
struct Header<'a> {
    alg: Algorithm,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    jwk: Option<IgnoredAny>,
    jku: Option<IgnoredAny>,
    x5u: Option<IgnoredAny>,
    x5c: Option<IgnoredAny>,
}

/// Decoded headers and signatures up to this size are decoded on the stack; larger ones
/// (legitimate ones never are: ours are ~80 and 512 bytes at most) go to the heap.
const STACK: usize = 512;

/// Checks the header and the signature of the compact JWS `token` (attacker-controlled bytes:
/// exactly three base64url segments, split once) and returns its decoded payload.
///
/// The header is checked before any signature work: the algorithm, the key-carrying
/// parameters, the `kid`. The header and the signature are decoded on the stack; only the
/// payload, which the claims borrow from, is allocated.
pub fn signed_payload(keys: &KeySet, token: &[u8]) -> Result<Payload, JwtError> {
    let mut dots = token.iter().enumerate().filter(|(_, b)| **b == b'.');
    let (Some((first, _)), Some((second, _)), None) = (dots.next(), dots.next(), dots.next())
    else {
        return Err(JwtError::Malformed);
    };
    let (header, signed, signature) = (&token[..first], &token[..second], &token[second + 1..]);
    let payload = &token[first + 1..second];

    let mut buf = [0u8; STACK];
    let header = decode(header, &mut buf)?;
    let header: Header<'_> = serde_json::from_slice(&header).map_err(|_| JwtError::Malformed)?;
    if header.alg != keys.algorithm {
        return Err(JwtError::Algorithm);
    }
    if header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() || header.x5c.is_some()
    {
        return Err(JwtError::ForbiddenHeader);
    }
    let kid = header.kid.ok_or(JwtError::UnknownKid)?;
    let key = keys.verifying(&kid).ok_or(JwtError::UnknownKid)?;

    let mut buf = [0u8; STACK];
    let signature = decode(signature, &mut buf)?;
    key.verify_sig(signed, &signature)
        .map_err(|_| JwtError::Signature)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| JwtError::Malformed)?;
    Ok(Payload(payload))
}

/// `segment` base64url-decoded (no padding), into `stack` when it fits.
fn decode<'a>(segment: &[u8], stack: &'a mut [u8; STACK]) -> Result<Cow<'a, [u8]>, JwtError> {
    if base64::decoded_len_estimate(segment.len()) <= STACK {
        let len = URL_SAFE_NO_PAD
            .decode_slice(segment, stack)
            .map_err(|_| JwtError::Malformed)?;
        Ok(Cow::Borrowed(&stack[..len]))
    } else {
        let decoded = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| JwtError::Malformed)?;
        Ok(Cow::Owned(decoded))
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;
    use serde_json::json;

    use super::*;
    use crate::jwt::{AccessClaims, AccessView, RefreshClaims, ACCESS_AUDIENCE, REFRESH_AUDIENCE};

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

    #[test]
    fn a_header_too_large_for_the_stack_is_still_read() {
        let keys = keys(Algorithm::EdDSA);
        let token = keys.sign(&claims()).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        let x5c = json!(["A".repeat(4 * STACK)]);
        let header = json!({"alg": "EdDSA", "kid": keys.signing_kid(), "x5c": x5c});
        let carrying = format!("{}.{rest}", b64(&header.to_string()));
        assert_eq!(
            check(&keys, &carrying, NOW).unwrap_err(),
            JwtError::ForbiddenHeader
        );
    }

    /// The borrowed view of the access claims (the proxied request's check) accepts and
    /// refuses exactly what `AccessClaims` does, and reads escaped strings.
    #[test]
    fn the_borrowed_access_view_requires_what_access_claims_require() {
        let keys = keys(Algorithm::EdDSA);
        let rules = rules(ACCESS_AUDIENCE);
        let mut variants = vec![claims()];
        for claim in [
            "exp", "nbf", "iat", "aud", "iss", "sub", "sid", "jti", "roles",
        ] {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(claim);
            variants.push(c);
        }
        for (claim, value) in [
            ("jti", json!(5)),
            ("unique_name", json!(["alice"])),
            ("iat", json!("now")),
            ("roles", json!("reader")),
            ("sid", json!(null)),
        ] {
            variants.push(serde_json::from_str(&with(claims(), claim, value)).unwrap());
        }
        for c in &variants {
            let token = keys.sign(c).unwrap();
            let owned = verify::<AccessClaims>(&keys, &rules, &token, NOW).map(|c| c.sub);
            let payload = signed_payload(&keys, token.as_bytes()).unwrap();
            let view = payload
                .claims::<AccessView<'_>>(&rules, NOW)
                .map(|c| c.sub.into_owned());
            assert_eq!(view, owned, "{c}");
        }
        let escaped: serde_json::Value =
            serde_json::from_str(&with(claims(), "sub", json!("a\"b"))).unwrap();
        let token = keys.sign(&escaped).unwrap();
        let payload = signed_payload(&keys, token.as_bytes()).unwrap();
        let view: AccessView<'_> = payload.claims(&rules, NOW).unwrap();
        assert_eq!(view.sub, "a\"b");
        assert_eq!(view.roles, ["reader"]);
    }
}
