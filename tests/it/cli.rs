//! SPEC §4.1: the command line, run as a user would run it (the built binary).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::TempDir;

fn portcullis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

/// `portcullis init [extra…] --dir DIR`.
fn init(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    portcullis()
        .arg("init")
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn init_writes_a_config_that_passes_check_and_refuses_to_overwrite() {
    let dir = TempDir::new();
    let out = init(dir.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("certs/signing.pem"), 0o600);
        assert_eq!(mode("certs/gateway.key"), 0o600);
    }
    let config = dir.path().join("config/portcullis.toml");
    let check = portcullis()
        .arg("check")
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains("note: tokens.issuer") && stdout.contains("RFC 8414"),
        "the default issuer is not an https URL, a note and not an error: {stdout}"
    );

    let before = std::fs::read(dir.path().join("certs/signing.pem")).unwrap();
    let again = init(dir.path(), &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("signing.pem"));
    assert_eq!(
        std::fs::read(dir.path().join("certs/signing.pem")).unwrap(),
        before
    );

    let forced = init(dir.path(), &["--force"]);
    assert!(forced.status.success());
    assert_ne!(
        std::fs::read(dir.path().join("certs/signing.pem")).unwrap(),
        before
    );
}

/// The certificate's common name and validity (`not_before`, `not_after`, Unix seconds).
fn certificate(path: &std::path::Path) -> (String, i64, i64) {
    let pem = std::fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .map(|cn| cn.as_str().unwrap().to_owned())
        .unwrap_or_default();
    let validity = cert.validity();
    (
        cn,
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    )
}

#[test]
fn init_certificate_names_the_first_host_and_is_valid_for_days() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let near = |a: i64, b: i64| (a - b).abs() < 300;
    let dir = TempDir::new();
    let out = init(
        dir.path(),
        &["--hosts", "gw.example.com,127.0.0.1", "--days", "30"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (cn, not_before, not_after) = certificate(&dir.path().join("certs/gateway.crt"));
    assert_eq!(cn, "gw.example.com");
    assert!(near(not_before, now), "not_before {not_before}, now {now}");
    assert!(near(not_after, now + 30 * 86_400), "not_after {not_after}");

    let dir = TempDir::new();
    assert!(init(dir.path(), &[]).status.success());
    let (cn, not_before, not_after) = certificate(&dir.path().join("certs/gateway.crt"));
    assert_eq!(cn, "localhost");
    assert!(near(not_before, now), "not_before {not_before}");
    assert!(
        near(not_after, now + 365 * 86_400),
        "one year by default: {not_after}"
    );

    let dir = TempDir::new();
    assert_eq!(init(dir.path(), &["--days", "0"]).status.code(), Some(2));
}

#[test]
fn check_names_the_key_and_exits_1() {
    let dir = TempDir::new();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[tokens]\naccess_ttl = \"soon\"\n[[routes]]\nupstreams = [\"ftp://x\"]\n",
    )
    .unwrap();
    let out = portcullis()
        .arg("check")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tokens.access_ttl"), "{stderr}");
    assert!(stderr.contains("routes[0].upstreams[0]"), "{stderr}");

    std::fs::write(
        &path,
        "[server]\nlisten_on = 1\n[tokens]\nacces_ttl = \"1m\"\nrefresh_ttl = \"soon\"\n",
    )
    .unwrap();
    let out = portcullis()
        .arg("check")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "server.listen_on: unknown key; did you mean `listen`?",
        "tokens.acces_ttl: unknown key; did you mean `access_ttl`?",
        "tokens.refresh_ttl",
    ] {
        assert!(stderr.contains(expected), "every problem at once: {stderr}");
    }
}

/// `portcullis init`'s folder, its configuration using a Redis store whose URL is the secret
/// file `config/redis-url`; the configuration's path.
fn redis_config(dir: &std::path::Path) -> std::path::PathBuf {
    assert!(init(dir, &[]).status.success());
    let config = dir.join("config/portcullis.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let embedded = "kind = \"embedded\"\npath = \"../data/sessions.db\"";
    assert!(text.contains(embedded), "{text}");
    let text = text.replace(embedded, "kind = \"redis\"\nurl_file = \"redis-url\"");
    std::fs::write(&config, text).unwrap();
    std::fs::write(
        dir.join("config/redis-url"),
        "redis://app:hunter2@127.0.0.1:6379/0\n",
    )
    .unwrap();
    config
}

/// The words of the `--explain` row of `key`.
fn explained<'a>(stdout: &'a str, key: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no row for {key}: {stdout}"))
        .split_whitespace()
        .collect()
}

