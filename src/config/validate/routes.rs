//! `[[routes]]`.

use std::collections::HashSet;
use std::str::FromStr;

use super::Checker;
use crate::config::defaults as d;
use crate::config::raw;
use crate::config::{AuthMode, Endpoint, Endpoints, RouteConfig, UpstreamProtocol};

pub(super) fn routes(
    c: &mut Checker,
    raw: Vec<raw::Route>,
    endpoints: &Endpoints,
) -> Vec<RouteConfig> {
    let mut out: Vec<RouteConfig> = Vec::with_capacity(raw.len());
    let mut names = HashSet::new();
    let mut matches = HashSet::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = format!("routes[{i}]");
        let name = r.name.unwrap_or_else(|| format!("route{i}"));
        if !names.insert(name.clone()) {
            c.issue(
                format!("{key}.name"),
                format!("{name:?} is used by another route"),
            );
        }
        // Both are matched against the request's canonical host and path, so both must be
        // canonical themselves.
        let host =
            r.host
                .filter(|h| !h.is_empty())
                .map(|h| match crate::canonical::canonical_host(&h) {
                    Ok(canonical) if canonical.port().is_none() => canonical.name().to_owned(),
                    _ => {
                        c.issue(
                            format!("{key}.host"),
                            format!("{h:?}: a host name without port"),
                        );
                        h
                    }
                });
        let path_prefix = r
            .path_prefix
            .unwrap_or_else(|| d::ROUTE_PATH_PREFIX.default.to_owned());
        let canonical =
            crate::canonical::canonical_path(&path_prefix).is_ok_and(|p| p == path_prefix.as_str());
        if !canonical || path_prefix.contains(['?', '#', '%']) {
            c.issue(
                format!("{key}.path_prefix"),
                format!(
                    "{path_prefix:?}: must start with '/' and be a canonical path: no '?', '#', \
                     '%', ';', '\\', dot or empty segments"
                ),
            );
        }
        if !matches.insert((host.clone(), path_prefix.clone())) {
            c.issue(
                format!("{key}.path_prefix"),
                format!("another route already matches {path_prefix:?} on the same host"),
            );
        }
        let upstreams = upstreams(c, &key, r.upstreams.as_deref().unwrap_or_default());
        let auth = match r.auth.as_deref().unwrap_or(d::ROUTE_AUTH.default) {
            "required" => AuthMode::Required,
            "public" => AuthMode::Public,
            other => {
                c.issue(
                    format!("{key}.auth"),
                    format!("{other:?}: expected \"required\" or \"public\""),
                );
                AuthMode::Required
            }
        };
        let roles = r.roles.unwrap_or_default();
        if auth == AuthMode::Public && !roles.is_empty() {
            c.issue(
                format!("{key}.roles"),
                "a public route cannot require roles",
            );
        }
        let upstream_protocol = match r
            .upstream_protocol
            .as_deref()
            .unwrap_or(d::ROUTE_UPSTREAM_PROTOCOL.default)
        {
            "http1" => UpstreamProtocol::Http1,
            "http2" => UpstreamProtocol::Http2,
            other => {
                c.issue(
                    format!("{key}.upstream_protocol"),
                    format!("{other:?}: expected \"http1\" or \"http2\""),
                );
                UpstreamProtocol::Http1
            }
        };
        let upstream_ca = c.optional_path(r.upstream_ca);
        let websocket = r.websocket.unwrap_or(d::ROUTE_WEBSOCKET.default);
        let case_insensitive = r
            .case_insensitive
            .unwrap_or(d::ROUTE_CASE_INSENSITIVE.default);
        let allow_underscore_headers = r
            .allow_underscore_headers
            .unwrap_or(d::ROUTE_ALLOW_UNDERSCORE_HEADERS.default);
        if path_prefix_shadows_endpoint(&path_prefix, endpoints) {
            c.notice(
                format!("{key}.path_prefix"),
                "the gateway's own endpoints take precedence over this route for their paths",
            );
        }
        out.push(RouteConfig {
            name,
            host,
            path_prefix,
            upstreams,
            auth,
            roles,
            strip_prefix: r.strip_prefix.unwrap_or(d::ROUTE_STRIP_PREFIX.default),
            preserve_host: r.preserve_host.unwrap_or(d::ROUTE_PRESERVE_HOST.default),
            forward_authorization: r
                .forward_authorization
                .unwrap_or(d::ROUTE_FORWARD_AUTHORIZATION.default),
            upstream_protocol,
            upstream_ca,
            connect_timeout: c.span_at(
                &format!("{key}.connect_timeout"),
                r.connect_timeout.as_deref(),
                d::ROUTE_CONNECT_TIMEOUT.default,
            ),
            timeout: c.span_at(
                &format!("{key}.timeout"),
                r.timeout.as_deref(),
                d::ROUTE_TIMEOUT.default,
            ),
            websocket,
            case_insensitive,
            allow_underscore_headers,
        });
    }
    out
}

pub(super) fn upstreams(c: &mut Checker, key: &str, raw: &[String]) -> Vec<http::Uri> {
    if raw.is_empty() {
        c.issue(
            format!("{key}.upstreams"),
            "at least one upstream URL is required",
        );
    }
    let mut out = Vec::with_capacity(raw.len());
    for (j, text) in raw.iter().enumerate() {
        let ukey = format!("{key}.upstreams[{j}]");
        match http::Uri::from_str(text) {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.authority().is_some() =>
            {
                if uri.query().is_some() {
                    c.issue(ukey, format!("{text:?}: must not have a query"));
                } else {
                    out.push(uri);
                }
            }
            _ => c.issue(
                ukey,
                format!("{text:?}: expected an http:// or https:// URL with a host"),
            ),
        }
    }
    out
}

pub(super) fn path_prefix_shadows_endpoint(prefix: &str, endpoints: &Endpoints) -> bool {
    prefix != "/"
        && Endpoint::ALL
            .into_iter()
            .any(|e| endpoints.path(e).starts_with(prefix))
}
