//! `[server]` and `[admin]`.

use std::str::FromStr;

use super::Checker;
use crate::config::defaults as d;
use crate::config::raw;
use crate::config::{AdminConfig, ServerConfig, TlsFiles};

pub(super) fn server(c: &mut Checker, raw: raw::Server) -> ServerConfig {
    let tls = if raw.tls.unwrap_or(d::SERVER_TLS.default) {
        let cert = raw
            .tls_cert
            .unwrap_or_else(|| d::SERVER_TLS_CERT.default.to_owned());
        let key = raw
            .tls_key
            .unwrap_or_else(|| d::SERVER_TLS_KEY.default.to_owned());
        Some(TlsFiles {
            cert: c.path(&cert),
            key: c.path(&key),
        })
    } else {
        c.notice(
            "server.tls",
            "false: serving plain HTTP; only do this behind a TLS-terminating load balancer",
        );
        None
    };
    let public_url = raw
        .public_url
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('/').to_owned());
    if let Some(url) = &public_url {
        let ok = http::Uri::from_str(url)
            .map(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some())
            .unwrap_or(false);
        if !ok {
            c.issue(
                "server.public_url",
                format!("{url:?}: expected an absolute http(s) URL"),
            );
        }
    }
    let idle_timeout = c.span(d::SERVER_IDLE_TIMEOUT, raw.idle_timeout.as_deref());
    let max_header_bytes =
        c.positive(d::SERVER_MAX_HEADER_BYTES, raw.max_header_bytes, 1 << 20) as usize;
    if max_header_bytes < MIN_HEADER_BYTES {
        c.issue(
            "server.max_header_bytes",
            format!("{max_header_bytes}: must be at least {MIN_HEADER_BYTES}"),
        );
    }
    let trusted_proxies = trusted_proxies(c, raw.trusted_proxies.as_deref().unwrap_or_default());
    ServerConfig {
        listen: c.addr(d::SERVER_LISTEN, raw.listen.as_deref()),
        tls,
        http2: raw.http2.unwrap_or(d::SERVER_HTTP2.default),
        public_url,
        max_header_bytes,
        header_read_timeout: c.span(
            d::SERVER_HEADER_READ_TIMEOUT,
            raw.header_read_timeout.as_deref(),
        ),
        idle_timeout,
        max_connections: c.positive(d::SERVER_MAX_CONNECTIONS, raw.max_connections, 1 << 20)
            as usize,
        workers: workers(c, raw.workers),
        shutdown_grace: c.span(d::SERVER_SHUTDOWN_GRACE, raw.shutdown_grace.as_deref()),
        drain_delay: c.span(d::SERVER_DRAIN_DELAY, raw.drain_delay.as_deref()),
        trusted_proxies,
    }
}

pub(super) fn admin(c: &mut Checker, raw: raw::Admin) -> AdminConfig {
    AdminConfig {
        listen: c.addr(d::ADMIN_LISTEN, raw.listen.as_deref()),
        allowed_hosts: allowed_hosts(c, raw.allowed_hosts.unwrap_or_default()),
    }
}

/// `server.workers`: `1..=MAX_WORKERS`, or `0` for one per core.
fn workers(c: &mut Checker, value: Option<i64>) -> usize {
    let n = value.unwrap_or(d::SERVER_WORKERS.default);
    match usize::try_from(n) {
        Ok(0) => std::thread::available_parallelism().map_or(1, usize::from),
        Ok(n) if n <= MAX_WORKERS => n,
        _ => {
            c.issue(
                d::SERVER_WORKERS.key,
                format!("{n}: must be between 0 (one per core) and {MAX_WORKERS}"),
            );
            1
        }
    }
}

/// The most `server.workers` the gateway starts.
const MAX_WORKERS: usize = 256;

/// The smallest `server.max_header_bytes` the gateway enforces.
const MIN_HEADER_BYTES: usize = 1024;

/// `"10.0.0.0/8"` or a bare address (`"192.0.2.7"`, a /32 or /128).
fn trusted_proxies(c: &mut Checker, raw: &[String]) -> Vec<ipnet::IpNet> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let parsed = ipnet::IpNet::from_str(text)
            .or_else(|_| std::net::IpAddr::from_str(text).map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => out.push(net.trunc()),
            Err(_) => c.issue(
                format!("server.trusted_proxies[{i}]"),
                format!("{text:?}: expected an address or a CIDR block, e.g. \"10.0.0.0/8\""),
            ),
        }
    }
    out
}

/// Host names, lower-cased; an entry with a port, a scheme or a path is refused.
fn allowed_hosts(c: &mut Checker, raw: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, text) in raw.into_iter().enumerate() {
        let name = text.to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if ok {
            out.push(name);
        } else {
            c.issue(
                format!("admin.allowed_hosts[{i}]"),
                format!("{text:?}: expected a host name without port, e.g. \"gateway.internal\""),
            );
        }
    }
    out
}
