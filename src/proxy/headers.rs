//! Header rewriting in both directions (SPEC §3): hop-by-hop removal, `X-Forwarded-*`,
//! identity headers, `X-Request-Id`. Every client header is attacker-controlled.

use http::header::{
    HeaderName, AUTHORIZATION, CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderValue};

use super::Hop;
use crate::auth::Identity;
use crate::config::RouteConfig;

pub static X_AUTH_USER: HeaderName = HeaderName::from_static("x-auth-user");
pub static X_AUTH_ROLES: HeaderName = HeaderName::from_static("x-auth-roles");
pub static X_AUTH_SESSION: HeaderName = HeaderName::from_static("x-auth-session");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_TOKEN_EXPIRES_IN: HeaderName = HeaderName::from_static("x-token-expires-in");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The options of every `Connection` field (RFC 9110 §7.6.1), trimmed, in order; a field
/// that is not visible ASCII names none.
pub(crate) fn connection_options(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    (headers.get_all(CONNECTION).iter())
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// The hop-by-hop headers of RFC 9110 §7.6.1 that `http` has constants for (all but
/// `Keep-Alive` and `Proxy-Connection`).
const STANDARD_HOP_BY_HOP: [HeaderName; 7] = [
    CONNECTION,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes the hop-by-hop headers of RFC 9110 §7.6.1 and every header `Connection` names.
///
/// Messages carry few of them, most often only `Connection` itself: the names a message has
/// are scanned for them, where removing each of the nine in turn would hash and look up
/// every one. Only a header `Connection` names that is there costs an allocation.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = connection_options(headers)
        .filter(|name| headers.contains_key(*name))
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    let hop_by_hop = |name: &&HeaderName| {
        STANDARD_HOP_BY_HOP.contains(name) || *name == KEEP_ALIVE || *name == PROXY_CONNECTION
    };
    // Each turn removes a name found: at most nine turns.
    while let Some(name) = headers.keys().find(hop_by_hop).cloned() {
        headers.remove(name);
    }
}

/// Headers a client never gets to the upstream, whatever the trust: routing overrides that
/// IIS, Symfony and others act on (`X-Original-URL`, `X-Rewrite-URL`).
const NEVER_FORWARDED: [&str; 2] = ["x-original-url", "x-rewrite-url"];
/// The identity headers only the gateway sets.
const IDENTITY: [&str; 3] = ["x-auth-user", "x-auth-roles", "x-auth-session"];

/// Whether the inbound header `name` is removed before forwarding. `name` is lower case
/// already (`HeaderName`); `_` is read as `-` for the checks, as CGI-style stacks (Rack, PHP,
/// WSGI) map both to the same variable.
fn dropped(name: &str, allow_underscores: bool, trusted_peer: bool) -> bool {
    let underscored = name.contains('_');
    if underscored && !allow_underscores {
        return true;
    }
    let normal: std::borrow::Cow<'_, str> = if underscored {
        name.replace('_', "-").into()
    } else {
        name.into()
    };
    let normal = normal.as_ref();
    IDENTITY.contains(&normal)
        || NEVER_FORWARDED.contains(&normal)
        || normal == "http2-settings"
        || (!trusted_peer
            && (normal.starts_with("x-forwarded-")
                || normal == "forwarded"
                || normal == "x-real-ip"))
}

