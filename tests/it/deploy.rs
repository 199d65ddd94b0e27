//! SPEC §4.5: the compose deployment. Its configurations (`deploy/`) work with the files
//! `portcullis init --dir deploy` writes, laid out as the compose files mount them.

use std::path::Path;
use std::process::Command;

use crate::support::TempDir;

fn repo(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(args: &[&str], config_dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(config_dir)
        .output()
        .unwrap()
}

#[test]
fn the_compose_configs_pass_check_with_the_files_init_writes() {
    // deploy/ as the README has it made: `init --dir deploy`, next to the committed configs.
    let dir = TempDir::new();
    let out = run(&["init", "--dir", "."], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["portcullis.toml", "cluster.toml"] {
        std::fs::write(dir.path().join(name), repo(&format!("deploy/{name}"))).unwrap();
        let check = run(&["check", "-c", name], dir.path());
        assert!(
            check.status.success(),
            "deploy/{name}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }

    // The cluster configuration is the same but for its store: Redis, as the compose file names
    // it.
    let mut single: toml::Table = repo("deploy/portcullis.toml").parse().unwrap();
    let mut cluster: toml::Table = repo("deploy/cluster.toml").parse().unwrap();
    let store = cluster.remove("store").expect("[store]");
    assert_eq!(store["kind"].as_str(), Some("redis"));
    assert_eq!(store["url"].as_str(), Some("redis://redis:6379/0"));
    single.remove("store");
    assert_eq!(
        cluster, single,
        "deploy/cluster.toml drifted from portcullis.toml"
    );

    // The compose files mount deploy/ where these configurations expect their files.
    for (file, config) in [
        ("docker-compose.yml", "/etc/portcullis/portcullis.toml"),
        ("docker-compose.cluster.yml", "/etc/portcullis/cluster.toml"),
    ] {
        let text = repo(file);
        assert!(text.contains("./deploy:/etc/portcullis:ro"), "{file}");
        assert!(
            text.contains(&format!("PORTCULLIS_CONFIG: {config}")),
            "{file}"
        );
        assert!(
            text.contains(r#"test: ["CMD", "/usr/local/bin/portcullis", "healthcheck"]"#),
            "{file}"
        );
    }
}

/// The image's runtime stage has the CA roots that `https://` upstreams and `rediss://` stores
/// with a public CA verify against (the gateway reads the system roots).
#[test]
fn the_runtime_image_has_ca_certificates() {
    let dockerfile = repo("Dockerfile");
    let runtime = dockerfile
        .rsplit_once("\nFROM ")
        .map(|(_, stage)| stage)
        .expect("a multi-stage Dockerfile");
    assert!(
        runtime.contains("apt-get install -y --no-install-recommends ca-certificates"),
        "{runtime}"
    );
}

/// `deploy/portcullis.service` runs the binary's `serve` and keeps the hardening the README
/// promises.
#[test]
fn the_systemd_unit_serves_hardened() {
    let unit = repo("deploy/portcullis.service");
    let mut service = std::collections::HashMap::new();
    let mut section = "";
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if let Some((key, value)) = line.split_once('=') {
            if section == "[Service]" && !line.starts_with('#') {
                service.insert(key.trim(), value.trim());
            }
        }
    }
    let exec = service["ExecStart"];
    let mut words = exec.split_whitespace();
    assert!(words.next().unwrap().ends_with("/portcullis"), "{exec}");
    assert_eq!(words.collect::<Vec<_>>(), ["serve"], "{exec}");
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "portcullis"),
    ] {
        assert_eq!(service.get(key), Some(&value), "[Service] {key}");
    }
    assert!(
        unit.contains("[Install]\nWantedBy=multi-user.target"),
        "{unit}"
    );
}

/// The image is labelled with its version (checked against the binary's when given) and keeps
/// its health check; the README builds it with that version.
#[test]
fn the_image_is_labelled_with_its_version() {
    let dockerfile = repo("Dockerfile");
    let (_, runtime) = dockerfile.rsplit_once("\nFROM ").unwrap();
    assert!(
        runtime.contains("ARG VERSION\n")
            && runtime.contains("org.opencontainers.image.version=\"${VERSION}\""),
        "{runtime}"
    );
    assert!(
        runtime.contains("HEALTHCHECK ") && runtime.contains("\"healthcheck\"]"),
        "{runtime}"
    );
    assert!(
        runtime.contains("test -s /etc/ssl/certs/ca-certificates.crt"),
        "the trust store is checked in the built stage: {runtime}"
    );
    let build = dockerfile.split("\nFROM ").nth(1).unwrap();
    assert!(
        build.contains("test \"$(/out/portcullis --version)\" = \"portcullis $VERSION\""),
        "{build}"
    );
    let command = "docker build --build-arg VERSION=\"$(sed -n 's/^version = \"\\(.*\\)\"/\\1/p' \
                   Cargo.toml | head -n 1)\" -t portcullis .";
    assert!(
        repo("README.md").contains(command),
        "the README builds with {command}"
    );
    // That command's VERSION is the package's.
    let sed = Command::new("sh")
        .arg("-c")
        .arg("sed -n 's/^version = \"\\(.*\\)\"/\\1/p' Cargo.toml | head -n 1")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sed.stdout).trim(),
        env!("CARGO_PKG_VERSION")
    );
}

/// What the image's CA certificates are for: an `https://` upstream whose certificate chains to
/// a CA in the system's trust store (here the file `SSL_CERT_FILE` names, as
/// `/etc/ssl/certs/ca-certificates.crt` is in the image) is verified with no `upstream_ca`.
#[tokio::test]
async fn an_https_upstream_is_verified_against_the_system_trust_store() {
    use crate::support::{child::ChildGateway, upstream::MockUpstream, write_config, Options};
    let (upstream, ca_pem) = MockUpstream::start_tls_with_own_ca().await;
    let port = upstream.addr.port();
    let dir = TempDir::new();
    let routes = format!(
        "[[routes]]\nname = \"public-ca\"\npath_prefix = \"/\"\nauth = \"public\"\n\
         upstreams = [\"https://localhost:{port}\"]\n"
    );
    let options = Options::with_routes(&routes);
    let config = write_config(dir.path(), upstream.addr, &options);
    let store = dir.path().join("system-roots.pem");
    std::fs::write(&store, ca_pem).unwrap();
    let store = store.to_str().unwrap();
    let gw = ChildGateway::start_with_env(&config, &[("SSL_CERT_FILE", store)]);
    let req = http::Request::get("/through")
        .body(crate::support::empty())
        .unwrap();
    let reply = crate::support::send_to(&crate::support::tls_client(false), gw.port, req).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(upstream.last().uri.path(), "/through");
}
