//! SPEC §3 limits and §4.2 signals: SIGHUP reload, SIGTERM drain, slow clients, connection cap,
//! and what a reload may change (listener settings stay; per-connection limits apply to the next
//! connection).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Request;
use portcullis::server::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::child::ChildGateway;
use crate::support::upstream::MockUpstream;
use crate::support::{
    empty, full, gateway, logs_of, material, send_to, tls_client, tls_client_trusting,
    write_config, Options, TempDir, ALICE,
};

/// Polls `check` every 100 ms for up to 10 s.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn sighup_reloads_users_routes_and_the_certificate() {
    let upstream = MockUpstream::start().await;
    let other = MockUpstream::start().await;
    let dir = TempDir::new();
    let config = write_config(dir.path(), upstream.addr, &Options::default());
    let gw = ChildGateway::start(&config);
    let carol = gw.token("grant_type=password&username=carol&password=carol-pw".to_owned());
    assert_eq!(carol.await.status, 400);
    let public = Request::get("/new/x").body(empty()).unwrap();
    assert_eq!(
        send_to(&tls_client(false), gw.port, public).await.status,
        401
    );

    // A new user, a new public route, a new certificate.
    let carol = portcullis::init::users_toml("carol", "carol-pw", &["user"]);
    let users = format!("{}\n{carol}", material().users_toml);
    let routes = format!(
        "[[routes]]\nname = \"new\"\npath_prefix = \"/new\"\nauth = \"public\"\n\
         upstreams = [\"http://{}\"]\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstreams = [\"http://{{upstream}}\"]\n",
        other.addr
    );
    write_config(
        dir.path(),
        upstream.addr,
        &Options {
            routes,
            ..Options::default()
        },
    );
    std::fs::write(dir.path().join("users.toml"), users).unwrap();
    let (cert, key) =
        portcullis::keygen::self_signed(&["localhost".to_owned(), "127.0.0.1".to_owned()], 1)
            .unwrap();
    std::fs::write(dir.path().join("gateway.crt"), &cert).unwrap();
    portcullis::keygen::write_private(&dir.path().join("gateway.key"), key.as_bytes()).unwrap();
    gw.signal("HUP");

    let new_cert_client = tls_client_trusting(&cert, false);
    let port = gw.port;
    assert!(
        eventually(|| {
            let client = new_cert_client.clone();
            async move {
                let req = Request::post("/api/oauth2/token")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(full("grant_type=password&username=carol&password=carol-pw"))
                    .unwrap();
                tokio::time::timeout(Duration::from_secs(5), async {
                    let req = {
                        let mut req = req;
                        *req.uri_mut() = format!("https://localhost:{port}/api/oauth2/token")
                            .parse()
                            .unwrap();
                        req
                    };
                    client
                        .request(req)
                        .await
                        .map(|r| r.status() == 200)
                        .unwrap_or(false)
                })
                .await
                .unwrap_or(false)
            }
        })
        .await,
        "after SIGHUP the new certificate is served and carol can log in"
    );
    let public = Request::get("/new/x").body(empty()).unwrap();
    let reply = crate::support::send_to(&new_cert_client, gw.port, public).await;
    assert_eq!(reply.status, 200);
    assert_eq!(other.count(), 1);

    // A broken configuration is refused; the running one keeps serving.
    std::fs::write(&config, "[server]\nlisten = \"nowhere\"\n").unwrap();
    gw.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let req = Request::get("/new/x").body(empty()).unwrap();
    assert_eq!(
        crate::support::send_to(&new_cert_client, gw.port, req)
            .await
            .status,
        200
    );
}

