//! `[endpoints]`.

use std::collections::HashSet;

use super::Checker;
use crate::config::defaults as d;
use crate::config::raw;
use crate::config::{Endpoint, Endpoints};

pub(super) fn endpoints(c: &mut Checker, mut raw: raw::Endpoints) -> Endpoints {
    let paths = Endpoint::ALL.map(|e| {
        let (default, value) = match e {
            Endpoint::Token => (d::ENDPOINT_TOKEN, raw.token.take()),
            Endpoint::Logout => (d::ENDPOINT_LOGOUT, raw.logout.take()),
            Endpoint::Revoke => (d::ENDPOINT_REVOKE, raw.revoke.take()),
            Endpoint::Introspect => (d::ENDPOINT_INTROSPECT, raw.introspect.take()),
            Endpoint::Jwks => (d::ENDPOINT_JWKS, raw.jwks.take()),
            Endpoint::Metadata => (d::ENDPOINT_METADATA, raw.metadata.take()),
        };
        c.endpoint(default, value)
    });
    let endpoints = Endpoints::new(paths);
    let mut seen = HashSet::new();
    for e in Endpoint::ALL {
        let path = endpoints.path(e);
        if !seen.insert(path) {
            c.issue(
                format!("endpoints.{}", e.name()),
                format!("{path:?} is used by another endpoint"),
            );
        }
    }
    endpoints
}
