//! `[endpoints]`.

use std::collections::HashSet;

use super::Checker;
use crate::config::raw;
use crate::config::Endpoints;

pub(super) fn endpoints(c: &mut Checker, raw: raw::Endpoints) -> Endpoints {
    let e = Endpoints {
        token: c.endpoint("endpoints.token", raw.token, "/api/oauth2/token"),
        logout: c.endpoint("endpoints.logout", raw.logout, "/api/oauth2/logout"),
        revoke: c.endpoint("endpoints.revoke", raw.revoke, "/api/oauth2/revoke"),
        introspect: c.endpoint(
            "endpoints.introspect",
            raw.introspect,
            "/api/oauth2/introspect",
        ),
        jwks: c.endpoint("endpoints.jwks", raw.jwks, "/.well-known/jwks.json"),
        metadata: c.endpoint(
            "endpoints.metadata",
            raw.metadata,
            "/.well-known/oauth-authorization-server",
        ),
    };
    let all = [
        ("token", &e.token),
        ("logout", &e.logout),
        ("revoke", &e.revoke),
        ("introspect", &e.introspect),
        ("jwks", &e.jwks),
        ("metadata", &e.metadata),
    ];
    let mut seen = HashSet::new();
    for (name, path) in all {
        if !seen.insert(path.as_str()) {
            c.issue(
                format!("endpoints.{name}"),
                format!("{path:?} is used by another endpoint"),
            );
        }
    }
    e
}
