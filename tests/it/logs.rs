//! SPEC §4.4, the logs: what the gateway warns about at start and reload.

use std::process::Command;

use crate::support::{write_config, Options, TempDir};

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
