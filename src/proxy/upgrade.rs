//! Upgraded connections (WebSocket, RFC 6455 over HTTP/1.1): after the upstream answers `101`,
//! the gateway copies bytes both ways until either side closes, or until the session whose
//! access token opened the tunnel is revoked, which closes it at once (SPEC §1.4).

use std::sync::Arc;

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::state::Shared;

/// The `Upgrade` value of an HTTP/1.1 request that asks to switch protocols.
pub(super) fn requested(headers: &HeaderMap, version: Version) -> Option<HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    let connection_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        .then(|| headers.get(UPGRADE).cloned())
        .flatten()
}

/// Puts the switch-protocols headers (hop-by-hop, so removed by the rewrite) back.
pub(super) fn restore(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

/// Joins the client's and the upstream's upgraded connections.
pub(super) async fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    shared: Arc<Shared>,
    sid: Option<String>,
) {
    let (client, upstream) = match tokio::join!(client, upstream) {
        (Ok(c), Ok(u)) => (c, u),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
    let revoked = async {
        match &sid {
            Some(sid) => shared.sessions.deny_list().revoked(sid).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            match copied {
                Ok((up, down)) => tracing::debug!(bytes_up = up, bytes_down = down, "upgraded connection closed"),
                Err(e) => tracing::debug!(error = %e, "upgraded connection failed"),
            }
        }
        () = revoked => {
            tracing::info!(sid = sid.as_deref().unwrap_or("-"), "session revoked; closing upgraded connection");
        }
    }
}
