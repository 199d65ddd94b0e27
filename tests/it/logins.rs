//! SPEC §5 and issue 11 §6: logins that cannot be out-guessed or starved.
//!
//! A failure slot is reserved before a password is checked, so concurrent guesses cannot
//! overshoot `login.max_failures`; one connection and one client address can each have only a
//! few logins in flight, so they cannot fill the hashing queue. Every client here is a real
//! HTTP/2 connection over TLS from a loopback address of its own (127.0.0.x), so that the
//! per-address limits can be told apart from the per-user ones.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;

use crate::support::{client_tls_config, gateway, material, Options, ALICE, BOB};

/// One HTTP/2 connection to the gateway, from a chosen loopback address.
#[derive(Clone)]
struct H2 {
    sender: SendRequest<Full<Bytes>>,
    port: u16,
}

/// A token endpoint answer: status, `Retry-After`, the JSON body's `error`.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    error: Option<String>,
}

impl H2 {
    async fn connect(gateway: SocketAddr, from: Ipv4Addr) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        let tcp = socket.connect(gateway).await.unwrap();
        let mut tls = client_tls_config(&material().cert_pem);
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .unwrap();
        let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self {
            sender,
            port: gateway.port(),
        }
    }

    async fn login(mut self, (user, password): (&str, &str)) -> Answer {
        let form = format!("grant_type=password&username={user}&password={password}");
        let req = Request::post(format!("https://localhost:{}/api/oauth2/token", self.port))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .unwrap();
        let call = async {
            self.sender.ready().await.unwrap();
            let response = self.sender.send_request(req).await.unwrap();
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let json: Value = serde_json::from_slice(&body).unwrap();
            Answer {
                status,
                retry_after,
                error: json["error"].as_str().map(str::to_owned),
            }
        };
        tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .expect("the gateway answers within 30 s")
    }
}

