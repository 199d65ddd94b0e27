//! Authentication and authorization of proxied requests (SPEC §2).
//!
//! [`Verifier::authenticate`] turns the request's headers into an `Identity` or an `AuthError`:
//! bearer parsing (`bearer.rs`), signature and claims (`crate::jwt::verify`, skipped for a token
//! in the verified-token cache, `cache.rs`), then the revocation deny list. The time is the
//! caller's `now`, so that tests can move a clock instead of sleeping.
//! `authorize` checks the route's roles. Neither knows about HTTP statuses.

mod bearer;
mod cache;
mod error;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use bearer::{bearer_candidate, token68_bytes};
pub use bearer::{bearer_token, MAX_TOKEN_LEN};
use cache::TokenCache;
pub use error::{AuthError, InvalidReason};

use crate::jwt::{self, AccessClaims, AccessView, KeySet, Rules};
use crate::metrics::CacheCounters;
use crate::session::DenyList;

/// Who a request is from, as its verified access token says. Built once per verified token
/// and shared (`Arc`) by every request that presents it, with the identity headers the
/// gateway sends upstream already rendered.
#[derive(Debug)]
pub struct Identity {
    pub user: Arc<str>,
    pub roles: Vec<String>,
    pub sid: String,
    /// Expiry of the access token, Unix seconds.
    pub exp: u64,
    /// `X-Auth-User`, `X-Auth-Roles` (comma-separated), `X-Auth-Session`.
    pub headers: IdentityHeaders,
}

/// The identity header values; `None` for a value that is not a valid header value (user
/// names and roles are checked to hold no control characters, so that does not happen).
#[derive(Debug)]
pub struct IdentityHeaders {
    pub user: Option<HeaderValue>,
    pub roles: Option<HeaderValue>,
    pub session: Option<HeaderValue>,
}

impl Identity {
    pub fn new(user: &str, roles: Vec<String>, sid: String, exp: u64) -> Self {
        let headers = IdentityHeaders {
            user: HeaderValue::from_str(user).ok(),
            roles: HeaderValue::from_str(&roles.join(",")).ok(),
            session: HeaderValue::from_str(&sid).ok(),
        };
        Self {
            user: user.into(),
            roles,
            sid,
            exp,
            headers,
        }
    }
}

/// Checks access tokens: the snapshot's key set, the access-token rules and the cache of
/// tokens already verified under them. One per snapshot, so that a reload (new keys, new
/// leeway) starts with an empty cache.
#[derive(Debug)]
pub struct Verifier {
    keys: Arc<KeySet>,
    rules: Rules,
    cache: TokenCache,
    counters: CacheCounters,
}

impl Verifier {
    /// A verifier of tokens signed by `keys` that `rules` accept, caching up to
    /// `cache_capacity` of them (0: none).
    pub fn new(keys: Arc<KeySet>, rules: Rules, cache_capacity: usize) -> Self {
        let cache = TokenCache::new(cache_capacity, Duration::from_secs(rules.leeway()));
        Self {
            keys,
            rules,
            cache,
            counters: CacheCounters::default(),
        }
    }

    /// Counts every check from now on as a cache `hit` or `miss` in `counters`.
    pub fn count_into(&mut self, counters: CacheCounters) {
        self.counters = counters;
    }

