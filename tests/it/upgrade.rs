//! SPEC §1.4 and §3: WebSocket upgrades pass through, and revocation closes them.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::wire::{read_head, read_response};
use crate::support::{gateway, material, Options, TestGateway, ALICE};

/// A raw HTTP/1.1-over-TLS connection to the gateway; also returns the negotiated ALPN.
pub(crate) async fn tls_connect(
    gw: &TestGateway,
) -> (Option<Vec<u8>>, tokio_rustls::client::TlsStream<TcpStream>) {
    let mut config = crate::support::client_tls_config(&material().cert_pem);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    (tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec), tls)
}

/// A TLS connection to the gateway that has sent an upgrade request and read the response head.
async fn open_upgrade(
    gw: &TestGateway,
    bearer: &str,
) -> (String, tokio_rustls::client::TlsStream<TcpStream>) {
    let (_, mut tls) = tls_connect(gw).await;
    tls.write_all(upgrade_request(bearer).as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut tls).await.unwrap();
    (String::from_utf8_lossy(&head).into_owned(), tls)
}

/// A WebSocket upgrade request to `/ws` with `bearer`.
fn upgrade_request(bearer: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {bearer}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

#[tokio::test]
async fn websocket_frames_flow_until_the_session_is_revoked() {
    let (upstream, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let (head, mut tunnel) = open_upgrade(&gw, &tokens.access).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    assert_eq!(upstream.last().headers["x-auth-user"], ALICE.0);

    for message in [&b"hello"[..], &b"world, twice"[..]] {
        tunnel.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tunnel.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, message);
    }

    assert_eq!(gw.logout(&tokens.access).await.status, 200);
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(1), tunnel.read(&mut buf)).await;
    match read {
        Ok(Ok(0) | Err(_)) => {}
        other => panic!("the tunnel should close within a second of logout: {other:?}"),
    }
}

#[tokio::test]
async fn an_upgrade_without_a_valid_token_is_refused() {
    let (upstream, gw) = gateway(Options::default()).await;
    let (head, _) = open_upgrade(&gw, "not-a-token").await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert_eq!(upstream.count(), 0);
}

/// A connection that served a request, went idle long enough to be parked, and then asks to
/// switch is switched by a new hyper connection, and the bytes the client wrote right behind
/// the upgrade request (read by hyper with the head) reach the upstream first.
#[tokio::test]
async fn a_parked_connection_still_upgrades_and_keeps_early_bytes() {
    let (_upstream, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let (_, mut tls) = tls_connect(&gw).await;
    let plain = format!(
        "GET /api/items HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        tokens.access
    );
    tls.write_all(plain.as_bytes()).await.unwrap();
    let first = read_response(&mut tls).await.unwrap();
    assert_eq!(first.status, 200, "{}", first.head);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let upgrade = upgrade_request(&tokens.access) + "early bytes";
    tls.write_all(upgrade.as_bytes()).await.unwrap();
    let head = read_head(&mut tls).await.unwrap();
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut echoed = vec![0u8; b"early bytes".len()];
    tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut echoed))
        .await
        .expect("the early bytes were not echoed")
        .unwrap();
    assert_eq!(echoed, b"early bytes");
    tls.write_all(b"later").await.unwrap();
    let mut later = [0u8; 5];
    tls.read_exact(&mut later).await.unwrap();
    assert_eq!(&later, b"later");
}
