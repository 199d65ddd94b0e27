//! SPEC §6: `portcullis bench`, the built binary, against a real gateway over TLS.
//!
//! Every run is a few seconds with a few connections, all on 127.0.0.1.

use std::convert::Infallible;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::support::{full, gateway, upstream::MockUpstream, Options, TestGateway, ALICE};

/// Runs `portcullis bench ARGS` off the runtime (the gateway runs on it) and returns its output
/// and how long it took.
async fn bench(args: Vec<String>) -> (Output, Duration) {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("bench")
            .args(args)
            .output()
            .unwrap();
        (output, started.elapsed())
    })
    .await
    .unwrap()
}

/// `--url` of `gw`, `--user`/`--password` of alice, `--ca` the gateway's certificate, then
/// `extra`.
fn args(gw: &TestGateway, password: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--url".into(),
        format!("https://127.0.0.1:{}", gw.addr.port()),
        "--user".into(),
        ALICE.0.into(),
        "--password".into(),
        password.into(),
    ];
    if !extra.contains(&"--insecure") {
        args.push("--ca".into());
        args.push(gw.dir.path().join("gateway.crt").display().to_string());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The one JSON object on stdout, checked for the SPEC §6 shape and internal consistency.
fn report(output: &Output) -> Value {
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        output.status,
        text(&output.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "one line on stdout: {stdout}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    let object = json.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "duration_s",
            "errors",
            "latency_ms",
            "logins",
            "refreshes",
            "requests",
            "status",
            "throughput_rps"
        ]
    );
    let latency = |k: &str| json["latency_ms"][k].as_f64().unwrap();
    let order = ["p50", "p90", "p99", "p999", "max"].map(latency);
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    let requests = json["requests"].as_u64().unwrap();
    let by_status: u64 = json["status"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(by_status, requests, "every counted request has a status");
    let rps = json["throughput_rps"].as_f64().unwrap();
    let secs = json["duration_s"].as_f64().unwrap();
    assert!(
        (rps * secs - requests as f64).abs() <= requests as f64 * 0.01 + 1.0,
        "{json}"
    );
    json
}

#[tokio::test]
async fn json_report_over_tls_with_ca() {
    let (upstream, gw) = gateway(Options::default()).await;
    let (output, took) = bench(args(
        &gw,
        ALICE.1,
        &["--json", "--duration", "2s", "--connections", "4"],
    ))
    .await;
    let json = report(&output);
    assert!(json["requests"].as_u64().unwrap() > 0, "{json}");
    assert!(json["status"]["200"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["logins"], 4, "one login per virtual user: {json}");
    assert_eq!(json["refreshes"], 0, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
    let secs = json["duration_s"].as_f64().unwrap();
    assert!((1.9..3.0).contains(&secs), "{json}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    // The calls went through with alice's identity, to the default path.
    let last = upstream.last();
    assert_eq!(last.headers["x-auth-user"], "alice");
    assert_eq!(last.uri.path(), "/");
    assert!(last.headers["user-agent"]
        .to_str()
        .unwrap()
        .starts_with("portcullis-bench/"));
    // Progress went to stderr; the password went nowhere.
    let stderr = text(&output.stderr);
    assert!(stderr.contains("requests"), "{stderr}");
    assert!(!stderr.contains(ALICE.1) && !text(&output.stdout).contains(ALICE.1));
}

#[tokio::test]
async fn refreshes_when_the_access_token_expires() {
    let (_upstream, gw) = gateway(Options {
        tokens: "access_ttl = \"1s\"",
        store: "kind = \"memory\"".to_owned(),
        ..Options::default()
    })
    .await;
    let (output, _) = bench(args(
        &gw,
        ALICE.1,
        &[
            "--json",
            "--duration",
            "3s",
            "--connections",
            "2",
            "--path",
            "/items?page=1",
        ],
    ))
    .await;
    let json = report(&output);
    assert!(json["refreshes"].as_u64().unwrap() > 0, "{json}");
    assert!(json["status"]["401"].as_u64().unwrap() > 0, "{json}");
    assert!(json["status"]["200"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
}

#[tokio::test]
async fn http2_with_insecure_prints_a_summary() {
    let (_upstream, gw) = gateway(Options::default()).await;
    let (output, _) = bench(args(
        &gw,
        ALICE.1,
        &[
            "--http2",
            "--insecure",
            "--duration",
            "1s",
            "--connections",
            "2",
        ],
    ))
    .await;
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("(HTTP/2, 2 connections,"), "{stdout}");
    let ok = stdout
        .split("200: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(ok > 0, "{stdout}");
    assert!(stdout.contains("p99.9"), "{stdout}");
    assert!(stdout.contains("2 logins"), "{stdout}");
}

#[tokio::test]
async fn a_wrong_password_ends_the_run_at_once_with_a_clear_error() {
    let (upstream, gw) = gateway(Options::default()).await;
    let (output, took) = bench(args(
        &gw,
        "not-the-password",
        &["--json", "--duration", "60s", "--connections", "2"],
    ))
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("logging in as \"alice\" was refused: 400 Bad Request invalid_grant"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        took < Duration::from_secs(20),
        "did not wait out --duration"
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn bad_flags_are_refused_naming_the_flag() {
    let upstream = MockUpstream::start().await;
    let url = format!("http://{}", upstream.addr);
    let cases: [(&[&str], &str); 6] = [
        (&["--url", "ftp://127.0.0.1"], "--url"),
        (&["--url", "not a url"], "--url"),
        (
            &[
                "--url",
                "https://127.0.0.1:1",
                "--ca",
                "/nonexistent/ca.pem",
            ],
            "--ca /nonexistent/ca.pem",
        ),
        (
            &[
                "--url",
                "https://127.0.0.1:1",
                "--ca",
                "x.pem",
                "--insecure",
            ],
            "'--ca <FILE>' cannot be used with '--insecure'",
        ),
        (&["--url", &url, "--path", "items"], "--path"),
        (&["--url", &url, "--duration", "0s"], "--duration"),
    ];
    for (flags, expected) in cases {
        let args: Vec<String> = ["--user", "alice", "--password", "pw"]
            .into_iter()
            .chain(flags.iter().copied())
            .map(str::to_owned)
            .collect();
        let (output, _) = bench(args).await;
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{flags:?} was accepted");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
    assert_eq!(upstream.count(), 0, "nothing was sent");
}

/// A plain-HTTP stand-in for a busy gateway: its token endpoint answers the first `busy`
/// logins with `status`, `Retry-After: 0` and `{"error": error}`, then hands out a token; every
/// other path answers `200` to that token. Returns its address and the count of token requests.
async fn busy_gateway(
    busy: usize,
    status: u16,
    error: &'static str,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let logins = Arc::new(AtomicUsize::new(0));
    let seen = logins.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let reply = if req.uri().path() == "/api/oauth2/token" {
                            if seen.fetch_add(1, Ordering::SeqCst) < busy {
                                Response::builder()
                                    .status(status)
                                    .header("retry-after", "0")
                                    .body(full(format!("{{\"error\":\"{error}\"}}")))
                            } else {
                                Response::builder().body(full(
                                    "{\"access_token\":\"a.b.c\",\"refresh_token\":\"r\"}",
                                ))
                            }
                        } else if req.headers()["authorization"] == "Bearer a.b.c" {
                            Response::builder().body(full("ok"))
                        } else {
                            Response::builder().status(401).body(full(""))
                        };
                        Ok::<_, Infallible>(reply.unwrap())
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, logins)
}

#[tokio::test]
async fn a_busy_token_endpoint_is_asked_again_over_h2c() {
    let (addr, token_requests) = busy_gateway(3, 503, "temporarily_unavailable").await;
    let args = [
        "--url",
        &format!("http://{addr}"),
        "--user",
        "u",
        "--password",
        "p",
        "--http2",
        "--json",
        "--duration",
        "1s",
        "--connections",
        "2",
    ];
    let (output, _) = bench(args.map(str::to_owned).to_vec()).await;
    let json = report(&output);
    assert_eq!(json["logins"], 2, "{json}");
    assert!(json["status"]["200"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
    assert_eq!(
        token_requests.load(Ordering::SeqCst),
        5,
        "3 refused, then 2 logins"
    );
}

#[tokio::test]
async fn too_many_logins_in_flight_is_asked_again_but_a_lockout_ends_the_run() {
    let (addr, token_requests) = busy_gateway(2, 429, "temporarily_unavailable").await;
    let url = format!("http://{addr}");
    let args = |duration: &str| {
        [
            "--url",
            &url,
            "--user",
            "u",
            "--password",
            "p",
            "--json",
            "--duration",
            duration,
            "--connections",
            "2",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let (output, _) = bench(args("1s")).await;
    let json = report(&output);
    assert_eq!(json["logins"], 2, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
    assert_eq!(
        token_requests.load(Ordering::SeqCst),
        4,
        "2 refused, then 2 logins"
    );

    let (addr, _) = busy_gateway(usize::MAX, 429, "invalid_grant").await;
    let url = format!("http://{addr}");
    let args = [
        "--url",
        &url,
        "--user",
        "u",
        "--password",
        "p",
        "--duration",
        "60s",
        "--connections",
        "1",
    ];
    let (output, took) = bench(args.map(str::to_owned).to_vec()).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("429 Too Many Requests invalid_grant"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[tokio::test]
async fn more_virtual_users_than_one_address_may_log_in_at_once() {
    // 24 virtual users from one address: beyond 16 logins in flight the gateway answers `429`
    // with `Retry-After`, and beyond the 5 failure slots of alice logins wait; all get in.
    let (_upstream, gw) = gateway(Options::default()).await;
    let (output, _) = bench(args(
        &gw,
        ALICE.1,
        &["--json", "--duration", "1s", "--connections", "24"],
    ))
    .await;
    let json = report(&output);
    assert_eq!(json["logins"], 24, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
}
