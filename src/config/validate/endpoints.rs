//! `[endpoints]`.

use std::collections::HashSet;

use super::Checker;
use crate::config::defaults as d;
use crate::config::raw;
use crate::config::Endpoints;

pub(super) fn endpoints(c: &mut Checker, raw: raw::Endpoints) -> Endpoints {
    let e = Endpoints {
        token: c.endpoint(d::ENDPOINT_TOKEN, raw.token),
        logout: c.endpoint(d::ENDPOINT_LOGOUT, raw.logout),
        revoke: c.endpoint(d::ENDPOINT_REVOKE, raw.revoke),
        introspect: c.endpoint(d::ENDPOINT_INTROSPECT, raw.introspect),
        jwks: c.endpoint(d::ENDPOINT_JWKS, raw.jwks),
        metadata: c.endpoint(d::ENDPOINT_METADATA, raw.metadata),
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
