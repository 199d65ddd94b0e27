//! Minting a token pair and the success response (SPEC §1.1, §1.2).
//!
//! Signing is CPU-bound (two RSA signatures); callers run `mint` on the blocking pool.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::clock::unix;
use crate::config::TokensConfig;
use crate::jwt::{
    AccessClaims, KeySet, RefreshClaims, SignError, ACCESS_AUDIENCE, REFRESH_AUDIENCE,
};

/// What to mint: one session's next pair.
#[derive(Debug)]
pub struct PairRequest<'a> {
    pub user: &'a str,
    pub roles: &'a [String],
    pub sid: &'a str,
    pub token_id: &'a str,
    pub short_term: bool,
    /// Unix second the session started (for `max_session_lifetime`).
    pub session_start: u64,
    pub now: SystemTime,
}

/// A minted pair, ready to send. Never logged.
#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    #[serde(rename = "accessTokenExpiresAt")]
    pub access_expires_at: String,
    #[serde(rename = "refreshTokenExpiresAt")]
    pub refresh_expires_at: String,
    /// The refresh token's `exp`, for the store; not part of the JSON.
    #[serde(skip)]
    pub refresh_exp: u64,
    /// The access token's `exp`, for the store's revocation deadline; not part of the JSON.
    #[serde(skip)]
    pub access_exp: u64,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("refresh_exp", &self.refresh_exp)
            .field("access_exp", &self.access_exp)
            .finish_non_exhaustive()
    }
}

/// Why minting failed: a key that cannot sign, or an expiry the clock cannot represent; the
/// snapshot build and the 100-year cap on durations rule both out.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("minting a token failed")]
    Sign(#[source] SignError),
    #[error("the access token's expiry is out of the clock's range")]
    OutOfRange,
}

/// When the refresh token minted for `req` under `t` expires: its lifetime from now, capped by
/// the session's absolute lifetime. `None` when the session has reached that cap, or when the
/// deadline is out of the clock's range (which the 100-year cap on durations rules out).
pub fn refresh_deadline(t: &TokensConfig, req: &PairRequest<'_>) -> Option<SystemTime> {
    let ttl = if req.short_term {
        t.short_refresh_ttl
    } else {
        t.refresh_ttl
    };
    capped_deadline(req.now, ttl, req.session_start, t.max_session_lifetime)
}

/// `now + ttl`, capped at `session_start + max`; `None` once that cap has passed or when
/// `now + ttl` is out of the clock's range. A cap too far ahead for the clock caps nothing.
fn capped_deadline(
    now: SystemTime,
    ttl: Duration,
    session_start: u64,
    max: Option<Duration>,
) -> Option<SystemTime> {
    let deadline = now.checked_add(ttl)?;
    let cap = max.and_then(|max| {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(session_start))?
            .checked_add(max)
    });
    match cap {
        Some(cap) if cap <= now => None,
        Some(cap) => Some(deadline.min(cap)),
        None => Some(deadline),
    }
}

/// Signs with `keys` an access and a refresh token for `req` (issuer and access lifetime from
/// `t`), the refresh token living until `refresh_at`.
pub fn mint(
    keys: &KeySet,
    t: &TokensConfig,
    req: &PairRequest<'_>,
    refresh_at: SystemTime,
) -> Result<TokenResponse, MintError> {
    let iat = unix(req.now);
    let access_at = req
        .now
        .checked_add(t.access_ttl)
        .ok_or(MintError::OutOfRange)?;
    let access = AccessClaims {
        iss: t.issuer.clone(),
        sub: req.user.to_owned(),
        unique_name: req.user.to_owned(),
        aud: ACCESS_AUDIENCE.to_owned(),
        iat,
        nbf: iat,
        exp: unix(access_at),
        jti: uuid::Uuid::new_v4().to_string(),
        sid: req.sid.to_owned(),
        roles: req.roles.to_vec(),
    };
    let refresh = RefreshClaims {
        iss: t.issuer.clone(),
        sub: req.user.to_owned(),
        unique_name: req.user.to_owned(),
        aud: REFRESH_AUDIENCE.to_owned(),
        token_id: req.token_id.to_owned(),
        short_term_expiration: if req.short_term { "True" } else { "False" }.to_owned(),
        sid: req.sid.to_owned(),
        iat,
        nbf: iat,
        exp: unix(refresh_at),
    };
    Ok(TokenResponse {
        access_token: keys.sign(&access).map_err(MintError::Sign)?,
        token_type: "Bearer",
        expires_in: t.access_ttl.as_secs(),
        refresh_token: keys.sign(&refresh).map_err(MintError::Sign)?,
        access_expires_at: rfc3339_7(access_at),
        refresh_expires_at: rfc3339_7(refresh_at),
        refresh_exp: refresh.exp,
        access_exp: access.exp,
    })
}