    /// Verifies the request's bearer token at `now` (Unix seconds) and that its session is not
    /// in `deny`.
    pub fn authenticate(
        &self,
        deny: &DenyList,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<Arc<Identity>, AuthError> {
        self.check(deny, bearer_candidate(headers)?, now)
    }

    /// Verifies one access token at `now`: `authenticate` after the bearer parsing.
    pub fn verify_access(
        &self,
        deny: &DenyList,
        token: &str,
        now: u64,
    ) -> Result<Arc<Identity>, AuthError> {
        self.check(deny, token.as_bytes(), now)
    }

    /// The identity of the bearer token `token` at `now`, from the cache or from a full
    /// verification, unless its session is in `deny`.
    ///
    /// The cache is looked up with the token's bytes as they came: every key in it passed
    /// [`token68_bytes`] and the signature check when it was admitted and keys are compared whole,
    /// so a hit needs neither again, and junk only misses. A miss checks the syntax first.
    fn check(&self, deny: &DenyList, token: &[u8], now: u64) -> Result<Arc<Identity>, AuthError> {
        let identity = match self.cache.get(token, now) {
            Some(identity) => {
                self.counters.hits.inc();
                identity
            }
            None => {
                let token = token68_bytes(token)?;
                self.counters.misses.inc();
                let payload = jwt::signed_payload(&self.keys, token)?;
                let claims: AccessView<'_> = payload.claims(&self.rules, now)?;
                let identity = Arc::new(Identity::new(
                    &claims.sub,
                    claims.roles,
                    claims.sid.into_owned(),
                    claims.exp,
                ));
                self.cache.insert(token, &identity, claims.nbf);
                identity
            }
        };
        // Every request, hit or miss: a revoked session's tokens stop working at once.
        if deny.is_denied(&identity.sid) {
            return Err(AuthError::Invalid(InvalidReason::Revoked));
        }
        Ok(identity)
    }

    /// The claims of `token` as an access token at `now`, from the signature and claims alone
    /// (no cache, no deny list): for revocation and introspection.
    pub fn decode(&self, token: &str, now: u64) -> Result<AccessClaims, AuthError> {
        Ok(jwt::verify(&self.keys, &self.rules, token, now)?)
    }

    /// Drops the cached tokens expired at `now`.
    pub fn purge(&self, now: u64) {
        self.cache.purge(now);
    }

    /// How many verified tokens are cached.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// Checks that `identity` holds any of `required` (an empty list allows every valid token).
pub fn authorize(identity: &Identity, required: &[String]) -> Result<(), AuthError> {
    if required.is_empty() || required.iter().any(|r| identity.roles.contains(r)) {
        Ok(())
    } else {
        Err(AuthError::InsufficientScope)
    }
}

#[cfg(test)]
mod tests {
    use http::header::AUTHORIZATION;
    use http::HeaderValue;
    use jsonwebtoken::Algorithm;

    use super::*;
    use crate::clock::Clock;
    use crate::jwt::ACCESS_AUDIENCE;

    const LEEWAY: Duration = Duration::from_secs(30);
    const TTL: u64 = 60;

    /// A key set made in memory, and a verifier of its tokens caching up to `capacity`.
    fn verifier(capacity: usize) -> (Arc<KeySet>, Verifier) {
        let pem = crate::keygen::signing_key_pem_for(Algorithm::EdDSA).unwrap();
        let keys = Arc::new(KeySet::from_pem(Algorithm::EdDSA, pem.as_bytes(), &[]).unwrap());
        let rules = Rules::new(ACCESS_AUDIENCE, "portcullis", LEEWAY);
        (keys.clone(), Verifier::new(keys, rules, capacity))
    }

    /// An access token of session `sid` issued at `now`, living `TTL` seconds.
    fn token(keys: &KeySet, sid: &str, now: u64) -> String {
        keys.sign(&AccessClaims {
            iss: "portcullis".into(),
            sub: "alice".into(),
            unique_name: "alice".into(),
            aud: ACCESS_AUDIENCE.into(),
            iat: now,
            nbf: now,
            exp: now + TTL,
            jti: "j".into(),
            sid: sid.into(),
            roles: vec!["reader".into()],
        })
        .unwrap()
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::try_from(format!("Bearer {token}")).unwrap();
        headers.insert(AUTHORIZATION, value);
        headers
    }

    #[test]
    fn a_token_expires_when_the_clock_passes_exp_and_the_leeway() {
        // Cache off (every check verifies the signature) and on (the second check is a hit).
        for capacity in [0, 16] {
            let (keys, verifier) = verifier(capacity);
            let deny = DenyList::default();
            let clock = Clock::adjustable();
            let token = token(&keys, "s1", clock.unix());
            let headers = bearer(&token);
            let identity = verifier
                .authenticate(&deny, &headers, clock.unix())
                .unwrap();
            assert_eq!((&*identity.user, identity.sid.as_str()), ("alice", "s1"));
            assert_eq!(verifier.cached(), capacity.min(1));

            // Past exp, within the leeway (the exact edges are jwt::verify's tests).
            clock.advance(Duration::from_secs(TTL + 1));
            let in_leeway = verifier.authenticate(&deny, &headers, clock.unix());
            assert!(in_leeway.is_ok(), "within the leeway, cache {capacity}");
            clock.advance(LEEWAY);
            let late = verifier.authenticate(&deny, &headers, clock.unix());
            assert_eq!(late.unwrap_err(), AuthError::Expired, "cache {capacity}");
        }
    }

    #[test]
    fn a_token_from_the_future_is_not_valid_until_the_clock_gets_there() {
        let (keys, verifier) = verifier(16);
        let deny = DenyList::default();
        let clock = Clock::adjustable();
        let ahead = Duration::from_secs(120);
        let token = token(&keys, "s1", clock.unix() + ahead.as_secs());
        let early = verifier.verify_access(&deny, &token, clock.unix());
        let not_yet = AuthError::Invalid(InvalidReason::NotYetValid);
        assert_eq!(early.unwrap_err(), not_yet);
        assert_eq!(verifier.cached(), 0, "a refused token is not cached");
        clock.advance(ahead - LEEWAY);
        assert!(verifier.verify_access(&deny, &token, clock.unix()).is_ok());
    }

    #[test]
    fn a_revoked_session_is_refused_even_from_the_cache() {
        let (keys, verifier) = verifier(16);
        let deny = DenyList::default();
        let now = Clock::system().unix();
        let (one, two) = (token(&keys, "s1", now), token(&keys, "s2", now));
        assert!(verifier.verify_access(&deny, &one, now).is_ok());
        assert_eq!(verifier.cached(), 1);
        deny.insert("s1", now + 3600);
        let revoked = AuthError::Invalid(InvalidReason::Revoked);
        assert_eq!(
            verifier.verify_access(&deny, &one, now).unwrap_err(),
            revoked
        );
        assert!(verifier.verify_access(&deny, &two, now).is_ok());
    }

    #[test]
    fn a_cached_token_with_any_byte_added_or_changed_is_malformed_not_a_hit() {
        // The cache is looked up before the syntax check: whatever the bytes, only the exact
        // token verified before hits, and the rest still meets the check.
        let (keys, verifier) = verifier(16);
        let deny = DenyList::default();
        let now = Clock::system().unix();
        let good = token(&keys, "s1", now);
        for _ in 0..2 {
            verifier.authenticate(&deny, &bearer(&good), now).unwrap();
        }
        let malformed = AuthError::Invalid(InvalidReason::Malformed);
        for junk in [
            format!("{good}\""),
            format!("{good},{good}"),
            format!("{good}\u{80}"),
            good.replacen('.', "!", 1),
            format!("\t{good}"),
        ] {
            let refused = verifier.authenticate(&deny, &bearer(&junk), now);
            assert_eq!(refused.unwrap_err(), malformed, "{junk:?}");
        }
        let counters = &verifier.counters;
        assert_eq!((counters.hits.get(), counters.misses.get()), (1, 1));
    }

    #[test]
    fn purge_drops_the_tokens_expired_at_its_time() {
        let (keys, verifier) = verifier(16);
        let deny = DenyList::default();
        let now = Clock::system().unix();
        assert!(verifier
            .verify_access(&deny, &token(&keys, "s1", now), now)
            .is_ok());
        let expiry = now + TTL + LEEWAY.as_secs();
        verifier.purge(expiry);
        assert_eq!(verifier.cached(), 1);
        verifier.purge(expiry + 1);
        assert_eq!(verifier.cached(), 0);
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let (keys, verifier) = verifier(16);
        let deny = DenyList::default();
        let now = Clock::system().unix();
        let none = verifier.authenticate(&deny, &HeaderMap::new(), now);
        assert_eq!(none.unwrap_err(), AuthError::Missing);
        let (_, other) = self::verifier(16);
        let foreign = token(&keys, "s1", now);
        let unknown = other.authenticate(&deny, &bearer(&foreign), now);
        assert_eq!(
            unknown.unwrap_err(),
            AuthError::Invalid(InvalidReason::UnknownKid)
        );
        let garbage = verifier.authenticate(&deny, &bearer("a.b.c"), now);
        assert_eq!(
            garbage.unwrap_err(),
            AuthError::Invalid(InvalidReason::Malformed)
        );
        // decode: the claims alone, without the deny list.
        deny.insert("s1", now + 3600);
        assert_eq!(verifier.decode(&foreign, now).unwrap().sid, "s1");
        assert!(verifier.decode(&token(&keys, "s1", now), now).is_ok());
    }

    #[test]
    fn authorize_needs_any_one_of_the_roles() {
        let identity = Identity::new("alice", vec!["reader".into()], "s".into(), 0);
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(authorize(&identity, &[]).is_ok());
        assert!(authorize(&identity, &roles(&["admin", "reader"])).is_ok());
        assert_eq!(
            authorize(&identity, &roles(&["admin"])).unwrap_err(),
            AuthError::InsufficientScope
        );
    }
}
