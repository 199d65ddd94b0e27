//! `Router`: picks the route for a request by host (port ignored) and longest path prefix.
//!
//! Prefixes match whole segments: `/api` matches `/api` and `/api/x` but not `/apix`. Routes with
//! a host are preferred to routes without one at the same prefix length.

mod normalize;

pub use normalize::check as check_path;

use crate::config::RouteConfig;
use crate::proxy::{ClientError, Upstream};

/// The routes of one snapshot, ready to match.
#[derive(Debug)]
pub struct Router {
    /// Sorted so that the first match is the best one: longest prefix, host-specific first.
    routes: Vec<Route>,
}

/// A route and its upstream client.
#[derive(Debug)]
pub struct Route {
    pub config: RouteConfig,
    pub upstream: Upstream,
}

impl Router {
    /// Builds every route's upstream client; the error names the route's index.
    pub fn new(routes: &[RouteConfig]) -> Result<Self, (usize, ClientError)> {
        let mut routes = routes
            .iter()
            .enumerate()
            .map(|(i, config)| {
                Ok(Route {
                    upstream: Upstream::new(config).map_err(|e| (i, e))?,
                    config: config.clone(),
                })
            })
            .collect::<Result<Vec<Route>, _>>()?;
        routes.sort_by(|a, b| {
            let (a, b) = (&a.config, &b.config);
            b.path_prefix
                .len()
                .cmp(&a.path_prefix.len())
                .then_with(|| b.host.is_some().cmp(&a.host.is_some()))
        });
        Ok(Self { routes })
    }

    /// The route for `host` (as sent, possibly with a port) and `path` (already checked).
    pub fn find(&self, host: Option<&str>, path: &str) -> Result<&Route, RouteError> {
        let host = host.map(strip_port);
        self.routes
            .iter()
            .find(|route| {
                let r = &route.config;
                let host_ok = match (&r.host, host) {
                    (None, _) => true,
                    (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                    (Some(_), None) => false,
                };
                host_ok && prefix_matches(&r.path_prefix, path)
            })
            .ok_or(RouteError::NotFound)
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// `example.com:8443` → `example.com`; `[::1]:8443` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// Why no route serves a request.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
pub enum RouteError {
    #[error("no route matches")]
    NotFound,
    #[error("unsafe path")]
    BadPath,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn router() -> Router {
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
        Router::new(&cfg.routes).unwrap()
    }

    fn name(r: &Router, host: Option<&str>, path: &str) -> String {
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
    fn host_match_ignores_port_and_case() {
        let r = router();
        assert_eq!(name(&r, Some("api.example.com:8443"), "/api/x"), "api-host");
        assert_eq!(name(&r, Some("Api.Example.com"), "/api"), "api-host");
        assert_eq!(name(&r, Some("other.example.com"), "/api"), "api");
        assert_eq!(strip_port("[::1]:8443"), "[::1]");
    }
}