/// RFC 3339 UTC with seven fractional digits, as the seed API writes it:
/// `2026-11-25T13:43:43.7826152Z`.
pub fn rfc3339_7(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let at = time::OffsetDateTime::UNIX_EPOCH + since;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        since.subsec_nanos() / 100
    )
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;

    use super::*;
    use crate::clock::Clock;
    use crate::jwt::{self, JwtError, Rules};

    const LEEWAY: Duration = Duration::from_secs(30);

    fn keys() -> KeySet {
        let pem = crate::keygen::signing_key_pem_for(Algorithm::ES256).unwrap();
        KeySet::from_pem(Algorithm::ES256, pem.as_bytes(), &[]).unwrap()
    }

    fn tokens() -> TokensConfig {
        TokensConfig {
            issuer: "https://auth.example".into(),
            algorithm: Algorithm::ES256,
            signing_key: "unused.pem".into(),
            verify_keys: Vec::new(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(14 * 86_400),
            short_refresh_ttl: Duration::from_secs(1_800),
            max_session_lifetime: None,
            leeway: LEEWAY,
            refresh_grace: Duration::ZERO,
            verified_cache: 0,
        }
    }

    fn request(roles: &[String], short_term: bool, now: SystemTime) -> PairRequest<'_> {
        PairRequest {
            user: "alice",
            roles,
            sid: "sid-1",
            token_id: "tid-1",
            short_term,
            session_start: unix(now),
            now,
        }
    }

    fn rules(t: &TokensConfig, audience: &str) -> Rules {
        Rules::new(audience, &t.issuer, t.leeway)
    }

    #[test]
    fn a_pair_carries_the_claims_of_spec_1_2() {
        let (keys, t) = (keys(), tokens());
        let roles = vec!["reader".to_owned()];
        let now = UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_789);
        let req = request(&roles, false, now);
        let refresh_at = refresh_deadline(&t, &req).unwrap();
        let pair = mint(&keys, &t, &req, refresh_at).unwrap();
        let at = 1_800_000_000;

        let access: AccessClaims =
            jwt::verify(&keys, &rules(&t, ACCESS_AUDIENCE), &pair.access_token, at).unwrap();
        assert_eq!(
            (access.sub.as_str(), access.unique_name.as_str()),
            ("alice", "alice")
        );
        assert_eq!(
            (access.iss.as_str(), access.sid.as_str()),
            ("https://auth.example", "sid-1")
        );
        assert_eq!((access.iat, access.nbf, access.exp), (at, at, at + 900));
        assert_eq!(access.roles, roles);
        assert!(uuid::Uuid::parse_str(&access.jti).is_ok());
        assert_eq!(
            (pair.token_type, pair.expires_in, pair.access_exp),
            ("Bearer", 900, at + 900)
        );
        assert_eq!(pair.access_expires_at, "2027-01-15T08:15:00.1234567Z");

        let refresh: RefreshClaims =
            jwt::verify(&keys, &rules(&t, REFRESH_AUDIENCE), &pair.refresh_token, at).unwrap();
        assert_eq!(
            (refresh.token_id.as_str(), refresh.sid.as_str()),
            ("tid-1", "sid-1")
        );
        assert_eq!(refresh.short_term_expiration, "False");
        assert_eq!(
            (refresh.exp, pair.refresh_exp),
            (at + 14 * 86_400, at + 14 * 86_400)
        );
        assert_eq!(pair.refresh_expires_at, rfc3339_7(now + t.refresh_ttl));

        // Each token is refused as the other kind.
        let crossed = jwt::verify::<RefreshClaims>(
            &keys,
            &rules(&t, REFRESH_AUDIENCE),
            &pair.access_token,
            at,
        );
        assert_eq!(crossed.unwrap_err(), JwtError::Audience);
        let header = jsonwebtoken::decode_header(&pair.access_token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(keys.signing_kid()));
        assert_eq!(header.alg, Algorithm::ES256);
    }

    #[test]
    fn short_term_refresh_tokens_say_so_and_live_shorter() {
        let (keys, t) = (keys(), tokens());
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let req = request(&[], true, now);
        let refresh_at = refresh_deadline(&t, &req).unwrap();
        assert_eq!(refresh_at, now + t.short_refresh_ttl);
        let pair = mint(&keys, &t, &req, refresh_at).unwrap();
        let refresh: RefreshClaims = jwt::verify(
            &keys,
            &rules(&t, REFRESH_AUDIENCE),
            &pair.refresh_token,
            unix(now),
        )
        .unwrap();
        assert!(refresh.is_short_term());
        assert_eq!(refresh.short_term_expiration, "True");
    }

    #[test]
    fn the_session_cap_shortens_the_refresh_token_then_ends_it() {
        let mut t = tokens();
        t.max_session_lifetime = Some(Duration::from_secs(3_600));
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut req = request(&[], false, start);
        assert_eq!(
            refresh_deadline(&t, &req),
            Some(start + Duration::from_secs(3_600))
        );
        req.now = start + Duration::from_secs(3_600);
        assert_eq!(refresh_deadline(&t, &req), None);
    }

    #[test]
    fn minted_tokens_expire_on_the_adjustable_clock() {
        let (keys, t) = (keys(), tokens());
        let clock = Clock::adjustable();
        let req = request(&[], false, clock.now());
        let pair = mint(&keys, &t, &req, refresh_deadline(&t, &req).unwrap()).unwrap();
        let access = rules(&t, ACCESS_AUDIENCE);
        let refresh = rules(&t, REFRESH_AUDIENCE);
        let check_access =
            |now| jwt::verify::<AccessClaims>(&keys, &access, &pair.access_token, now);
        let check_refresh =
            |now| jwt::verify::<RefreshClaims>(&keys, &refresh, &pair.refresh_token, now);
        assert!(check_access(clock.unix()).is_ok());

        clock.advance(t.access_ttl + t.leeway + Duration::from_secs(1));
        assert_eq!(check_access(clock.unix()).unwrap_err(), JwtError::Expired);
        assert!(
            check_refresh(clock.unix()).is_ok(),
            "the refresh token lives on"
        );

        clock.advance(t.refresh_ttl);
        assert_eq!(check_refresh(clock.unix()).unwrap_err(), JwtError::Expired);
    }

    #[test]
    fn deadlines_are_capped_and_never_overflow() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let ttl = Duration::from_secs(100);
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(capped_deadline(now, ttl, 0, None), Some(at(1_100)));
        assert_eq!(
            capped_deadline(now, ttl, 950, Some(Duration::from_secs(60))),
            Some(at(1_010))
        );
        assert_eq!(
            capped_deadline(now, ttl, 900, Some(Duration::from_secs(100))),
            None,
            "the session's lifetime is over"
        );
        assert_eq!(capped_deadline(now, Duration::MAX, 0, None), None);
        assert_eq!(
            capped_deadline(now, ttl, u64::MAX, Some(Duration::MAX)),
            Some(at(1_100)),
            "an unrepresentable cap caps nothing"
        );
    }

    #[test]
    fn seven_fractional_digits() {
        let t = UNIX_EPOCH + Duration::new(1_795_614_223, 782_615_200);
        assert_eq!(rfc3339_7(t), "2026-11-25T13:43:43.7826152Z");
        assert_eq!(rfc3339_7(UNIX_EPOCH), "1970-01-01T00:00:00.0000000Z");
    }
}
