//! SPEC §4.4, the logs: with `[log] format = "json"` every line is JSON, a fatal start-up error
//! included.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{write_config, Options, TempDir};

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
