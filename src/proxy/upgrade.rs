//! Upgraded connections (WebSocket, RFC 6455 over HTTP/1.1): after the upstream answers `101`,
//! the gateway copies bytes both ways until either side closes, or until the session whose
//! access token opened the tunnel is revoked, which closes it at once (SPEC §1.4).
//!
//! Only `websocket` is forwarded as an upgrade. Any other `Upgrade` token (notably `h2c`, which
//! would let a client speak HTTP/2 straight to an upstream that understands it, past the
//! gateway's per-request checks) is dropped with the other hop-by-hop headers and the request
//! goes on as an ordinary one.
//!
//! The tunnel is not spawned here: `forward` hands it to the caller, which runs it as part of
//! the client's connection (its permit, idle timeout and drain).

use std::future::Future;

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// The client's side of a switched (upgraded) connection: its bytes, after the `101`.
pub type Upgraded = Box<dyn UpgradedIo>;

pub trait UpgradedIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl std::fmt::Debug for dyn UpgradedIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upgraded")
    }
}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> UpgradedIo for T {}

/// The `Upgrade` value of an HTTP/1.1 request that asks to switch to WebSocket.
pub(super) fn requested(headers: &HeaderMap, version: Version) -> Option<HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    let connection_upgrade =
        super::headers::connection_options(headers).any(|o| o.eq_ignore_ascii_case("upgrade"));
    let mut upgrades = headers.get_all(UPGRADE).iter();
    let protocol = upgrades.next()?;
    let websocket = protocol.as_bytes().eq_ignore_ascii_case(b"websocket");
    (connection_upgrade && websocket && upgrades.next().is_none()).then(|| protocol.clone())
}

/// Puts the switch-protocols headers (hop-by-hop, so removed by the rewrite) back.
pub(super) fn restore(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

/// The upstream's half of a switched connection, to be joined with the client's once the
/// `101` has been sent.
#[derive(Debug)]
pub struct Tunnel {
    pub(super) upstream: OnUpgrade,
}

impl Tunnel {
    /// Copies bytes both ways between `client` (the client's side, once the connection hands it
    /// over) and the upstream until either side closes or `revoked` completes.
    pub async fn run(
        self,
        client: impl Future<Output = Option<Upgraded>>,
        revoked: impl Future<Output = ()>,
    ) {
        let (mut client, upstream) = match tokio::join!(client, self.upstream) {
            (Some(c), Ok(u)) => (c, u),
            (None, _) => {
                tracing::debug!("upgrade failed: the client's connection ended");
                return;
            }
            (_, Err(e)) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                match copied {
                    Ok((up, down)) => tracing::debug!(bytes_up = up, bytes_down = down, "upgraded connection closed"),
                    Err(e) => tracing::debug!(error = %e, "upgraded connection failed"),
                }
            }
            () = revoked => {
                tracing::info!("session revoked; closing upgraded connection");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_websocket_is_an_upgrade() {
        let ws = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ]);
        assert!(requested(&ws, Version::HTTP_11).is_some());
        assert!(requested(&ws, Version::HTTP_2).is_none());
        let h2c = headers(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ]);
        assert!(requested(&h2c, Version::HTTP_11).is_none());
        let no_connection = headers(&[("upgrade", "websocket")]);
        assert!(requested(&no_connection, Version::HTTP_11).is_none());
        let two = headers(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("upgrade", "h2c"),
        ]);
        assert!(requested(&two, Version::HTTP_11).is_none());
    }
}
