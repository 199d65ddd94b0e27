//! The command line (SPEC §4.1): one function per subcommand. The only place, with `demo.rs`,
//! that prints to stdout and turns errors into exit code 1.
#![allow(clippy::print_stdout)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::server::signal::{Signal, Signals};
use crate::state::{Shared, Snapshot};

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A reverse-proxy authentication gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `-c FILE`: the configuration file, shared by the commands that read one.
#[derive(Debug, clap::Args)]
struct ConfigArg {
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        env = "PORTCULLIS_CONFIG",
        default_value = "config/portcullis.toml"
    )]
    path: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
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
        /// Names and addresses the certificate is for.
        #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
        hosts: Vec<String>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Validate a configuration and exit 0 (valid) or 1.
    Check {
        #[command(flatten)]
        config: ConfigArg,
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
    /// Load-test a gateway: virtual users log in, call a path, refresh on 401 (SPEC §6).
    Bench(crate::bench::BenchArgs),
}

/// Parses the command line, runs the command, maps failure to exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(&config.path),
        Command::Demo { port } => crate::demo::run(port),
        Command::Init { dir, hosts, force } => crate::init::run(&dir, &hosts, force),
        Command::Check { config } => check(&config.path),
        Command::HashPassword => hash_password(),
        Command::Healthcheck { config, url } => healthcheck(&config.path, url),
        Command::Bench(args) => bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let notices = config.notices.clone();
    Snapshot::build(config)?;
    for notice in notices {
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

fn healthcheck(path: &Path, url: Option<String>) -> anyhow::Result<()> {
    use http_body_util::Empty;
    let url = match url {
        Some(url) => url,
        None => {
            let config = Config::load(path)?;
            let mut admin = config.admin.listen;
            if admin.ip().is_unspecified() {
                admin.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{admin}/readyz")
        }
    };
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("{url:?} is not a URL"))?;
    runtime()?.block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Empty<bytes::Bytes>>();
        let response = tokio::time::timeout(std::time::Duration::from_secs(2), client.get(uri))
            .await
            .with_context(|| format!("{url}: no answer within 2 s"))?
            .with_context(|| format!("{url}: unreachable"))?;
        anyhow::ensure!(response.status() == 200, "{url}: {}", response.status());
        println!("{url}: ok");
        Ok(())
    })
}

fn bench(args: crate::bench::BenchArgs) -> anyhow::Result<()> {
    let json = args.json();
    let plan = crate::bench::Plan::try_from(args)?;
    let report = runtime()?.block_on(crate::bench::run(plan))?;
    if json {
        println!("{}", report.json());
    } else {
        print!("{report}");
    }
    Ok(())
}

fn serve(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    crate::telemetry::init(config.log.format);
    let snapshot = Snapshot::build(config)?;
    runtime()?.block_on(async {
        let listeners = bind(&snapshot).await?;
        let shared = Shared::new(snapshot)?;
        run(shared, listeners, Some(path)).await
    })
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The gateway's and the admin listener.
#[derive(Debug)]
pub(crate) struct Listeners {
    pub(crate) gateway: TcpListener,
    pub(crate) admin: TcpListener,
}

pub(crate) async fn bind(snapshot: &Snapshot) -> anyhow::Result<Listeners> {
    let server = &snapshot.config.server;
    let admin = &snapshot.config.admin;
    Ok(Listeners {
        gateway: TcpListener::bind(server.listen)
            .await
            .with_context(|| format!("server.listen: cannot listen on {}", server.listen))?,
        admin: TcpListener::bind(admin.listen)
            .await
            .with_context(|| format!("admin.listen: cannot listen on {}", admin.listen))?,
    })
}

/// Serves until SIGTERM or SIGINT; SIGHUP reloads `config_path` (when there is one).
pub(crate) async fn run(
    shared: Arc<Shared>,
    listeners: Listeners,
    config_path: Option<&Path>,
) -> anyhow::Result<()> {
    let snapshot = shared.snapshot();
    for notice in &snapshot.config.notices {
        tracing::warn!(key = %notice.key, "{}", notice.problem);
    }
    let scheme = if snapshot.certificate.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(
        listen = %format!("{scheme}://{}", listeners.gateway.local_addr()?),
        admin = %listeners.admin.local_addr()?,
        users = snapshot.users.len(),
        routes = snapshot.config.routes.len(),
        "portcullis ready"
    );
    drop(snapshot);
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    shared.spawn_maintenance();
    tokio::spawn(crate::admin::serve(
        listeners.admin,
        shared.clone(),
        stopped(stop_rx.clone()),
    ));
    let server = tokio::spawn(crate::server::serve(
        listeners.gateway,
        shared.clone(),
        stopped(stop_rx),
    ));
    while signals.recv().await == Signal::Reload {
        match config_path {
            Some(path) => match crate::reload::reload(&shared, path) {
                Ok(()) => tracing::info!(config = %path.display(), "configuration reloaded"),
                Err(e) => tracing::error!(config = %path.display(), "reload refused: {e}"),
            },
            None => tracing::info!("nothing to reload"),
        }
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    server.await.context("server task failed")??;
    Ok(())
}
