//! SPEC §4.4, the logs: with `[log] format = "json"` every line is JSON, a fatal start-up error
//! included; the access log's fields (bytes in and out, user agent, host, protocol, TLS
//! version, client) and `log.access_fields`, which chooses and orders them.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Request;
use serde_json::Value;

use crate::support::child::ChildGateway;
use crate::support::upstream::MockUpstream;
use crate::support::{
    captured_logs, empty, full, gateway, material, send_to, write_config, Options, TempDir,
};

/// One public route `/` → the upstream.
const PUBLIC: &str = "[[routes]]\nname = \"pub\"\npath_prefix = \"/\"\nauth = \"public\"\n\
    upstreams = [\"http://{upstream}\"]\n";

/// Runs `portcullis serve -c config` with `env`, which must fail within 30 s; its stderr.
fn failed_serve(config: &Path, env: &[(&str, &str)]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .arg("-c")
        .arg(config)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("portcullis serve did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(1), "exit code");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that `stderr` is JSON lines only and that one of them is the fatal error, naming
/// `key`; returns that line.
fn assert_json_error(stderr: &str, key: &str) -> Value {
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    assert!(lines.iter().all(Value::is_object), "{stderr}");
    let error = lines
        .iter()
        .find(|l| l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no ERROR line in {stderr}"))
        .clone();
    assert!(error["timestamp"].is_string(), "{error}");
    assert!(error["message"].is_string(), "{error}");
    let text = error["error"].as_str().unwrap_or_default();
    assert!(text.contains(key), "the error names {key}: {error}");
    error
}

#[test]
fn with_json_logs_a_failed_start_is_a_json_line() {
    let options = Options::with_routes(PUBLIC);
    let unused = "127.0.0.1:9".parse().unwrap();

    // The listen address is taken: the configuration is fine, binding fails.
    let dir = TempDir::new();
    let path = write_config(dir.path(), unused, &options);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{}\"", busy.local_addr().unwrap()),
        1,
    );
    std::fs::write(&path, text).unwrap();
    let error = assert_json_error(&failed_serve(&path, &[]), "server.listen");
    assert!(
        error["error"].as_str().unwrap().contains("in use"),
        "the cause is kept: {error}"
    );

    // A key file is missing: found when the key material loads.
    let dir = TempDir::new();
    let path = write_config(dir.path(), unused, &options);
    std::fs::remove_file(dir.path().join("gateway.key")).unwrap();
    assert_json_error(&failed_serve(&path, &[]), "server.tls_key");

    // The configuration itself is refused: its `log.format` is still read.
    let dir = TempDir::new();
    let bad = Options {
        tokens: "access_ttl = \"soon\"",
        ..Options::with_routes(PUBLIC)
    };
    let path = write_config(dir.path(), unused, &bad);
    assert_json_error(&failed_serve(&path, &[]), "tokens.access_ttl");

    // No file at all: the environment says JSON.
    let missing = dir.path().join("missing.toml");
    let stderr = failed_serve(&missing, &[("PORTCULLIS_LOG_FORMAT", "json")]);
    assert_json_error(&stderr, "missing.toml");
    // Without the hint it stays the plain text of old.
    let stderr = failed_serve(&missing, &[]);
    assert!(stderr.starts_with("error: "), "{stderr}");
}

/// A client of `https://localhost` speaking HTTP/1.1 only, over TLS 1.2 only.
fn http1_tls12_client() -> hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::combinators::BoxBody<bytes::Bytes, hyper::Error>,
> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(material().cert_pem.as_bytes());
    roots.add(cert.unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

/// The JSON access line of request `id` that `gw` wrote.
async fn access_line(gw: &ChildGateway, id: &str) -> Value {
    let needle = format!("\"request_id\":\"{id}\"");
    let line = gw
        .stderr_line(|l| l.contains("\"target\":\"access\"") && l.contains(&needle))
        .await;
    serde_json::from_str(&line).unwrap()
}

#[tokio::test]
async fn the_json_access_line_counts_bytes_and_names_protocol_and_tls() {
    let upstream = MockUpstream::start().await;
    let dir = TempDir::new();
    let path = write_config(dir.path(), upstream.addr, &Options::with_routes(PUBLIC));
    let gw = ChildGateway::start(&path);

    // HTTP/1.1 over TLS 1.2, a POST with a body; secrets in the query and headers.
    let body = vec![b'x'; 1000];
    let req = Request::post("/upload?access_token=query-secret")
        .header("x-request-id", "h1-upload")
        .header("user-agent", "logs-test/1.0")
        .header("authorization", "Bearer header-secret")
        .header("cookie", "session=cookie-secret")
        .body(full(body))
        .unwrap();
    let reply = send_to(&http1_tls12_client(), gw.port, req).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.version, http::Version::HTTP_11);
    let line = access_line(&gw, "h1-upload").await;
    assert_eq!(line["method"], "POST", "{line}");
    assert_eq!(line["path"], "/upload", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["protocol"], "HTTP/1.1", "{line}");
    assert_eq!(line["tls_version"], "TLSv1.2", "{line}");
    assert_eq!(line["bytes_in"], 1000, "{line}");
    assert_eq!(line["bytes_out"], reply.body.len(), "{line}");
    assert_eq!(line["user_agent"], "logs-test/1.0", "{line}");
    assert_eq!(line["host"], "localhost", "{line}");
    assert_eq!(line["client"], "127.0.0.1", "{line}");
    assert_eq!(line["route"], "pub", "{line}");
    let text = line.to_string();
    for secret in ["query-secret", "header-secret", "cookie-secret"] {
        assert!(!text.contains(secret), "{secret} logged: {text}");
    }

    // HTTP/2 over TLS 1.3, a streamed download; an overlong user agent is cut.
    let long_agent = "a".repeat(400);
    let req = Request::get("/download/200000")
        .header("x-request-id", "h2-download")
        .header("user-agent", long_agent.as_str())
        .body(empty())
        .unwrap();
    let reply = send_to(&crate::support::tls_client(true), gw.port, req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.body.len(), 200_000);
    let line = access_line(&gw, "h2-download").await;
    assert_eq!(line["protocol"], "HTTP/2", "{line}");
    assert_eq!(line["tls_version"], "TLSv1.3", "{line}");
    assert_eq!(line["bytes_in"], 0, "{line}");
    assert_eq!(line["bytes_out"], 200_000, "{line}");
    assert_eq!(line["user_agent"], "a".repeat(256), "{line}");
    assert_eq!(line["host"], "localhost", "{line}");

    // Answered by the gateway itself: its own body is counted the same way.
    let req = Request::get("/.well-known/jwks.json")
        .header("x-request-id", "own-answer")
        .body(empty())
        .unwrap();
    let reply = send_to(&crate::support::tls_client(false), gw.port, req).await;
    assert_eq!(reply.status, 200);
    let line = access_line(&gw, "own-answer").await;
    assert_eq!(line["bytes_out"], reply.body.len(), "{line}");
    assert!(line.get("upstream").is_none(), "{line}");
}

#[tokio::test]
async fn access_fields_choose_and_order_the_fields() {
    let logs = captured_logs();
    let options = Options {
        log: "access_fields = [\"status\", \"method\", \"user_agent\", \"bytes_in\"]",
        ..Options::with_routes(PUBLIC)
    };
    let (_upstream, gw) = gateway(options).await;
    // `/upload` reads the whole body before it answers, so all of it has been read from the
    // client when the line is written (an upstream that answers first may leave it unread).
    let req = Request::post("/upload")
        .header("user-agent", "fields-test-agent")
        .body(full("four"))
        .unwrap();
    assert_eq!(gw.send(req).await.status, 200);
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains(" access: ") && l.contains("fields-test-agent"))
        .unwrap_or_else(|| panic!("no access line in\n{text}"));
    let fields = line.split(" access: ").nth(1).unwrap();
    assert_eq!(
        fields, "status=200 method=POST user_agent=\"fields-test-agent\" bytes_in=4",
        "only the chosen fields, in their order"
    );
}

