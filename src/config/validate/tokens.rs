//! `[tokens]`.

use std::time::Duration;

use super::Checker;
use crate::config::defaults as d;
use crate::config::raw;
use crate::config::{Algorithm, TokensConfig};

/// `public_url` is the validated `server.public_url`: the issuer's default when it is set.
pub(super) fn tokens(c: &mut Checker, raw: raw::Tokens, public_url: Option<&str>) -> TokensConfig {
    let algorithm_text = raw
        .algorithm
        .unwrap_or_else(|| d::TOKENS_ALGORITHM.default.to_owned());
    let algorithm = match algorithm_text.as_str() {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        other => {
            c.issue(
                "tokens.algorithm",
                format!(
                    "{other:?}: expected one of RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA"
                ),
            );
            Algorithm::RS512
        }
    };
    let issuer = raw
        .issuer
        .or_else(|| public_url.map(str::to_owned))
        .unwrap_or_else(|| d::TOKENS_ISSUER.default.to_owned());
    if issuer.is_empty() {
        c.issue("tokens.issuer", "must not be empty");
    } else if !issuer.starts_with("https://") {
        c.notice(
            "tokens.issuer",
            format!(
                "{issuer:?} is not an https URL; strict RFC 8414 clients refuse the metadata \
                 (set server.public_url or tokens.issuer to the gateway's https URL)"
            ),
        );
    }
    let signing_key = raw
        .signing_key
        .unwrap_or_else(|| d::TOKENS_SIGNING_KEY.default.to_owned());
    let access_ttl = c.span(d::TOKENS_ACCESS_TTL, raw.access_ttl.as_deref());
    let refresh_ttl = c.span(d::TOKENS_REFRESH_TTL, raw.refresh_ttl.as_deref());
    let short_refresh_ttl = c.span(
        d::TOKENS_SHORT_REFRESH_TTL,
        raw.short_refresh_ttl.as_deref(),
    );
    let max_session = c.span(
        d::TOKENS_MAX_SESSION_LIFETIME,
        raw.max_session_lifetime.as_deref(),
    );
    let refresh_grace = c.span(d::TOKENS_REFRESH_GRACE, raw.refresh_grace.as_deref());
    for (key, ttl) in [
        ("tokens.access_ttl", access_ttl),
        ("tokens.refresh_ttl", refresh_ttl),
        ("tokens.short_refresh_ttl", short_refresh_ttl),
    ] {
        let unparsed = c.issues.iter().any(|i| i.key == key);
        if ttl < Duration::from_secs(1) && !unparsed {
            c.issue(key, "must be at least 1s");
        }
    }
    TokensConfig {
        issuer,
        algorithm,
        signing_key: c.path(&signing_key),
        verify_keys: raw
            .verify_keys
            .unwrap_or_default()
            .iter()
            .map(|p| c.path(p))
            .collect(),
        access_ttl,
        refresh_ttl,
        short_refresh_ttl,
        max_session_lifetime: (!max_session.is_zero()).then_some(max_session),
        leeway: c.span(d::TOKENS_LEEWAY, raw.leeway.as_deref()),
        refresh_grace,
        verified_cache: match raw.verified_cache {
            Some(0) => 0,
            n => c.positive(d::TOKENS_VERIFIED_CACHE, n, 10_000_000) as usize,
        },
    }
}
