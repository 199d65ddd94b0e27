//! Refresh-grant throughput with the durable embedded store beside the in-memory store and the
//! Redis store (when `redis-server` is on PATH: one is started on a free loopback port, with
//! `appendfsync everysec`, Redis's default durability).
//!
//! Run with `cargo bench --bench refresh` (release build). For each store: a gateway in this
//! process on 127.0.0.1 (plain HTTP, so that TLS does not blur the comparison), 64 sessions,
//! and 64 concurrent clients that each refresh their own session as fast as they can for
//! `PORTCULLIS_BENCH_SECS` seconds (default 10). Then the store alone: rotations per second
//! with 1 and with 64 concurrent callers, to show what group commit buys.
#![allow(clippy::print_stdout)]
// A benchmark's setup fails by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis::config::Config;
use portcullis::session::{EmbeddedStore, MemoryStore, Rotation, Session, SessionStore};
use portcullis::state::{ListenerSettings, Shared, Snapshot};

const CLIENTS: usize = 64;

fn main() {
    let secs: u64 = std::env::var("PORTCULLIS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("portcullis-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let signing = dir.join("signing.pem");
    portcullis::keygen::write_private(
        &signing,
        portcullis::keygen::signing_key_pem().unwrap().as_bytes(),
    )
    .unwrap();
    let users = format!(
        "[[users]]\nname = \"bench\"\npassword_hash = \"{}\"\n",
        portcullis::login::hash_password(b"bench-password")
    );
    std::fs::write(dir.join("users.toml"), users).unwrap();

    println!("| store | clients | refresh grants/s | errors |");
    println!("| --- | --- | --- | --- |");
    let redis = Redis::start(&dir);
    let mut stores = vec![
        ("memory", "kind = \"memory\"".to_owned()),
        (
            "embedded",
            "kind = \"embedded\"\npath = \"embedded.db\"".to_owned(),
        ),
    ];
    match &redis {
        Some(redis) => stores.push((
            "redis",
            format!(
                "kind = \"redis\"\nurl = \"redis://127.0.0.1:{}/0\"",
                redis.port
            ),
        )),
        None => eprintln!("redis-server is not on PATH: the Redis row is left out"),
    }
    for (name, store) in &stores {
        let (rate, errors) =
            runtime.block_on(refresh_rate(&dir, name, store, Duration::from_secs(secs)));
        println!("| {name} | {CLIENTS} | {rate:.0} | {errors} |");
    }
    drop(redis);

    println!();
    println!("| store alone | concurrent callers | rotations/s |");
    println!("| --- | --- | --- |");
    for callers in [1, CLIENTS] {
        let path = dir.join(format!("rotate-{callers}.db"));
        let embedded = SessionStore::Embedded(EmbeddedStore::open(&path, 0).unwrap());
        let memory = SessionStore::Memory(MemoryStore::new());
        for (name, store) in [("memory", memory), ("embedded", embedded)] {
            let rate = runtime.block_on(rotate_rate(
                Arc::new(store),
                callers,
                Duration::from_secs(3),
            ));
            println!("| {name} | {callers} | {rate:.0} |");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn refresh_rate(
    dir: &std::path::Path,
    name: &str,
    store: &str,
    run_for: Duration,
) -> (f64, usize) {
    let config_text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls = false\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [tokens]\nsigning_key = \"signing.pem\"\n[store]\n{store}\n\
         [login]\nusers_file = \"users.toml\"\nmax_failures = 1000000\n"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config_text).unwrap();
    let snapshot = Snapshot::build(Config::load(&path).unwrap()).unwrap();
    // One listener per request-path worker, as `portcullis serve` binds them.
    let listeners = portcullis::run::bind(&ListenerSettings::of(&snapshot.config))
        .await
        .unwrap();
    let shared = Shared::new(snapshot).unwrap();
    let port = listeners.gateway_addr().unwrap().port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(portcullis::server::serve(
        listeners.gateway,
        shared,
        async {
            let _ = stop_rx.await;
        },
    ));

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url = format!("http://127.0.0.1:{port}/api/oauth2/token");
    let deadline = Instant::now() + run_for;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut refresh = post(
                    &client,
                    &url,
                    "grant_type=password&username=bench&password=bench-password".to_owned(),
                )
                .await
                .expect("login");
                let (mut done, mut errors) = (0usize, 0usize);
                while Instant::now() < deadline {
                    match post(
                        &client,
                        &url,
                        format!("grant_type=refresh_token&refresh_token={refresh}"),
                    )
                    .await
                    {
                        Some(next) => {
                            refresh = next;
                            done += 1;
                        }
                        None => errors += 1,
                    }
                }
                (done, errors)
            })
        })
        .collect();
    let started = Instant::now();
    let (mut done, mut errors) = (0, 0);
    for task in tasks {
        let (d, e) = task.await.unwrap();
        done += d;
        errors += e;
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    let _ = server.await;
    (rate, errors)
}

/// POSTs a token request; the new refresh token on success.
async fn post(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &str,
    form: String,
) -> Option<String> {
    let req = http::Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .unwrap();
    let response = client.request(req).await.ok()?;
    if response.status() != 200 {
        return None;
    }
    let body = response.into_body().collect().await.ok()?.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).ok()?;
    json["refresh_token"].as_str().map(str::to_owned)
}

async fn rotate_rate(store: Arc<SessionStore>, callers: usize, run_for: Duration) -> f64 {
    let deadline = Instant::now() + run_for;
    let tasks: Vec<_> = (0..callers)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let sid = format!("bench-{i}");
                let session = Session {
                    sid: sid.clone(),
                    user: "bench".to_owned(),
                    token_id: "0".to_owned(),
                    created_at: 0,
                    expires_at: u64::MAX / 2,
                    access_until: 0,
                };
                store.create(session).await.unwrap();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let next = Rotation {
                        token_id: (n + 1).to_string(),
                        expires_at: u64::MAX / 2,
                        access_until: 0,
                    };
                    store.rotate(&sid, &n.to_string(), next, 0).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let started = Instant::now();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// A `redis-server` child process on a free loopback port, killed on drop.
struct Redis {
    port: u16,
    child: std::process::Child,
}

impl Redis {
    fn start(dir: &std::path::Path) -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { port, child })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
