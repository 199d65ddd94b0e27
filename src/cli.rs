//! The command line (SPEC §4.1): the gateway's subcommands and one function per subcommand. The
//! only place in the library, with `demo.rs`, that prints to stdout and turns errors into exit
//! code 1. Serving (the runtime, the listeners, signals and reloads) is `run.rs`'s; the top level
//! (`portcullis --version`) and `portcullis bench` are the binary's (`main.rs`).
#![allow(clippy::print_stdout)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::state::Snapshot;

/// `-c FILE`: the configuration file, shared by the commands that read one.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        env = "PORTCULLIS_CONFIG",
        default_value = "config/portcullis.toml"
    )]
    path: PathBuf,
}

/// The gateway's commands; `main.rs` adds `bench` beside them.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Zero set-up demo on https://127.0.0.1:8443 with an echo upstream and a printed walk-through.
    Demo {
        #[arg(long, default_value_t = 8443)]
        port: u16,
    },
    /// Write a certificate, a signing key and a starter configuration under DIR.
    Init {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Names and addresses the certificate is for; the first is its common name (CN).
        #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
        hosts: Vec<String>,
        /// How many days the certificate is valid, from now.
        #[arg(long, default_value_t = crate::keygen::CERT_DAYS,
              value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Validate a configuration and exit 0 (valid) or 1.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Also list every key with its value and where it came from (the file, an environment
        /// variable, a secret's file, or the default); secrets are redacted.
        #[arg(long)]
        explain: bool,
    },
    /// Read a password on stdin and print its argon2id PHC string.
    HashPassword,
    /// Exit 0 if the gateway's admin `/readyz` answers 200 within 2 s, else 1 (for container
    /// health checks).
    Healthcheck {
        #[command(flatten)]
        config: ConfigArg,
        /// Check this URL instead of the configuration's `admin.listen`.
        #[arg(long)]
        url: Option<String>,
    },
    /// List or revoke sessions through a running gateway's admin listener.
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List the live sessions (all, or one user's).
    List {
        #[arg(long)]
        user: Option<String>,
        /// Print the admin API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArg,
    },
    /// Revoke one session (--sid) or every session of a user (--user).
    Revoke {
        #[arg(long, required_unless_present = "user", conflicts_with = "user")]
        sid: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        admin: AdminArg,
    },
}

/// Which gateway's admin listener to talk to: `--admin URL`, else the `admin.listen` of the
/// configuration given with `-c` (only that key is read, and `PORTCULLIS_ADMIN_LISTEN` wins
/// over it), else `PORTCULLIS_ADMIN_LISTEN`, else the default `127.0.0.1:9901`.
#[derive(Debug, clap::Args)]
pub struct AdminArg {
    /// A configuration to take `admin.listen` from (nothing else in it is read or checked).
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        env = "PORTCULLIS_CONFIG"
    )]
    config: Option<PathBuf>,
    /// The admin listener's base URL [default: from -c FILE or PORTCULLIS_ADMIN_LISTEN, else
    /// http://127.0.0.1:9901].
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
}

impl AdminArg {
    fn base_url(&self) -> anyhow::Result<String> {
        match (&self.admin, &self.config) {
            (Some(url), _) => Ok(url.trim_end_matches('/').to_owned()),
            (None, Some(path)) => admin_base_url(path),
            (None, None) => Ok(admin_url(Config::env_admin_listen()?)),
        }
    }
}

/// Runs `command` and maps failure to exit code 1.
pub fn run(command: Command) -> ExitCode {
    exit_code(match command {
        Command::Serve { config } => crate::run::serve_file(&config.path).map_err(Into::into),
        Command::Demo { port } => crate::demo::run(port),
        Command::Init {
            dir,
            hosts,
            days,
            force,
        } => crate::init::run(
            &dir,
            &crate::init::CertRequest {
                hosts: &hosts,
                days,
            },
            force,
        ),
        Command::Check { config, explain } => check(&config.path, explain),
        Command::HashPassword => hash_password(),
        Command::Healthcheck { config, url } => healthcheck(&config.path, url),
        Command::Sessions(command) => sessions(&command),
    })
}

/// Exit code 0, or 1 with the error and its causes on stderr: `error: …` as plain text, or, once
/// `portcullis serve` has installed JSON logging, one JSON line (`message`, `error`) like every
/// other line it writes.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if crate::telemetry::fatal_as_json() => {
            crate::telemetry::fatal(&format!("{e:#}"));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &Path, explain: bool) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let settings = config.settings.clone();
    // Building the snapshot may add notices (a TLS client with no root to trust).
    let snapshot = Snapshot::build(config)?;
    if explain {
        let rows: Vec<[String; 3]> = settings
            .iter()
            .map(|s| [s.key.clone(), s.source.to_string(), s.value.clone()])
            .collect();
        print!("{}", table(["KEY", "SOURCE", "VALUE"], &rows));
    }
    for notice in &snapshot.config.notices {
        println!("note: {notice}");
    }
    println!("{}: ok", path.display());
    Ok(())
}

