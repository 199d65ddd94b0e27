//! `portcullis demo`: zero set-up. Generates a certificate, a signing key and user `demo` with a
//! random password in a temporary folder, starts an echo upstream and the gateway on
//! `https://127.0.0.1:PORT`, and prints a curl walk-through that works when pasted.
#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::init::{self, Layout};
use crate::server::signal::Signals;

pub(crate) fn run(port: u16) -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    crate::run::runtime()?.block_on(async {
        let upstream = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot start the echo upstream")?;
        let upstream_addr = upstream.local_addr()?;
        tokio::spawn(echo_upstream(upstream));

        let layout = Layout::new(dir.path());
        let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
        init::write(
            &layout,
            &init::CertRequest {
                hosts: &hosts,
                days: crate::keygen::CERT_DAYS,
            },
        )?;
        let password = init::random_password();
        crate::keygen::write_private(
            &layout.users,
            init::users_toml("demo", &password, &["user"]).as_bytes(),
        )?;
        std::fs::write(&layout.config, demo_config(port, upstream_addr.port()))?;
        let snapshot = crate::run::first_snapshot(&layout.config)?;
        let (shared, listeners) =
            crate::run::start(snapshot, crate::clock::Clock::system()).await?;
        let admin = listeners
            .admin
            .local_addr()
            .context("cannot read the admin listener's address")?;
        let signals = Signals::install().context("cannot install signal handlers")?;
        // A closed stdout (the reader went away) must not take the gateway down.
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}",
            walkthrough(port, admin, &layout.cert, &password)
        );
        crate::run::serve(shared, listeners, signals, layout.config.clone()).await?;
        Ok(())
    })
}

fn demo_config(port: u16, upstream_port: u16) -> String {
    format!(
        r#"# written by `portcullis demo`
[server]
listen = "127.0.0.1:{port}"
tls_cert = "../certs/gateway.crt"
tls_key = "../certs/gateway.key"

[admin]
listen = "127.0.0.1:0"

[tokens]
signing_key = "../certs/signing.pem"

[store]
path = "../data/sessions.db"

[login]
users_file = "users.toml"

[[routes]]
name = "echo"
path_prefix = "/"
upstreams = ["http://127.0.0.1:{upstream_port}"]
auth = "required"
"#
    )
}

fn walkthrough(port: u16, admin: std::net::SocketAddr, ca: &Path, password: &str) -> String {
    let base = format!("https://127.0.0.1:{port}");
    let admin = format!("http://{admin}");
    let ca = ca.display();
    format!(
        r#"
portcullis demo is running on {base} (user "demo", password "{password}"),
its admin listener (/metrics, /readyz, sessions) on {admin}.
An echo upstream stands behind it. Paste these commands into another shell (bash or zsh):

# --- portcullis demo walk-through ---
export CA="{ca}" GW="{base}" ADMIN="{admin}"
# 1. Log in (the seed API's spelling; grant_type=password&username=... works too).
TOKENS=$(curl -sS --cacert "$CA" "$GW/api/oauth2/token" -d grantType=Password -d userName=demo -d password={password})
echo "$TOKENS"
ACCESS=$(printf '%s' "$TOKENS" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
REFRESH=$(printf '%s' "$TOKENS" | sed -E 's/.*"refresh_token":"([^"]+)".*/\1/')
# 2. A proxied call: the echo upstream shows the identity headers the gateway added.
curl -sS --cacert "$CA" -H "Authorization: Bearer $ACCESS" "$GW/hello"; echo
# 3. Without a token: 401 and a Bearer challenge.
curl -sS -i --cacert "$CA" "$GW/hello"; echo
# 4. Refresh: a new pair; the old refresh token is spent.
TOKENS=$(curl -sS --cacert "$CA" "$GW/api/oauth2/token" -d grant_type=refresh_token --data-urlencode "refresh_token=$REFRESH")
echo "$TOKENS"
ACCESS=$(printf '%s' "$TOKENS" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
# 5. Log out: the session is revoked ...
curl -sS -i --cacert "$CA" -X POST -H "Authorization: Bearer $ACCESS" "$GW/api/oauth2/logout"; echo
# 6. ... and its access token is refused from now on.
curl -sS -i --cacert "$CA" -H "Authorization: Bearer $ACCESS" "$GW/hello"; echo
# 7. The admin listener: the live sessions (also: portcullis sessions list --admin "$ADMIN").
curl -sS "$ADMIN/admin/sessions"; echo
# --- end ---

Press Ctrl-C to stop; the temporary folder is removed.
"#
    )
}

/// A tiny upstream that answers every request with what it received, as JSON.
pub(crate) async fn echo_upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service =
                service_fn(|req: Request<Incoming>| async move { Ok::<_, Infallible>(echo(&req)) });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn echo(req: &Request<Incoming>) -> Response<Body> {
    let mut seen = serde_json::Map::new();
    seen.insert("method".to_owned(), req.method().as_str().into());
    seen.insert("path".to_owned(), req.uri().to_string().into());
    for name in [
        "host",
        "x-auth-user",
        "x-auth-roles",
        "x-auth-session",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-request-id",
    ] {
        if let Some(v) = req.headers().get(name).and_then(|v| v.to_str().ok()) {
            seen.insert(name.to_owned(), v.into());
        }
    }
    let json = serde_json::to_vec_pretty(&seen).unwrap_or_default();
    body::json(http::StatusCode::OK, json)
}

/// A private temporary folder, removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("portcullis-demo-{}", uuid::Uuid::new_v4()));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
