//! Heap allocations per proxied request (issue 13, item 4), counted by dhat's global
//! allocator: the figure `BENCHMARKS.md` publishes and the allocation work is measured by.
//!
//! Run with `cargo bench --bench allocations`. A gateway (one worker, plain HTTP, memory
//! store) runs in this process on 127.0.0.1; the client and an upstream answering `200 ok`
//! run in a child process (this binary again), so that only the gateway's allocations are
//! counted. The client sends `REQUESTS` requests one after another on one keep-alive
//! connection; the figure is the allocations this process made meanwhile, divided by
//! `REQUESTS`.
//! Counting is exact, not timed, so the figure does not depend on the machine's load.
//! With `PORTCULLIS_DHAT_FILE=dhat.json` the whole run's profile is written there too (open it
//! in DHAT's viewer, or sort its program points by block count).
#![allow(clippy::print_stdout)]
// A benchmark's setup fails by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis::config::Config;
use portcullis::state::{ListenerSettings, Shared, Snapshot};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const REQUESTS: u64 = 2_000;
const WARMUP: u64 = 200;

fn main() {
    if std::env::var_os(PEER).is_some() {
        return peer();
    }
    // `PORTCULLIS_DHAT_FILE=dhat.json`: also write dhat's profile, to see where they come from.
    let _profiler = match std::env::var_os("PORTCULLIS_DHAT_FILE") {
        Some(file) => dhat::Profiler::builder().file_name(file).build(),
        None => dhat::Profiler::builder().testing().build(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

/// Set in the child process that plays the client and the upstream, so that this process
/// counts only the gateway's allocations.
const PEER: &str = "PORTCULLIS_ALLOC_PEER";

async fn run() {
    use std::io::{BufRead, Write};
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(PEER, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_peer = child.stdin.take().unwrap();
    let mut from_peer = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut line = move || from_peer.next().unwrap().unwrap();
    let upstream: SocketAddr = line().parse().unwrap();

    let dir = std::env::temp_dir().join(format!("portcullis-alloc-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (gateway, stop) = gateway(&dir, upstream).await;
    let token = login(gateway).await;
    println!("| request | allocations | bytes |");
    println!("| --- | ---: | ---: |");
    for (what, path, auth) in [
        ("HTTP/1.1, public route", "/public/x", "-"),
        ("HTTP/1.1, one token (cached check)", "/x", token.as_str()),
    ] {
        writeln!(to_peer, "{gateway} {path} {auth}").unwrap();
        // Blocking reads: the gateway runs on its own worker thread. The peer warms the
        // connection up, then says "ready"; "done" after `REQUESTS`.
        assert_eq!(line(), "ready");
        let before = dhat::HeapStats::get();
        writeln!(to_peer, "go").unwrap();
        assert_eq!(line(), "done");
        let after = dhat::HeapStats::get();
        let n = REQUESTS as f64;
        println!(
            "| {what} | {:.1} | {:.0} |",
            (after.total_blocks - before.total_blocks) as f64 / n,
            (after.total_bytes - before.total_bytes) as f64 / n,
        );
    }
    drop(to_peer);
    child.wait().unwrap();
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child: an upstream, then for each `addr path token` line on stdin, `WARMUP` requests,
/// "ready", and on "go" `REQUESTS` requests on one connection, then "done".
fn peer() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let upstream = upstream().await;
        println!("{upstream}");
        let mut lines = std::io::stdin().lines();
        while let Some(Ok(job)) = lines.next() {
            let mut words = job.split(' ');
            let (Some(addr), Some(path), Some(auth)) = (words.next(), words.next(), words.next())
            else {
                panic!("bad job {job:?}");
            };
            let addr: SocketAddr = addr.parse().unwrap();
            let bearer = format!("Bearer {auth}");
            let auth = (auth != "-").then_some(bearer.as_str());
            requests(addr, path, auth, WARMUP).await;
            println!("ready");
            assert_eq!(lines.next().unwrap().unwrap(), "go");
            requests(addr, path, auth, REQUESTS).await;
            println!("done");
        }
    });
}

/// `n` requests for `path` to `addr`, one after another on one connection.
async fn requests(addr: SocketAddr, path: &str, auth: Option<&str>, n: u64) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    for _ in 0..n {
        let mut req = Request::get(path).header("host", "api.example");
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        send.ready().await.unwrap();
        let response = send
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.into_body().collect().await.unwrap();
    }
}

/// An HTTP/1.1 upstream answering `200 ok` to everything.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let service = service_fn(|_: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    addr
}

/// A gateway on one worker in front of `upstream`: `/public` without authentication,
/// everything else with.
async fn gateway(
    dir: &std::path::Path,
    upstream: SocketAddr,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    portcullis::keygen::write_private(
        &dir.join("signing.pem"),
        portcullis::keygen::signing_key_pem().unwrap().as_bytes(),
    )
    .unwrap();
    let users = format!(
        "[[users]]\nname = \"bench\"\npassword_hash = \"{}\"\n",
        portcullis::login::hash_password(b"bench-password")
    );
    portcullis::keygen::write_private(&dir.join("users.toml"), users.as_bytes()).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls = false\nworkers = 1\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [tokens]\nsigning_key = \"signing.pem\"\naccess_ttl = \"1h\"\n\
         [store]\nkind = \"memory\"\n[login]\nusers_file = \"users.toml\"\n\
         [log]\naccess_log = false\n\
         [[routes]]\nname = \"pub\"\npath_prefix = \"/public\"\nauth = \"public\"\n\
         upstreams = [\"http://{upstream}\"]\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstreams = [\"http://{upstream}\"]\n"
    );
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, config).unwrap();
    let snapshot = Snapshot::build(Config::load(&path).unwrap()).unwrap();
    let listeners = portcullis::run::bind(&ListenerSettings::of(&snapshot.config))
        .await
        .unwrap();
    let addr = listeners.gateway_addr().unwrap();
    let shared = Shared::new(snapshot).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(portcullis::server::serve(
        listeners.gateway,
        shared,
        async {
            let _ = stop_rx.await;
        },
    ));
    (addr, stop_tx)
}

/// Logs in as the bench user; the access token.
async fn login(gateway: SocketAddr) -> String {
    let tcp = TcpStream::connect(gateway).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post("/api/oauth2/token")
        .header("host", "api.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(
            b"grant_type=password&username=bench&password=bench-password",
        )))
        .unwrap();
    let response = send.send_request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    json["access_token"].as_str().unwrap().to_owned()
}