/// A `[[users]]` password hash from a file (`password_hash_file`) logs in, and a reload reads
/// the file again: after a rotation only the new password works.
#[tokio::test]
async fn a_password_hash_file_is_read_at_start_and_again_on_reload() {
    let hash = |p: &str| portcullis::login::hash_password(p.as_bytes());
    let routes = "[[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstreams = [\"http://{upstream}\"]\n\n\
                  [[users]]\nname = \"carol\"\npassword_hash_file = \"carol.hash\"\nroles = [\"user\"]\n";
    let (_upstream, gw) = gateway(Options {
        files: vec![("carol.hash", format!("{}\n", hash("carol-one")))],
        ..Options::with_routes(routes)
    })
    .await;
    gw.login(("carol", "carol-one")).await;

    std::fs::write(gw.dir.path().join("carol.hash"), hash("carol-two")).unwrap();
    // The same configuration; only the file it names has changed.
    gw.reload(&Options::with_routes(routes)).unwrap();
    assert_eq!(gw.try_login(("carol", "carol-one")).await.status, 400);
    gw.login(("carol", "carol-two")).await;
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let upstream = MockUpstream::start().await;
    let dir = TempDir::new();
    let config = write_config(dir.path(), upstream.addr, &Options::default());
    let mut gw = ChildGateway::start(&config);
    let (port, admin_port) = (gw.port, gw.admin_port);
    let tokens = gw.login(ALICE).await;
    let slow = tokio::spawn(async move {
        let req = Request::get("/slow")
            .header("authorization", format!("Bearer {}", tokens.access))
            .body(empty())
            .unwrap();
        send_to(&tls_client(false), port, req).await
    });
    let healthcheck = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args([
                "healthcheck",
                "--url",
                &format!("http://127.0.0.1:{port}/readyz"),
            ])
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(healthcheck(gw.admin_port), Some(0));
    tokio::time::sleep(Duration::from_millis(700)).await;
    gw.signal("TERM");
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200, "the in-flight request completed");
    assert_eq!(reply.text(), "slow");
    let exited = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = gw.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(exited.and_then(|s| s.code()), Some(0));
    assert_eq!(healthcheck(admin_port), Some(1), "nothing answers any more");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_dropped() {
    let (upstream, gw) = gateway(Options {
        server: "header_read_timeout = \"1s\"",
        ..Options::default()
    })
    .await;
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut plain = tcp; // no TLS handshake at all: the handshake is bounded by the same timeout
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Inside TLS: a head that never ends.
    let (_, mut tls) = crate::upgrade::tls_connect(&gw).await;
    tls.write_all(b"GET /x HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "dropped within the timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_for_a_free_slot() {
    let (_upstream, gw) = gateway(Options {
        server: "max_connections = 1",
        ..Options::default()
    })
    .await;
    let gw = Arc::new(gw);
    let (_, first) = crate::upgrade::tls_connect(&gw).await;
    // More waiting connections than workers, so that they land in every worker's accept
    // queue: the kernel accepts them, but none is served while the first is open, and each is
    // served in turn once the one before it closes, whichever worker holds it.
    let waiting: Vec<_> = (0..6)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move {
                let (_, mut tls) = crate::upgrade::tls_connect(&gw).await;
                tls.write_all(
                    b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                )
                .await
                .unwrap();
                let mut head = [0u8; 12];
                tls.read_exact(&mut head).await.unwrap();
                head
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        waiting.iter().all(|w| !w.is_finished()),
        "a TLS handshake beyond the cap went ahead"
    );
    drop(first);
    for w in waiting {
        let head = tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("a waiting connection was never served")
            .unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
    }
}

/// Field `field` (`VmHWM:`, `VmRSS:`) of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Peak resident set of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// Resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Password hashes run on a fixed set of threads, each reusing one argon2 memory area: after
/// a storm of logins (four at a time, so that they overlap), the gateway's resident memory
/// stays within 64 MiB plus one `m_cost` (19 MiB) per hashing thread, instead of keeping an
/// area for every thread that ever hashed.
#[tokio::test]
async fn a_login_storm_leaves_resident_memory_bounded() {
    let upstream = MockUpstream::start().await;
    let dir = TempDir::new();
    let config = write_config(dir.path(), upstream.addr, &Options::default());
    let gw = Arc::new(ChildGateway::start(&config));
    for _ in 0..12 {
        let logins: Vec<_> = (0..4)
            .map(|_| {
                let gw = gw.clone();
                tokio::spawn(async move { gw.login(ALICE).await })
            })
            .collect();
        for login in logins {
            login.await.unwrap();
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let hashing_threads = (cores / 2).max(1);
    let bound = 64 * 1024 + hashing_threads * 19 * 1024;
    let rss = rss_kib(gw.child.id());
    assert!(
        rss <= bound,
        "RSS after 48 logins: {rss} KiB, over {bound} KiB"
    );
}

#[tokio::test]
async fn a_gibibyte_each_way_streams_in_bounded_memory() {
    use http_body_util::BodyExt;
    const GIB: u64 = 1 << 30;
    let upstream = MockUpstream::start().await;
    let dir = TempDir::new();
    let config = write_config(dir.path(), upstream.addr, &Options::default());
    let gw = ChildGateway::start(&config);
    let client = tls_client(false);
    let tokens = gw.login(ALICE).await;
    let bearer = format!("Bearer {}", tokens.access);

    let mut req = Request::post("/count")
        .header("authorization", &bearer)
        .body(crate::support::upstream::zeros_body(GIB))
        .unwrap();
    *req.uri_mut() = format!("https://localhost:{}/count", gw.port)
        .parse()
        .unwrap();
    let response = client.request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        GIB.to_string(),
        "the upload arrived whole"
    );

    let mut req = Request::get("/")
        .header("authorization", &bearer)
        .body(empty())
        .unwrap();
    *req.uri_mut() = format!("https://localhost:{}/zeros/{GIB}", gw.port)
        .parse()
        .unwrap();
    let response = client.request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len() as u64;
        }
    }
    assert_eq!(received, GIB, "the download arrived whole");

    let peak = peak_rss_kib(gw.child.id());
    eprintln!("gateway peak RSS after 1 GiB each way: {peak} KiB");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}

#[tokio::test]
async fn idle_connections_are_closed_but_slow_requests_are_not() {
    let (_upstream, gw) = gateway(Options {
        server: "idle_timeout = \"1s\"",
        ..Options::default()
    })
    .await;
    let (_, mut idle) = crate::upgrade::tls_connect(&gw).await;
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A request waiting 3 s on its upstream is in progress, not idle.
    let tokens = gw.login(ALICE).await;
    let reply = gw.get("/slow", Some(&tokens.access)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "slow");
}

/// RFC 9112 §6.1: with both `Content-Length` and `Transfer-Encoding`, the latter wins and the
/// length is dropped before forwarding, so the gateway and the upstream cannot disagree about
/// where the request ends (hyper does this while parsing; the test pins it).
#[tokio::test]
async fn conflicting_content_length_never_reaches_the_upstream() {
    let (upstream, gw) = gateway(Options::default()).await;
    let tokens = gw.login(ALICE).await;
    let (_, mut tls) = crate::upgrade::tls_connect(&gw).await;
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
        tokens.access
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response[..n]).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("\"len\":4"),
        "the chunked body, not 40 bytes: {text}"
    );
    let got = upstream.last();
    assert!(
        got.headers.get("content-length").is_none_or(|v| v == "4"),
        "{:?}",
        got.headers
    );
}