#[test]
fn check_explain_shows_where_each_value_came_from_and_redacts_secrets() {
    let dir = TempDir::new();
    let config = redis_config(dir.path());
    let out = portcullis()
        .args(["check", "--explain", "-c"])
        .arg(&config)
        .env("PORTCULLIS_TOKENS_ACCESS_TTL", "2m")
        .env("PORTCULLIS_FOO", "set by a wrapper script")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        explained(&stdout, "tokens.access_ttl"),
        [
            "tokens.access_ttl",
            "env",
            "PORTCULLIS_TOKENS_ACCESS_TTL",
            "\"2m\""
        ]
    );
    assert_eq!(
        explained(&stdout, "tokens.refresh_ttl"),
        ["tokens.refresh_ttl", "file", "\"14d\""]
    );
    assert_eq!(
        explained(&stdout, "tokens.leeway"),
        ["tokens.leeway", "default", "\"30s\""]
    );
    let secret = dir.path().join("config/redis-url").display().to_string();
    assert_eq!(
        explained(&stdout, "store.url"),
        [
            "store.url",
            "file",
            &secret,
            "\"redis://app:***@127.0.0.1:6379/0\""
        ]
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(
        !stdout.contains("login.users "),
        "users_file is a path, not a secret's file: {stdout}"
    );
    // Plain columns: every row's source starts where the header's does.
    let column = stdout.lines().next().unwrap().find("SOURCE").unwrap();
    for line in stdout.lines().take_while(|l| !l.starts_with("note:")) {
        assert!(
            line.len() > column && line.as_bytes()[column - 1] == b' ',
            "{line:?}"
        );
    }
    assert!(
        stdout.contains("note: PORTCULLIS_FOO: names no configuration key"),
        "a variable that names no key is a note, not an error: {stdout}"
    );
    assert!(stdout.trim_end().ends_with(": ok"), "{stdout}");
}

