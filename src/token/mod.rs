//! The gateway's own OAuth 2.0 endpoints: token (password and refresh grants) and logout.
//!
//! `grant.rs` parses the request, `issue.rs` mints the pair, the token format (keys, claims)
//! is `crate::jwt`. This file runs a grant end to end against the session store. Handlers
//! return a [`TokenError`] of their own, which `reject.rs` maps to the response.
//! Passwords and tokens are never logged; audit events name the user and session only.

pub mod discovery;
mod error;
pub mod grant;
pub mod issue;
mod replay;
mod revoke;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};

pub use error::{OAuthError, TokenError};
pub use replay::ReplayCache;
pub use revoke::{handle_introspect, handle_revoke};

use self::grant::{BodyKind, Grant, MAX_BODY};
use self::issue::{PairRequest, TokenResponse};
use crate::auth::Verifier;
use crate::body::{self, Body, CollectError, Inbound};
use crate::canonical::Host;
use crate::clock::Clock;
use crate::config::Config;
use crate::jwt::{self, KeySet, RefreshClaims, Rules};
use crate::login::{self, ConnLogins, HashPool, Limits, Locked, LoginThrottle, Refused, Users};
use crate::metrics::Metrics;
use crate::session::{RotateError, Rotation, Session, SessionStore};

/// What the token endpoints use, lent by the gateway for one request: the parts of the
/// configuration generation and of the process state they read, and who is asking. The
/// endpoints never see the `Snapshot` or `Shared` these parts are lent from.
#[derive(Clone, Copy, Debug)]
pub struct TokenCtx<'a> {
    pub config: &'a Arc<Config>,
    pub keys: &'a Arc<KeySet>,
    pub users: &'a Arc<Users>,
    /// Checks access tokens (logout, introspection, revocation).
    pub verifier: &'a Verifier,
    /// How refresh tokens are checked.
    pub refresh_rules: &'a Rules,
    /// The JWKS document, rendered once per snapshot.
    pub jwks: &'a Bytes,
    pub sessions: &'a SessionStore,
    pub throttle: &'a LoginThrottle,
    pub hashing: &'a HashPool,
    pub replays: &'a ReplayCache,
    pub metrics: &'a Metrics,
    pub clock: &'a Clock,
    /// The client address (behind trusted proxies): what the per-address login limits key on.
    pub client: IpAddr,
    /// The logins in flight on the request's connection.
    pub logins: &'a ConnLogins,
    /// How the client reached us and the request's canonical host: the metadata's URLs.
    pub scheme: &'static str,
    pub host: Option<&'a Host>,
}

/// `POST /api/oauth2/token`. `user` is set to whom the answer was for, for the access log.
pub async fn handle_token(
    t: &TokenCtx<'_>,
    user: &mut Option<Arc<str>>,
    req: Request<Inbound>,
) -> Result<Response<Body>, TokenError> {
    let (kind, bytes) = read_body(t, req).await?;
    let grant = grant::parse(kind, &bytes)?;
    let json = match grant {
        Grant::Password {
            username,
            password,
            short_term,
        } => to_json(&password_grant(t, user, username, password, short_term).await?),
        Grant::Refresh { token, short_term } => refresh_grant(t, user, &token, short_term).await?,
    };
    Ok(token_response(json))
}

fn to_json(minted: &TokenResponse) -> Bytes {
    // Serializing a struct of strings and integers cannot fail.
    Bytes::from(serde_json::to_vec(minted).unwrap_or_default())
}