/// The log lines of a reload that warn about one listener setting.
fn listener_warnings(logs: &str) -> Vec<&str> {
    logs.lines()
        .filter(|l| l.contains("WARN") && l.contains("belongs to the listener"))
        .collect()
}

/// `server.http2` and `server.max_connections` belong to the listener: a reload that changes
/// them says so, naming each key, and the listener keeps offering what it offered.
#[tokio::test]
async fn a_reload_that_changes_listener_settings_warns_and_keeps_them() {
    let (_upstream, gw) = gateway(Options {
        server: "max_connections = 1",
        ..Options::default()
    })
    .await;
    let (reloaded, logs) = logs_of(|| {
        gw.reload(&Options {
            server: "http2 = false\nmax_connections = 5",
            ..Options::default()
        })
    });
    reloaded.unwrap();
    let warnings = listener_warnings(&logs);
    assert_eq!(warnings.len(), 2, "{logs}");
    assert!(
        warnings[0].contains("key=\"server.http2\"")
            && warnings[0].contains("running=true configured=false"),
        "{logs}"
    );
    assert!(
        warnings[1].contains("key=\"server.max_connections\"")
            && warnings[1].contains("running=1 configured=5"),
        "{logs}"
    );

    // Still one connection at a time: the second waits for the first to close.
    let gw = Arc::new(gw);
    let (_, first) = crate::upgrade::tls_connect(&gw).await;
    let second = {
        let gw = gw.clone();
        tokio::spawn(async move { crate::upgrade::tls_connect(&gw).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.is_finished(), "a second connection was served");
    drop(first);
    let (_, second) = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap();
    drop(second);

    // Still HTTP/2: ALPN offers `h2` and the connection speaks it.
    let req = Request::get("/.well-known/jwks.json")
        .body(empty())
        .unwrap();
    let reply = send_to(&tls_client(true), gw.addr.port(), req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, http::Version::HTTP_2);
}

/// Turning TLS off in a reload: a warning naming `server.tls`; the listener keeps serving TLS
/// with the certificate it has, and the rest of the new configuration applies.
#[tokio::test]
async fn a_reload_that_turns_tls_off_keeps_tls_and_applies_the_rest() {
    let (upstream, gw) = gateway(Options::default()).await;
    let public = || Request::get("/public/x").body(empty()).unwrap();
    assert_eq!(gw.send(public()).await.status, 401);
    let (reloaded, logs) = logs_of(|| {
        gw.reload(&Options {
            server: "tls = false",
            ..Options::with_routes(crate::support::PUBLIC_AND_API)
        })
    });
    reloaded.unwrap();
    let warnings = listener_warnings(&logs);
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(
        warnings[0].contains("key=\"server.tls\"")
            && warnings[0].contains("running=true configured=false"),
        "{logs}"
    );
    let reply = gw.send(public()).await;
    assert_eq!(reply.status, 200, "the new public route: {}", reply.text());
    assert_eq!(upstream.count(), 1);
}

/// The per-connection limits are the snapshot's when a connection is accepted: a reload that
/// lowers `header_read_timeout` applies to the next connection, not to one already open.
#[tokio::test]
async fn a_reload_applies_the_header_timeout_to_the_next_connection() {
    let (_upstream, gw) = gateway(Options {
        server: "header_read_timeout = \"30s\"",
        ..Options::default()
    })
    .await;
    let mut before = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    // Accepted (its handshake timer running) before the reload.
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.reload(&Options {
        server: "header_read_timeout = \"1s\"",
        ..Options::default()
    })
    .unwrap();

    let mut after = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), after.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed after {:?}, not at the reloaded 1 s",
        started.elapsed()
    );
    let still_open = tokio::time::timeout(Duration::from_millis(300), before.read(&mut buf)).await;
    assert!(
        still_open.is_err(),
        "the connection accepted before the reload keeps its 30 s: {still_open:?}"
    );
}