fn hash_password() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the password from stdin")?;
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    println!("{}", crate::login::hash_password(password.as_bytes()));
    Ok(())
}

/// `http://<admin.listen>` of the configuration at `path`, reading only that key (so a missing
/// users file or key does not stand in the way of talking to a running gateway).
fn admin_base_url(path: &Path) -> anyhow::Result<String> {
    Ok(admin_url(Config::load_admin_listen(path)?))
}

/// `http://<admin>`, loopback for a wildcard address.
fn admin_url(mut admin: std::net::SocketAddr) -> String {
    if admin.ip().is_unspecified() {
        admin.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{admin}")
}

/// How long `portcullis healthcheck` waits for `/readyz`: less than the Dockerfile's
/// `HEALTHCHECK --timeout=3s`, so the check reports its own failure.
const HEALTHCHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long `portcullis sessions` waits for the admin listener.
const ADMIN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Sends `method url` to an admin listener; the status and body, within `wait`.
fn admin_request(
    method: http::Method,
    url: &str,
    wait: std::time::Duration,
) -> anyhow::Result<(http::StatusCode, Vec<u8>)> {
    use http_body_util::{BodyExt, Empty};
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("{url:?} is not a URL"))?;
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Empty::<bytes::Bytes>::new())?;
    crate::run::runtime()?.block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Empty<bytes::Bytes>>();
        tokio::time::timeout(wait, async {
            let response = client
                .request(request)
                .await
                .with_context(|| format!("{url}: unreachable"))?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok((status, body.to_vec()))
        })
        .await
        .with_context(|| format!("{url}: no answer within {} s", wait.as_secs()))?
    })
}

fn healthcheck(path: &Path, url: Option<String>) -> anyhow::Result<()> {
    let url = match url {
        Some(url) => url,
        None => format!("{}/readyz", admin_base_url(path)?),
    };
    let (status, _) = admin_request(http::Method::GET, &url, HEALTHCHECK_WAIT)?;
    anyhow::ensure!(status == 200, "{url}: {status}");
    println!("{url}: ok");
    Ok(())
}

fn sessions(command: &SessionsCommand) -> anyhow::Result<()> {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let segment = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let (method, url, json) = match command {
        SessionsCommand::List { user, json, admin } => {
            let query = user
                .as_deref()
                .map(|u| format!("?user={}", segment(u)))
                .unwrap_or_default();
            let url = format!("{}/admin/sessions{query}", admin.base_url()?);
            (http::Method::GET, url, *json)
        }
        SessionsCommand::Revoke { sid, user, admin } => {
            let path = match (sid, user) {
                (Some(sid), _) => format!("/admin/sessions/{}", segment(sid)),
                (None, Some(user)) => format!("/admin/users/{}/sessions", segment(user)),
                (None, None) => anyhow::bail!("--sid or --user is required"),
            };
            (http::Method::DELETE, admin.base_url()? + &path, true)
        }
    };
    let (status, body) = admin_request(method, &url, ADMIN_WAIT)?;
    let text = String::from_utf8_lossy(&body);
    anyhow::ensure!(status.is_success(), "{url}: {status}: {text}");
    if json {
        println!("{text}");
        return Ok(());
    }
    let listed: serde_json::Value =
        serde_json::from_slice(&body).with_context(|| format!("{url}: not JSON"))?;
    let at = |v: &serde_json::Value| {
        let secs = v.as_u64().unwrap_or(0);
        crate::token::issue::rfc3339_7(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    };
    let rows: Vec<[String; 4]> = listed["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            [
                s["sid"]
                    .as_str()
                    .unwrap_or_default()
                    .escape_debug()
                    .to_string(),
                s["user"]
                    .as_str()
                    .unwrap_or_default()
                    .escape_debug()
                    .to_string(),
                at(&s["created_at"]),
                at(&s["expires_at"]),
            ]
        })
        .collect();
    print!("{}", table(["SID", "USER", "CREATED", "EXPIRES"], &rows));
    Ok(())
}

/// `header` and `rows` as text columns two spaces apart, each as wide as its widest cell.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; N]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_are_as_wide_as_their_widest_cell() {
        let rows = [
            [
                "a-very-long-session-id".to_owned(),
                "bob".to_owned(),
                "x".to_owned(),
            ],
            [
                "s2".to_owned(),
                "ålice-with-a-long-name".to_owned(),
                "y".to_owned(),
            ],
        ];
        let text = table(["SID", "USER", "EXPIRES"], &rows);
        assert_eq!(
            text,
            "SID                     USER                    EXPIRES\n\
             a-very-long-session-id  bob                     x\n\
             s2                      ålice-with-a-long-name  y\n"
        );
    }
}