#[test]
fn an_unknown_access_field_is_refused_with_its_key() {
    let dir = TempDir::new();
    let options = Options {
        log: "access_fields = [\"status\", \"user_agnet\", \"nonsense\"]",
        ..Options::with_routes(PUBLIC)
    };
    let path = write_config(dir.path(), "127.0.0.1:9".parse().unwrap(), &options);
    let errors = portcullis::config::Config::load(&path).unwrap_err();
    let issues: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    assert!(
        issues
            .iter()
            .any(|i| i.starts_with("log.access_fields[1]: ")
                && i.contains("did you mean `user_agent`?")),
        "{issues:?}"
    );
    assert!(
        issues
            .iter()
            .any(|i| i.starts_with("log.access_fields[2]: ") && i.contains("\"nonsense\"")),
        "{issues:?}"
    );
}

/// With no usable root certificate in the system's store (`SSL_CERT_FILE` names an empty
/// file), an `https://` upstream without `upstream_ca` and a `rediss://` store without
/// `store.ca` could never be verified: `check` says so, naming the keys.
#[test]
fn an_empty_system_trust_store_is_noted_for_tls_upstreams() {
    let dir = TempDir::new();
    let options = Options {
        store: "kind = \"redis\"\nurl = \"rediss://127.0.0.1:6379/0\"".to_owned(),
        routes: "[[routes]]\nname = \"plain\"\npath_prefix = \"/plain\"\n\
                 upstreams = [\"http://{upstream}\"]\n\n\
                 [[routes]]\nname = \"tls\"\npath_prefix = \"/\"\n\
                 upstreams = [\"https://{upstream}\"]\n"
            .to_owned(),
        ..Options::default()
    };
    let path = write_config(dir.path(), "127.0.0.1:9".parse().unwrap(), &options);
    let empty_store = dir.path().join("no-roots.pem");
    std::fs::write(&empty_store, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check")
        .arg("-c")
        .arg(&path)
        .env("SSL_CERT_FILE", &empty_store)
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("note: routes[1].upstreams: "), "{stdout}");
    assert!(!stdout.contains("routes[0].upstreams"), "{stdout}");
    assert!(stdout.contains("note: store.url: "), "{stdout}");

    // With the system's roots (when this machine has any) there is nothing to say.
    if rustls_native_certs::load_native_certs().certs.is_empty() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        !stdout.contains("upstreams") && !stdout.contains("store.url"),
        "{stdout}"
    );
}