/// The fixture runs the binary's lifecycle: a reload signal re-reads the configuration file
/// (a bad one is refused and the old configuration keeps serving), and a terminate signal
/// closes both listeners and ends the lifecycle with `Ok`, as `portcullis serve` exits 0.
#[tokio::test]
async fn the_lifecycle_reloads_on_a_signal_and_stops_both_listeners() {
    let (upstream, mut gw) = gateway(Options::default()).await;
    let public = || Request::get("/public/x").body(empty()).unwrap();
    assert_eq!(gw.send(public()).await.status, 401);

    write_config(
        gw.dir.path(),
        upstream.addr,
        &Options::with_routes(crate::support::PUBLIC_AND_API),
    );
    gw.signal(Signal::Reload);
    let gw_ref = &gw;
    assert!(
        eventually(|| async move { gw_ref.send(public()).await.status == 200 }).await,
        "the reloaded public route is never served"
    );

    // Refused: the public route stays.
    let path = write_config(gw.dir.path(), upstream.addr, &Options::default());
    std::fs::write(&path, "[server\n").unwrap();
    gw.signal(Signal::Reload);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gw.send(public()).await.status, 200);
    assert_eq!(gw.admin("GET", "/healthz").await.status, 200);

    gw.stop().await.unwrap();
    for addr in [gw.addr, gw.admin_addr] {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr} still accepts after the lifecycle ended"
        );
    }
}