#[test]
fn check_names_a_bad_value_from_the_environment_by_key_and_variable() {
    let dir = TempDir::new();
    let config = redis_config(dir.path());
    let check = |vars: &[(&str, &str)]| {
        let out = portcullis()
            .args(["check", "-c"])
            .arg(&config)
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = check(&[("PORTCULLIS_TOKENS_ACCESS_TTL", "soon")]);
    assert!(
        stderr.contains("tokens.access_ttl (from PORTCULLIS_TOKENS_ACCESS_TTL): \"soon\""),
        "{stderr}"
    );
    // Found when the key is loaded, after validation: named the same way.
    let stderr = check(&[("PORTCULLIS_TOKENS_SIGNING_KEY", "/nonexistent/signing.pem")]);
    assert!(
        stderr.contains("tokens.signing_key (from PORTCULLIS_TOKENS_SIGNING_KEY)"),
        "{stderr}"
    );
    // A secret file that cannot be read: its key and path, never a secret.
    let stderr = check(&[("PORTCULLIS_STORE_URL_FILE", "/nonexistent/redis-url")]);
    assert!(
        stderr.contains(
            "store.url_file (from PORTCULLIS_STORE_URL_FILE): cannot read /nonexistent/redis-url"
        ),
        "{stderr}"
    );
    let stderr = check(&[("PORTCULLIS_STORE_URL", "redis://app:hunter2@127.0.0.1")]);
    assert!(
        stderr.contains("store.url_file: url is set too"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn check_refuses_a_signing_key_others_can_read() {
    let dir = TempDir::new();
    let init = init(dir.path(), &[]);
    assert!(init.status.success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join("certs/signing.pem");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = portcullis()
            .arg("check")
            .arg("-c")
            .arg(dir.path().join("config/portcullis.toml"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("tokens.signing_key") && stderr.contains("chmod 600"),
            "{stderr}"
        );
    }
}

#[test]
fn hash_password_prints_an_argon2id_phc_string_of_stdin() {
    let mut child = portcullis()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"pa ss\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap();
    let phc = phc.trim_end();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    let parsed = argon2::PasswordHash::new(phc).unwrap();
    use argon2::PasswordVerifier as _;
    assert!(argon2::Argon2::default()
        .verify_password(b"pa ss", &parsed)
        .is_ok());
    assert!(argon2::Argon2::default()
        .verify_password(b"pa ss\n", &parsed)
        .is_err());
}

/// A bare `portcullis sessions list` needs no configuration (no users file, no keys): it
/// talks to the default admin address.
#[test]
fn sessions_without_a_configuration_use_the_default_admin_address() {
    let dir = TempDir::new();
    let out = portcullis()
        .args(["sessions", "list"])
        .current_dir(dir.path())
        .env_remove("PORTCULLIS_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Nothing is expected to listen on 9901 here; if something does, it answered.
    assert!(
        out.status.success() || stderr.contains("http://127.0.0.1:9901/admin/sessions: "),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot read"), "{stderr}");
}

/// Without `-c`, `PORTCULLIS_ADMIN_LISTEN` says where the admin listener is, like the key would.
#[test]
fn sessions_take_the_admin_address_from_the_environment() {
    let dir = TempDir::new();
    let sessions = |listen: &str| {
        let out = portcullis()
            .args(["sessions", "list"])
            .current_dir(dir.path())
            .env_remove("PORTCULLIS_CONFIG")
            .env("PORTCULLIS_ADMIN_LISTEN", listen)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let stderr = sessions("127.0.0.1:1");
    assert!(
        stderr.contains("http://127.0.0.1:1/admin/sessions: "),
        "{stderr}"
    );
    let stderr = sessions("nowhere");
    assert!(
        stderr.contains("admin.listen (from PORTCULLIS_ADMIN_LISTEN)"),
        "{stderr}"
    );
}

/// The demo's printed walk-through, pasted into bash, works verbatim.
#[test]
fn demo_walkthrough_works_when_pasted() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut demo = portcullis()
        .args(["demo", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = demo.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut script = String::new();
        let mut inside = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("--- portcullis demo walk-through ---") {
                inside = true;
            }
            if inside {
                script.push_str(&line);
                script.push('\n');
            }
            if line.contains("--- end ---") {
                inside = false;
                let _ = tx.send(std::mem::take(&mut script));
            }
        }
    });
    let script = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the demo prints its walk-through");

    let started = Instant::now();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let _ = demo.kill();
    let _ = demo.wait();
    assert!(started.elapsed() < Duration::from_secs(60));
    let text = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("\"x-auth-user\": \"demo\""),
        "proxied call: {text}"
    );
    assert!(
        text.contains("www-authenticate: Bearer realm=\"portcullis\""),
        "{text}"
    );
    assert!(
        text.contains("The access token has been revoked"),
        "after logout: {text}"
    );
    assert_eq!(
        text.matches("\"access_token\"").count(),
        2,
        "login and refresh: {text}"
    );
    assert!(
        script.contains("ADMIN=\"http://127.0.0.1:") && text.contains("{\"sessions\":["),
        "the walk-through names the admin listener and reaches it: {script}\n{text}"
    );
}

/// A gateway that accepts the connection and never answers is unhealthy within the 2 s
/// `healthcheck --help` promises, inside the Dockerfile's 3 s `HEALTHCHECK --timeout`.
#[test]
fn healthcheck_gives_up_on_a_silent_listener_within_two_seconds() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/readyz", listener.local_addr().unwrap());
    // Accepted by the kernel backlog; nobody ever reads or answers.
    let start = Instant::now();
    let out = portcullis()
        .args(["healthcheck", "--url", &url])
        .output()
        .unwrap();
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_millis(2900),
        "gave up after {took:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no answer within 2 s"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(listener);
}

/// The help texts and the starter configuration speak to users, who do not have the
/// project's SPEC.md.
#[test]
fn help_texts_cite_no_internal_document() {
    let commands = [
        "",
        "serve",
        "demo",
        "init",
        "check",
        "hash-password",
        "healthcheck",
        "sessions",
        "bench",
        "completions",
        "man",
    ];
    for command in commands {
        let args: Vec<&str> = command.split_whitespace().chain(["--help"]).collect();
        let out = portcullis().args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}");
        assert!(!text.contains("SPEC"), "{args:?}: {text}");
    }
    let dir = TempDir::new();
    assert!(init(dir.path(), &[]).status.success());
    let starter = std::fs::read_to_string(dir.path().join("config/portcullis.toml")).unwrap();
    assert!(!starter.contains("SPEC"), "{starter}");
}

/// Piped into a reader that stops early (`portcullis man | head`), the generated texts end
/// quietly with success, as Unix tools do: no panic, no error line.
#[test]
fn generated_texts_end_quietly_when_the_reader_goes_away() {
    for args in [
        &["completions", "bash"][..],
        &["completions", "zsh"],
        &["man"],
    ] {
        let mut child = portcullis()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Gone before the first byte is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

/// `portcullis completions SHELL` and `portcullis man` print scripts and a page generated from
/// the command line itself: each names the subcommands.
#[test]
fn completions_and_the_man_page_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = portcullis().args(["completions", shell]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}: {out:?}");
        for sub in ["serve", "hash-password", "sessions", "bench"] {
            assert!(text.contains(sub), "{shell} completion lacks {sub}: {text}");
        }
    }
    let out = portcullis().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );

    let out = portcullis().arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        page.starts_with(".ie") || page.contains(".TH portcullis"),
        "{page}"
    );
    for sub in ["serve", "check", "hash\\-password", "sessions"] {
        assert!(page.contains(sub), "man page lacks {sub}: {page}");
    }
}