/// Sends every `(connection, credentials)` login at once; the answers, in order.
async fn all_at_once(logins: Vec<(H2, (String, String))>) -> Vec<Answer> {
    let tasks: Vec<_> = logins
        .into_iter()
        .map(|(conn, (user, password))| {
            tokio::spawn(async move { conn.login((&user, &password)).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

fn count(answers: &[Answer], status: u16) -> usize {
    answers.iter().filter(|a| a.status == status).count()
}

/// Every `429` carries `Retry-After`; `error` says whether it was the lockout or the
/// concurrency limit.
fn assert_retry_after(answers: &[Answer]) {
    for a in answers.iter().filter(|a| a.status == 429) {
        let secs: u64 = a.retry_after.as_deref().unwrap().parse().unwrap();
        assert!(secs >= 1, "{a:?}");
    }
}

fn loopback(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

#[tokio::test]
async fn concurrent_guesses_for_one_user_never_exceed_max_failures() {
    let (_upstream, gw) = gateway(Options {
        login: "max_failures = 3",
        ..Options::default()
    })
    .await;
    // 24 guesses at once for alice, 4 from each of 6 addresses (so neither the per-connection
    // nor the per-address limits are what stops them: the user's failure slots are).
    let mut logins = Vec::new();
    for n in 2..8 {
        let conn = H2::connect(gw.addr, loopback(n)).await;
        for i in 0..4 {
            let guess = (ALICE.0.to_owned(), format!("guess-{n}-{i}"));
            logins.push((conn.clone(), guess));
        }
    }
    let answers = all_at_once(logins).await;
    let checked = count(&answers, 400);
    assert!(
        (1..=3).contains(&checked),
        "at most max_failures guesses are checked: {answers:?}"
    );
    assert_eq!(count(&answers, 429), 24 - checked, "{answers:?}");
    assert_retry_after(&answers);
    assert!(answers
        .iter()
        .filter(|a| a.status == 400)
        .all(|a| a.error.as_deref() == Some("invalid_grant")));
    // The user is locked now, from anywhere, even with the right password.
    let late = H2::connect(gw.addr, loopback(9)).await.login(ALICE).await;
    assert_eq!(late.status, 429, "{late:?}");
    assert_eq!(late.error.as_deref(), Some("invalid_grant"));
}

#[tokio::test]
async fn concurrent_guesses_from_one_address_never_exceed_max_failures() {
    let (_upstream, gw) = gateway(Options {
        login: "max_failures = 3",
        ..Options::default()
    })
    .await;
    // 16 guesses at once from one address, each for a different user name, over 4 connections
    // (within the per-connection and per-address limits on logins in flight).
    let mut logins = Vec::new();
    for c in 0..4 {
        let conn = H2::connect(gw.addr, loopback(3)).await;
        for i in 0..4 {
            logins.push((conn.clone(), (format!("user-{c}-{i}"), "guess".to_owned())));
        }
    }
    let answers = all_at_once(logins).await;
    let checked = count(&answers, 400);
    assert!((1..=3).contains(&checked), "{answers:?}");
    assert_eq!(count(&answers, 429), 16 - checked, "{answers:?}");
    assert_retry_after(&answers);
    // Another address is not affected.
    let other = H2::connect(gw.addr, loopback(4)).await.login(BOB).await;
    assert_eq!(other.status, 200, "{other:?}");
}

#[tokio::test]
async fn logins_beyond_the_free_slots_wait_for_one_and_succeed() {
    let (_upstream, gw) = gateway(Options {
        login: "max_failures = 2",
        ..Options::default()
    })
    .await;
    // 6 correct logins at once for alice from one address: 2 slots, the others wait for them.
    let mut logins = Vec::new();
    for _ in 0..2 {
        let conn = H2::connect(gw.addr, loopback(5)).await;
        for _ in 0..3 {
            logins.push((conn.clone(), (ALICE.0.to_owned(), ALICE.1.to_owned())));
        }
    }
    let answers = all_at_once(logins).await;
    assert_eq!(count(&answers, 200), 6, "{answers:?}");
}

#[tokio::test]
async fn one_connection_cannot_starve_the_logins_of_others() {
    let (_upstream, gw) = gateway(Options {
        login: "max_failures = 1000",
        ..Options::default()
    })
    .await;
    let flood = H2::connect(gw.addr, loopback(1)).await;
    let logins = (0..100)
        .map(|i| (flood.clone(), (ALICE.0.to_owned(), format!("guess-{i}"))))
        .collect();
    let flooding = tokio::spawn(all_at_once(logins));
    // While the flood's logins are being checked, someone else logs in.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let other = H2::connect(gw.addr, loopback(2)).await.login(BOB).await;
    let answers = flooding.await.unwrap();
    assert_eq!(other.status, 200, "{other:?}");
    assert_eq!(count(&answers, 503), 0, "{answers:?}");
    let refused = count(&answers, 429);
    assert!(
        refused >= 90,
        "at most 4 in flight per connection: {answers:?}"
    );
    assert_eq!(refused + count(&answers, 400), 100, "{answers:?}");
    for a in answers.iter().filter(|a| a.status == 429) {
        assert_eq!(a.retry_after.as_deref(), Some("1"), "{a:?}");
        assert_eq!(a.error.as_deref(), Some("temporarily_unavailable"), "{a:?}");
    }
}

#[tokio::test]
async fn one_address_has_at_most_16_logins_in_flight() {
    let (_upstream, gw) = gateway(Options {
        login: "max_failures = 1000",
        ..Options::default()
    })
    .await;
    // 5 connections from one address, 4 logins on each (the per-connection limit): 20 at once.
    let mut logins = Vec::new();
    for _ in 0..5 {
        let conn = H2::connect(gw.addr, loopback(6)).await;
        for i in 0..4 {
            logins.push((conn.clone(), (ALICE.0.to_owned(), format!("guess-{i}"))));
        }
    }
    let answers = all_at_once(logins).await;
    let refused: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert!(!refused.is_empty(), "{answers:?}");
    assert!(refused
        .iter()
        .all(|a| a.error.as_deref() == Some("temporarily_unavailable")
            && a.retry_after.as_deref() == Some("1")));
    assert_eq!(refused.len() + count(&answers, 400), 20, "{answers:?}");
}