/// The fixture runs two request-path workers. Fresh connections, each from a port of its own,
/// are spread over both by the kernel; each worker serves its requests over its own upstream
/// connections, and on shutdown each drains: every request still in flight on either worker
/// completes before the lifecycle ends.
#[tokio::test]
async fn every_worker_serves_and_drains_its_connections() {
    let (upstream, mut gw) = gateway(Options::default()).await;
    let access = gw.login(ALICE).await.access;
    let accepted = |gw: &crate::support::TestGateway| -> Vec<u64> {
        (0..2)
            .map(|w| gw.shared.metrics.accepted_by(w).get())
            .collect()
    };
    let before = accepted(&gw);
    let port = gw.addr.port();
    let slow: Vec<_> = (0..24)
        .map(|_| {
            let access = access.clone();
            tokio::spawn(async move {
                let req = Request::get("/slow")
                    .header("authorization", format!("Bearer {access}"))
                    .body(empty())
                    .unwrap();
                // A client of its own: a connection of its own.
                send_to(&tls_client(false), port, req).await
            })
        })
        .collect();
    let upstream_ref = &upstream;
    assert!(
        eventually(|| async move { upstream_ref.count() >= 24 }).await,
        "the upstream never saw the 24 requests"
    );
    let after = accepted(&gw);
    let new: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(new.iter().sum::<u64>(), 24, "{new:?}");
    assert!(
        new.iter().all(|&n| n > 0),
        "one worker took every connection: {new:?}"
    );

    gw.stop().await.unwrap();
    for reply in slow {
        let reply = reply.await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "slow");
    }
    assert!(tokio::net::TcpStream::connect(gw.addr).await.is_err());
}

/// SIGTERM with `drain_delay`: `/readyz` answers 503 at once, both listeners keep serving
/// new connections for the delay (a load balancer's health checks notice meanwhile), then the
/// gateway stops accepting and the lifecycle ends.
#[tokio::test]
async fn sigterm_fails_readiness_then_keeps_serving_for_the_drain_delay() {
    let (_upstream, mut gw) = gateway(Options {
        server: "drain_delay = \"2s\"",
        ..Options::default()
    })
    .await;
    assert_eq!(gw.admin("GET", "/readyz").await.status, 200);
    let signalled = Instant::now();
    gw.signal(Signal::Terminate);
    let gw_ref = &gw;
    assert!(
        eventually(|| async move { gw_ref.admin("GET", "/readyz").await.status == 503 }).await,
        "readiness never failed"
    );
    // New connections during the delay, each a client of its own, are served.
    for _ in 0..3 {
        let req = Request::get("/.well-known/jwks.json")
            .body(empty())
            .unwrap();
        assert_eq!(
            send_to(&tls_client(false), gw.addr.port(), req)
                .await
                .status,
            200
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "the requests above took longer than the delay"
    );
    gw.stop().await.unwrap();
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "the lifecycle ended before the drain delay"
    );
    assert!(tokio::net::TcpStream::connect(gw.addr).await.is_err());
}
