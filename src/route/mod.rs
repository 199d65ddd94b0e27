//! `Router`: picks the route for a request by host and longest path prefix, both in the
//! canonical form of `crate::canonical`.
//!
//! Prefixes match whole segments: `/api` matches `/api` and `/api/x` but not `/apix`. Routes with
//! a host are preferred to routes without one at the same prefix length.

use std::sync::Arc;

use crate::config::RouteConfig;
use crate::metrics::{Metrics, RouteMetrics};

/// The routes of one snapshot, ready to match; `T` is what a route forwards to (the
/// snapshot's upstream clients), which this module knows nothing about.
#[derive(Debug)]
pub struct Router<T> {
    /// Sorted so that the first match is the best one: longest prefix, host-specific first.
    routes: Vec<Route<T>>,
}

/// A route and what it forwards to.
#[derive(Debug)]
pub struct Route<T> {
    pub config: RouteConfig,
    pub upstream: T,
    /// The route's handles in the per-request metric families, with its name: the metrics'
    /// and the access log's label, cloned per request without an allocation. Detached (they
    /// count into nothing) until [`Router::count_into`].
    pub metrics: Arc<RouteMetrics>,
}

impl<T> Route<T> {
    /// The route's name, as the metrics and the access log show it.
    pub fn label(&self) -> &Arc<str> {
        self.metrics.label()
    }
}

impl<T> Router<T> {
    pub fn new(routes: impl IntoIterator<Item = (RouteConfig, T)>) -> Self {
        let mut routes: Vec<Route<T>> = routes
            .into_iter()
            .map(|(config, upstream)| Route {
                metrics: Arc::new(RouteMetrics::detached(config.name.as_str().into())),
                config,
                upstream,
            })
            .collect();
        routes.sort_by(|a, b| {
            let (a, b) = (&a.config, &b.config);
            b.path_prefix
                .len()
                .cmp(&a.path_prefix.len())
                .then_with(|| b.host.is_some().cmp(&a.host.is_some()))
        });
        Self { routes }
    }

    /// Makes every route count its requests into `metrics`: done when the snapshot is put in
    /// service, so that no request resolves its route's metric handles.
    pub fn count_into(&mut self, metrics: &Metrics) {
        for route in &mut self.routes {
            route.metrics = Arc::new(metrics.route(route.label().clone()));
        }
    }

    /// Every route, best match first.
    pub fn routes(&self) -> &[Route<T>] {
        &self.routes
    }

    /// The route for `host` (a canonical host name, without port) and `path` (canonical).
    pub fn find(&self, host: Option<&str>, path: &str) -> Result<&Route<T>, RouteError> {
        self.routes
            .iter()
            .find(|route| {
                let r = &route.config;
                let host_ok = match (&r.host, host) {
                    (None, _) => true,
                    (Some(want), Some(got)) => want == got,
                    (Some(_), None) => false,
                };
                host_ok && prefix_matches(&r.path_prefix, path, r.case_insensitive)
            })
            .ok_or(RouteError::NotFound)
    }
}

/// Whether `prefix` matches `path` on whole segments (ignoring ASCII case if asked).
pub(crate) fn prefix_matches(prefix: &str, path: &str, case_insensitive: bool) -> bool {
    let Some(head) = path.as_bytes().get(..prefix.len()) else {
        return false;
    };
    let same = if case_insensitive {
        head.eq_ignore_ascii_case(prefix.as_bytes())
    } else {
        head == prefix.as_bytes()
    };
    let rest = &path.as_bytes()[prefix.len()..];
    same && (prefix.ends_with('/') || rest.is_empty() || rest[0] == b'/')
}

/// Why no route serves a request.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
pub enum RouteError {
    #[error("no route matches")]
    NotFound,
    #[error("unsafe path")]
    BadPath,
    /// No `Host`, two of them, `host` ≠ `:authority`, or a malformed one.
    #[error("missing, repeated or malformed host")]
    BadHost,
}

impl From<crate::canonical::Refused> for RouteError {
    fn from(refused: crate::canonical::Refused) -> Self {
        match refused {
            crate::canonical::Refused::Path => Self::BadPath,
            crate::canonical::Refused::Host => Self::BadHost,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn router() -> Router<()> {
        let cfg = Config::parse(
            r#"
            [[routes]]
            name = "root"
            upstreams = ["http://127.0.0.1:1"]
            [[routes]]
            name = "api"
            path_prefix = "/api"
            upstreams = ["http://127.0.0.1:1"]
            [[routes]]
            name = "api-host"
            host = "API.example.com"
            path_prefix = "/api"
            upstreams = ["http://127.0.0.1:1"]
            [[routes]]
            name = "v2"
            path_prefix = "/api/v2/"
            upstreams = ["http://127.0.0.1:1"]
            "#,
            Path::new("/x/portcullis.toml"),
        )
        .unwrap();
        Router::new(cfg.routes.into_iter().map(|c| (c, ())))
    }

    fn name(r: &Router<()>, host: Option<&str>, path: &str) -> String {
        r.find(host, path).unwrap().config.name.clone()
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let r = router();
        assert_eq!(name(&r, None, "/"), "root");
        assert_eq!(name(&r, None, "/api"), "api");
        assert_eq!(name(&r, None, "/api/users"), "api");
        assert_eq!(name(&r, None, "/apix"), "root");
        assert_eq!(name(&r, None, "/api/v2/x"), "v2");
        assert_eq!(name(&r, None, "/api/v2"), "api");
    }

    #[test]
    fn host_match_on_the_canonical_name() {
        let r = router();
        assert_eq!(name(&r, Some("api.example.com"), "/api/x"), "api-host");
        assert_eq!(name(&r, Some("other.example.com"), "/api"), "api");
        assert_eq!(name(&r, None, "/api"), "api");
    }

    #[test]
    fn case_insensitive_prefixes() {
        assert!(prefix_matches("/admin", "/ADMIN/x", true));
        assert!(!prefix_matches("/admin", "/ADMIN/x", false));
        assert!(!prefix_matches("/admin", "/ADMINx", true));
        assert!(!prefix_matches("/admin", "/adm", true));
        assert!(prefix_matches("/api/", "/api/x", false));
    }
}