/// The user name a client sent is attacker-controlled: audit events record it as a string field,
/// which the log formatters quote and escape, so it cannot forge log lines.
///
/// Before any password work: the login is counted in flight for its connection and client
/// address (`429` beyond their limits), then it reserves a failure slot for the user name and
/// the address (waiting briefly when all are taken by guesses in flight), so that concurrent
/// guesses cannot overshoot `login.max_failures`. The permit and the slot are RAII guards: a
/// client that goes away frees both.
async fn password_grant(
    t: &TokenCtx<'_>,
    user: &mut Option<Arc<str>>,
    username: String,
    password: String,
    short_term: bool,
) -> Result<TokenResponse, TokenError> {
    let limits = Limits::from(&t.config.login);
    // The client address (behind trusted proxies): what the per-address limits key on.
    let addr = t.client;
    let throttle = &t.throttle;
    let _in_flight = throttle.admit(t.logins, addr).map_err(|limit| {
        tracing::info!(target: "audit", event = "login_refused_busy", user = username.as_str(), %addr, by = limit.by());
        OAuthError::TooManyLogins
    })?;
    let slot = match throttle
        .reserve(&username, addr, limits, login::SLOT_WAIT)
        .await
    {
        Ok(slot) => slot,
        Err(Refused::Locked(locked)) => {
            tracing::info!(target: "audit", event = "login_refused_locked", user = username.as_str(), %addr);
            return Err(too_many_failures(locked).into());
        }
        Err(Refused::Full) => {
            tracing::info!(target: "audit", event = "login_refused_busy", user = username.as_str(), %addr, by = "slots");
            return Err(OAuthError::TooManyLogins.into());
        }
    };

    let (users, keys, config) = (t.users.clone(), t.keys.clone(), t.config.clone());
    let sid = uuid::Uuid::new_v4().to_string();
    let token_id = uuid::Uuid::new_v4().to_string();
    let now = t.clock.now();
    let session_start = crate::clock::unix(now);
    let name = username.clone();
    // An error here (hashing queue full, signing failed) drops the slot: nothing is counted.
    let outcome = t
        .hashing
        .run(move || {
            let Some(user) = users.verify(&name, &password) else {
                return Ok(None);
            };
            let req = PairRequest {
                user: &user.name,
                roles: &user.roles,
                sid: &sid,
                token_id: &token_id,
                short_term,
                session_start,
                now,
            };
            let tokens = &config.tokens;
            let refresh_at = issue::refresh_deadline(tokens, &req)
                .ok_or(OAuthError::InvalidGrant("The session lifetime is zero"))?;
            let minted = issue::mint(&keys, tokens, &req, refresh_at)?;
            Ok::<_, TokenError>(Some((sid, token_id, minted)))
        })
        .await??;

    let Some((sid, token_id, minted)) = outcome else {
        tracing::info!(target: "audit", event = "login_failure", user = username.as_str(), %addr);
        if let Some(locked) = slot.fail(limits, Instant::now()) {
            let kind = if matches!(locked, Locked::Address(_)) {
                "address"
            } else {
                "user"
            };
            let lockout = crate::metrics::LockoutKind { kind };
            t.metrics.lockouts.get_or_create(&lockout).inc();
            tracing::warn!(
                target: "audit",
                event = "lockout",
                user = username.as_str(),
                %addr,
                by = kind,
                seconds = locked.retry_after().as_secs(),
            );
        }
        return Err(OAuthError::BAD_CREDENTIALS.into());
    };
    slot.succeed();
    t.sessions
        .create(Session {
            sid: sid.clone(),
            user: username.clone(),
            token_id,
            created_at: session_start,
            expires_at: minted.refresh_exp,
            access_until: access_deadline(t.config, minted.access_exp),
        })
        .await?;
    tracing::info!(target: "audit", event = "login_success", user = username.as_str(), sid = %sid);
    let grant = crate::metrics::Grant { grant: "password" };
    t.metrics.tokens_issued.get_or_create(&grant).inc();
    *user = Some(username.into());
    Ok(minted)
}

fn too_many_failures(locked: Locked) -> OAuthError {
    let secs = locked.retry_after().as_secs_f64().ceil().max(1.0) as u64;
    OAuthError::TooManyFailures { retry_after: secs }
}

/// The refresh grant: verify, then rotate, inside the replay window when one is configured.
async fn refresh_grant(
    t: &TokenCtx<'_>,
    user: &mut Option<Arc<str>>,
    token: &str,
    short_term: bool,
) -> Result<Bytes, TokenError> {
    let now = t.clock.unix();
    let claims: RefreshClaims =
        jwt::verify(t.keys, t.refresh_rules, token, now).map_err(|_| OAuthError::BAD_REFRESH)?;
    let grace = t.config.tokens.refresh_grace;
    if grace.is_zero() {
        return Ok(to_json(&rotate(t, user, &claims, short_term).await?));
    }
    let Some(slot) = t.replays.slot(&claims.token_id, grace, Instant::now()) else {
        // Past the window: an ordinary (and, the token being spent, reuse-detecting) refresh.
        return Ok(to_json(&rotate(t, user, &claims, short_term).await?));
    };
    let mut first = false;
    let json = slot
        .response
        .get_or_try_init(|| {
            first = true;
            async {
                rotate(t, user, &claims, short_term)
                    .await
                    .map(|r| to_json(&r))
            }
        })
        .await?
        .clone();
    if !first {
        if t.sessions.deny_list().is_denied(&claims.sid) {
            return Err(OAuthError::BAD_REFRESH.into());
        }
        tracing::info!(target: "audit", event = "refresh_replayed", user = %claims.sub, sid = %claims.sid);
        *user = Some(claims.sub.into());
    }
    Ok(json)
}

