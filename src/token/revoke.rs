//! RFC 7009 revocation and RFC 7662 introspection.
//!
//! Revocation always answers `200` (RFC 7009 §2.2: an invalid token is not an error); a valid
//! access or refresh token has its whole session revoked. Introspection needs the caller's own
//! valid access token and says `{"active": false}` for anything that is not live.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use serde_json::json;

use super::grant::{fields, single};
use super::{access_deadline, read_body, revoke_until, OAuthError, TokenCtx, TokenError};
use crate::auth;
use crate::body::{self, Body, Inbound};
use crate::jwt::{self, AccessClaims, RefreshClaims};

/// A token presented to revoke or introspect, verified as one of ours.
enum Presented {
    Access(AccessClaims),
    Refresh(RefreshClaims),
}

impl Presented {
    fn sid(&self) -> &str {
        match self {
            Self::Access(c) => &c.sid,
            Self::Refresh(c) => &c.sid,
        }
    }
}

/// Verifies `token` as a refresh or an access token (in the order the hint suggests).
fn identify(t: &TokenCtx<'_>, token: &str, hint: Option<&str>) -> Option<Presented> {
    let now = t.clock.unix();
    let as_access = || t.verifier.decode(token, now).ok().map(Presented::Access);
    let as_refresh = || {
        jwt::verify::<RefreshClaims>(t.keys, t.refresh_rules, token, now)
            .ok()
            .map(Presented::Refresh)
    };
    if hint == Some("access_token") {
        as_access().or_else(as_refresh)
    } else {
        as_refresh().or_else(as_access)
    }
}

/// The `token` parameter of a revoke or introspect request.
async fn token_param(
    t: &TokenCtx<'_>,
    req: Request<Inbound>,
) -> Result<(String, Option<String>), TokenError> {
    let (kind, bytes) = read_body(t, req).await?;
    let fields = fields(kind, &bytes)?;
    let token =
        single(&fields, "token")?
            .filter(|t| !t.is_empty())
            .ok_or(OAuthError::InvalidRequest(
                "The token parameter is required",
            ))?;
    let hint = single(&fields, "token_type_hint")?.map(str::to_owned);
    Ok((token.to_owned(), hint))
}

/// `POST /api/oauth2/revoke`.
pub async fn handle_revoke(
    t: &TokenCtx<'_>,
    user: &mut Option<Arc<str>>,
    req: Request<Inbound>,
) -> Result<Response<Body>, TokenError> {
    let (token, hint) = token_param(t, req).await?;
    if token.len() <= auth::MAX_TOKEN_LEN {
        if let Some(presented) = identify(t, &token, hint.as_deref()) {
            let sid = presented.sid().to_owned();
            let mut until = revoke_until(t);
            if let Presented::Access(c) = &presented {
                until = until.max(access_deadline(t.config, c.exp));
            }
            t.sessions.revoke(&sid, until).await?;
            let subject = match &presented {
                Presented::Access(c) => c.sub.clone(),
                Presented::Refresh(c) => c.sub.clone(),
            };
            tracing::info!(target: "audit", event = "revoke", user = %subject, sid = %sid);
            *user = Some(subject.into());
        }
    }
    let mut response = Response::new(body::empty());
    body::no_store(&mut response);
    Ok(response)
}

/// `POST /api/oauth2/introspect`, authenticated with the caller's own access token.
pub async fn handle_introspect(
    t: &TokenCtx<'_>,
    user: &mut Option<Arc<str>>,
    req: Request<Inbound>,
) -> Result<Response<Body>, TokenError> {
    let deny = t.sessions.deny_list();
    // Any valid access token may introspect: no role is required, so authentication's error
    // (a 401) is the only refusal.
    let caller = (t.verifier).authenticate(deny, req.headers(), t.clock.unix())?;
    *user = Some(caller.user.clone());
    let (token, hint) = token_param(t, req).await?;
    let presented = (token.len() <= auth::MAX_TOKEN_LEN)
        .then(|| identify(t, &token, hint.as_deref()))
        .flatten();
    let document = match presented {
        Some(Presented::Access(c)) if !deny.is_denied(&c.sid) => json!({
            "active": true, "sub": c.sub, "aud": c.aud, "exp": c.exp, "iat": c.iat,
            "sid": c.sid, "token_type": "access_token", "roles": c.roles, "iss": c.iss,
        }),
        Some(Presented::Refresh(c)) => {
            let live = t
                .sessions
                .get(&c.sid)
                .await?
                .is_some_and(|s| s.token_id == c.token_id);
            if live {
                let roles = t.users.roles(&c.sub).unwrap_or_default();
                json!({
                    "active": true, "sub": c.sub, "aud": c.aud, "exp": c.exp, "iat": c.iat,
                    "sid": c.sid, "token_type": "refresh_token", "roles": roles, "iss": c.iss,
                })
            } else {
                json!({"active": false})
            }
        }
        _ => json!({"active": false}),
    };
    let mut response = body::json(StatusCode::OK, document.to_string());
    body::no_store(&mut response);
    Ok(response)
}