/// Rewrites a client request's headers for the upstream by the inbound header policy of SPEC
/// §3: hop-by-hop and `Connection`-named headers, headers with `_` (unless the route allows
/// them), every spelling of the identity headers and the routing overrides go; forwarding
/// headers are believed only from a trusted proxy; then the gateway sets its own. `Host` is
/// left to the caller, which knows the upstream's protocol.
pub fn rewrite_request(
    hop: &Hop<'_>,
    route: &RouteConfig,
    identity: Option<&Identity>,
    headers: &mut HeaderMap,
) {
    // `TE: trailers` is the one TE value that survives a hop (RFC 9113 §8.2.2): gRPC needs it.
    let te_trailers = headers
        .get(TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    remove_hop_by_hop(headers);
    if te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    let forwarded_for = hop
        .trusted_peer
        .then(|| joined(headers, &X_FORWARDED_FOR))
        .flatten();
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            dropped(
                name.as_str(),
                route.allow_underscore_headers,
                hop.trusted_peer,
            )
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
    if let Some(id) = identity {
        // Rendered once per verified token (`Identity::new`); a value that is not a valid
        // header value is left out.
        let values = &id.headers;
        for (name, value) in [
            (&X_AUTH_USER, &values.user),
            (&X_AUTH_ROLES, &values.roles),
            (&X_AUTH_SESSION, &values.session),
        ] {
            if let Some(value) = value {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
    if !route.forward_authorization {
        headers.remove(AUTHORIZATION);
    }

    match forwarded_for {
        Some(mut chain) => {
            chain.push_str(", ");
            chain.push_str(hop.peer.to_str().unwrap_or_default());
            if let Ok(v) = HeaderValue::from_str(&chain) {
                headers.insert(X_FORWARDED_FOR.clone(), v);
            }
        }
        None => {
            headers.insert(X_FORWARDED_FOR.clone(), hop.peer.clone());
        }
    }
    // From a trusted proxy, its view of the original request is kept (and the other
    // `X-Forwarded-*` were left alone above); from anyone else, ours is set.
    if !(hop.trusted_peer && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(hop.scheme),
        );
    }
    if !(hop.trusted_peer && headers.contains_key(&X_FORWARDED_HOST)) {
        match hop.host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST.clone(), h.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
    headers.insert(X_REQUEST_ID.clone(), hop.request_id.clone());
}

/// Every value of `name`, joined with `, ` (a list header may be split over several fields).
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut out = String::new();
    for value in headers.get_all(name) {
        let value = value.to_str().ok()?.trim();
        if value.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(value);
    }
    (!out.is_empty()).then_some(out)
}

/// Rewrites an upstream response's headers for the client. `X-Request-Id` is not set here:
/// the gateway sets it on every response, proxied or its own (`gateway::handle`).
pub fn rewrite_response(hop: &Hop<'_>, identity: Option<&Identity>, headers: &mut HeaderMap) {
    remove_hop_by_hop(headers);
    if let Some(id) = identity {
        let left = id.exp.saturating_sub(hop.now);
        headers.insert(X_TOKEN_EXPIRES_IN.clone(), HeaderValue::from(left));
    }
}

/// A new request id in UUID form: a random per-process half and a counter, so that ids are
/// unique without a `getrandom` call per request (request ids are identifiers, not secrets).
fn next_request_id() -> uuid::Uuid {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    uuid::Uuid::from_u64_pair(prefix, n)
}

/// The client's `X-Request-Id` when it is sane (1–128 of `[A-Za-z0-9._:-]`), else a new id.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        let sane = !b.is_empty()
            && b.len() <= 128
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'));
        if sane {
            return v.clone();
        }
    }
    let id = next_request_id();
    let mut buf = uuid::Uuid::encode_buffer();
    // A hyphenated UUID is ASCII hex and '-', always a valid header value.
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
        // Each one alone, without a `Connection` naming it, goes too.
        for name in [
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "connection",
        ] {
            let mut h = HeaderMap::new();
            h.insert("x-kept", HeaderValue::from_static("1"));
            h.append(name, HeaderValue::from_static("1"));
            h.append(name, HeaderValue::from_static("2"));
            remove_hop_by_hop(&mut h);
            assert_eq!(h.len(), 1, "{name}");
        }
    }

    #[test]
    fn the_inbound_policy() {
        for name in [
            "x_auth_user",
            "X-Auth_Session",
            "x_custom",
            "x_forwarded_for",
        ] {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert!(dropped(name.as_str(), false, true), "{name}");
        }
        for name in [
            "x_auth_user",
            "x-auth-roles",
            "x_auth-session",
            "x-original-url",
            "x_rewrite_url",
            "http2-settings",
        ] {
            assert!(dropped(name, true, true), "{name}");
        }
        assert!(!dropped("x_custom", true, false));
        for name in [
            "forwarded",
            "x-real-ip",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-forwarded-for",
        ] {
            assert!(dropped(name, false, false), "{name}");
            assert!(!dropped(name, false, true), "{name} from a trusted proxy");
        }
        assert!(!dropped("x-kept", false, false));
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("bad id\"<script>"));
        assert_eq!(request_id(&h).len(), 36);
    }
}