/// Rotates the session of `claims` to a new refresh token and mints the new pair.
async fn rotate(
    t: &TokenCtx<'_>,
    user: &mut Option<Arc<str>>,
    claims: &RefreshClaims,
    short_term: bool,
) -> Result<TokenResponse, TokenError> {
    let sessions = t.sessions;
    let revoke_until = revoke_until(t);
    let Some(session) = sessions.get(&claims.sid).await? else {
        return Err(OAuthError::BAD_REFRESH.into());
    };
    let Some(roles) = t.users.roles(&session.user).map(<[String]>::to_vec) else {
        // The user was removed from the configuration: end the session.
        sessions.revoke(&claims.sid, revoke_until).await?;
        return Err(OAuthError::BAD_REFRESH.into());
    };
    let next_id = uuid::Uuid::new_v4().to_string();
    let now = t.clock.now();
    let minted = {
        let (keys, config) = (t.keys.clone(), t.config.clone());
        let (name, sid, next_id) = (session.user.clone(), session.sid.clone(), next_id.clone());
        let short_term = short_term || claims.is_short_term();
        tokio::task::spawn_blocking(move || {
            let req = PairRequest {
                user: &name,
                roles: &roles,
                sid: &sid,
                token_id: &next_id,
                short_term,
                session_start: session.created_at,
                now,
            };
            let tokens = &config.tokens;
            let refresh_at = issue::refresh_deadline(tokens, &req).ok_or(
                OAuthError::InvalidGrant("The session has reached its maximum lifetime"),
            )?;
            Ok::<_, TokenError>(issue::mint(&keys, tokens, &req, refresh_at)?)
        })
        .await
        .map_err(TokenError::Task)??
    };
    let next = Rotation {
        token_id: next_id,
        expires_at: minted.refresh_exp,
        access_until: access_deadline(t.config, minted.access_exp),
    };
    match sessions
        .rotate(&claims.sid, &claims.token_id, next, revoke_until)
        .await
    {
        Ok(_) => {
            tracing::info!(target: "audit", event = "refresh", user = %claims.sub, sid = %claims.sid);
            let grant = crate::metrics::Grant {
                grant: "refresh_token",
            };
            t.metrics.tokens_issued.get_or_create(&grant).inc();
            *user = Some(claims.sub.as_str().into());
            Ok(minted)
        }
        Err(RotateError::Reused) => {
            tracing::warn!(
                target: "audit",
                event = "reuse_detected",
                user = %claims.sub,
                sid = %claims.sid,
                "a used refresh token was presented again; the session is revoked"
            );
            Err(OAuthError::BAD_REFRESH.into())
        }
        Err(RotateError::Unknown | RotateError::Revoked) => Err(OAuthError::BAD_REFRESH.into()),
        Err(RotateError::Store(e)) => Err(e.into()),
    }
}

/// `POST /api/oauth2/logout` with the session's access token.
pub async fn handle_logout(
    t: &TokenCtx<'_>,
    user: &mut Option<Arc<str>>,
    req: Request<Inbound>,
) -> Result<Response<Body>, TokenError> {
    require_post(&req)?;
    let identity =
        t.verifier
            .authenticate(t.sessions.deny_list(), req.headers(), t.clock.unix())?;
    let until = revoke_until(t).max(access_deadline(t.config, identity.exp));
    t.sessions.revoke(&identity.sid, until).await?;
    tracing::info!(target: "audit", event = "logout", user = %identity.user, sid = %identity.sid);
    *user = Some(identity.user.clone());
    let mut response = Response::new(body::empty());
    body::no_store(&mut response);
    Ok(response)
}

/// The now-based floor of a revocation made now (see [`revocation_deadline`]).
fn revoke_until(t: &TokenCtx<'_>) -> u64 {
    revocation_deadline(t.config, t.clock.unix())
}

/// Until when a session revoked now stays refused at the least: past the expiry of any access
/// token minted under today's settings, leeway included. The store extends it to the session's
/// own deadline ([`crate::session::Session::access_until`]), which covers tokens minted under a
/// longer `access_ttl` before a reload.
pub fn revocation_deadline(config: &crate::config::Config, now: u64) -> u64 {
    let t = &config.tokens;
    now.saturating_add(t.access_ttl.as_secs())
        .saturating_add(t.leeway.as_secs())
        .saturating_add(1)
}

/// Until when an access token expiring at `exp` may be accepted: `exp` plus the leeway, plus one
/// second, as the session records it.
pub fn access_deadline(config: &crate::config::Config, exp: u64) -> u64 {
    exp.saturating_add(config.tokens.leeway.as_secs())
        .saturating_add(1)
}

/// Checks method and content type, then reads the (at most 16 KiB) body, which must arrive
/// within `server.header_read_timeout`: a stalled body must not hold its connection.
async fn read_body(
    t: &TokenCtx<'_>,
    req: Request<Inbound>,
) -> Result<(BodyKind, bytes::Bytes), TokenError> {
    require_post(&req)?;
    let kind = BodyKind::from_content_type(req.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()))
        .ok_or(OAuthError::InvalidRequest(
        "Content-Type must be application/x-www-form-urlencoded or application/json",
    ))?;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(OAuthError::BodyTooLarge.into());
    }
    let deadline = t.config.server.header_read_timeout;
    let bytes = body::collect_capped(req.into_body(), MAX_BODY, deadline)
        .await
        .map_err(|e| match e {
            CollectError::TooLarge => OAuthError::BodyTooLarge,
            CollectError::Timeout => OAuthError::BodyTimeout,
            CollectError::Read => OAuthError::InvalidRequest("The request body could not be read"),
        })?;
    Ok((kind, bytes))
}

fn require_post<B>(req: &Request<B>) -> Result<(), TokenError> {
    if req.method() == Method::POST {
        Ok(())
    } else {
        Err(TokenError::MethodNotAllowed("POST"))
    }
}

/// A token pair: JSON, labelled UTF-8 as the seed API does (SPEC §1.1), never cached.
fn token_response(json: Bytes) -> Response<Body> {
    let mut response = body::json(StatusCode::OK, json);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    body::no_store(&mut response);
    response
}
