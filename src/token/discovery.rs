//! Discovery documents: the JWKS (RFC 7517) and the authorization-server metadata (RFC 8414).
//!
//! The JWKS depends only on the snapshot's keys and is rendered once per snapshot. The metadata
//! holds absolute URLs, built from `server.public_url` when set, else from the request's scheme
//! and `Host` (which is attacker-controlled: it is only echoed into URLs, after a syntax check).

use bytes::Bytes;
use http::header::CACHE_CONTROL;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::{TokenCtx, TokenError};
use crate::body::{self, Body};
use crate::config::Endpoint;
use crate::jwt::{KeyParams, KeySet};

/// The JWKS document of `keys`.
pub fn jwks(keys: &KeySet) -> Bytes {
    let alg = format!("{:?}", keys.algorithm);
    let entries: Vec<Value> = keys
        .public_keys()
        .iter()
        .map(|k| {
            let mut entry = match &k.params {
                KeyParams::Rsa { n, e } => json!({"kty": "RSA", "n": n, "e": e}),
                KeyParams::Ec { crv, x, y } => json!({"kty": "EC", "crv": crv, "x": x, "y": y}),
                KeyParams::Okp { crv, x } => json!({"kty": "OKP", "crv": crv, "x": x}),
            };
            entry["kid"] = json!(k.kid);
            entry["alg"] = json!(alg);
            entry["use"] = json!("sig");
            entry
        })
        .collect();
    Bytes::from(json!({ "keys": entries }).to_string())
}

/// `GET` the JWKS.
pub fn handle_jwks<B>(t: &TokenCtx<'_>, req: &Request<B>) -> Result<Response<Body>, TokenError> {
    require_get(req)?;
    let mut response = body::json(StatusCode::OK, t.jwks.clone());
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}

/// `GET` the RFC 8414 metadata.
pub fn handle_metadata<B>(
    t: &TokenCtx<'_>,
    req: &Request<B>,
) -> Result<Response<Body>, TokenError> {
    require_get(req)?;
    let config = &t.config;
    let base = match &config.server.public_url {
        Some(url) => url.clone(),
        None => format!("{}://{}", t.scheme, request_authority(t)),
    };
    let e = &config.endpoints;
    let document = json!({
        "issuer": config.tokens.issuer,
        "token_endpoint": format!("{base}{}", e.path(Endpoint::Token)),
        "revocation_endpoint": format!("{base}{}", e.path(Endpoint::Revoke)),
        "introspection_endpoint": format!("{base}{}", e.path(Endpoint::Introspect)),
        "jwks_uri": format!("{base}{}", e.path(Endpoint::Jwks)),
        "grant_types_supported": ["password", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["bearer"],
        "response_types_supported": [],
    });
    Ok(body::json(StatusCode::OK, document.to_string()))
}

/// The request's canonical host (`front.rs` refused a malformed one), or `localhost` for an
/// HTTP/1.0 request without one.
fn request_authority(t: &TokenCtx<'_>) -> String {
    t.host
        .as_ref()
        .map_or_else(|| "localhost".to_owned(), |h| h.authority().to_owned())
}

fn require_get<B>(req: &Request<B>) -> Result<(), TokenError> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        Ok(())
    } else {
        Err(TokenError::MethodNotAllowed("GET, HEAD"))
    }
}
