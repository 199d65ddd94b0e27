//! Fixtures: `TestGateway` (a gateway on an ephemeral port, shut down on drop), a rustls
//! client that trusts the gateway's test certificate, and helpers to mint and read tokens.
//!
//! `TestGateway` runs the binary's lifecycle (`portcullis::run`) in-process: the same bind,
//! accept loops, reload and drain, with signals sent through a channel instead of the process.

pub(crate) mod child;
pub(crate) mod h2_peer;
pub(crate) mod raw;
pub(crate) mod redis;
pub(crate) mod upstream;
pub(crate) mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis::clock::Clock;
use portcullis::config::Config;
use portcullis::run;
use portcullis::server::signal::{Signal, Signals};
use portcullis::state::{Shared, Snapshot};
use serde_json::Value;
use tokio::sync::mpsc;

pub(crate) const ALICE: (&str, &str) = ("alice", "alice-correct-horse");
pub(crate) const BOB: (&str, &str) = ("bob", "bob-battery-staple");

/// Key material made once per test run (RSA key generation is slow).
pub(crate) struct Material {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) signing_pem: String,
    pub(crate) users_toml: String,
}

pub(crate) fn material() -> &'static Material {
    static MATERIAL: OnceLock<Material> = OnceLock::new();
    MATERIAL.get_or_init(|| {
        let (cert_pem, key_pem) =
            portcullis::keygen::self_signed(&["localhost".to_owned(), "127.0.0.1".to_owned()], 1)
                .unwrap();
        let hash = |p: &str| portcullis::login::hash_password(p.as_bytes());
        let users_toml = format!(
            "[[users]]\nname = \"{}\"\npassword_hash = \"{}\"\nroles = [\"user\"]\n\n\
             [[users]]\nname = \"{}\"\npassword_hash = \"{}\"\nroles = [\"admin\", \"user\"]\n",
            ALICE.0,
            hash(ALICE.1),
            BOB.0,
            hash(BOB.1)
        );
        Material {
            cert_pem,
            key_pem,
            signing_pem: portcullis::keygen::signing_key_pem().unwrap(),
            users_toml,
        }
    })
}

/// What to put in a test gateway's configuration beyond the defaults.
#[derive(Default)]
pub(crate) struct Options {
    /// Extra lines in `[tokens]`, e.g. `access_ttl = "1s"`.
    pub(crate) tokens: &'static str,
    /// Extra lines in `[server]`.
    pub(crate) server: &'static str,
    /// The `[store]` section's lines; empty: an embedded store in the test's folder.
    pub(crate) store: String,
    /// Extra lines in `[login]`.
    pub(crate) login: &'static str,
    /// Extra lines in `[admin]`, e.g. `allowed_hosts = ["gateway.internal"]`.
    pub(crate) admin: &'static str,
    /// Extra lines in `[log]` (whose `format` is `"json"`), e.g. `access_fields = ["status"]`.
    pub(crate) log: &'static str,
    /// The signing key's PEM; `None`: the shared RSA test key.
    pub(crate) signing_pem: Option<String>,
    /// More files to write into the gateway's folder (e.g. verification keys).
    pub(crate) files: Vec<(&'static str, String)>,
    /// `[[routes]]` tables; `{upstream}` is replaced by the upstream's address. Empty: one
    /// route `/` → the upstream, auth required.
    pub(crate) routes: String,
}

/// Two routes: `/public` without authentication, everything else with.
pub(crate) const PUBLIC_AND_API: &str = "[[routes]]\nname = \"pub\"\npath_prefix = \"/public\"\n\
    auth = \"public\"\nupstreams = [\"http://{upstream}\"]\n\n\
    [[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstreams = [\"http://{upstream}\"]\n";

impl Options {
    /// Default options with these `[[routes]]`.
    pub(crate) fn with_routes(routes: &str) -> Self {
        Self {
            routes: routes.to_owned(),
            ..Self::default()
        }
    }
}

pub(crate) struct TestGateway {
    pub(crate) addr: SocketAddr,
    /// The admin listener (plain HTTP).
    pub(crate) admin_addr: SocketAddr,
    upstream: SocketAddr,
    pub(crate) shared: Arc<Shared>,
    pub(crate) dir: TempDir,
    pub(crate) client:
        Client<hyper_rustls::HttpsConnector<HttpConnector>, BoxBody<Bytes, hyper::Error>>,
    /// Signals for the gateway's lifecycle, as the process's handlers would send them.
    signals: Option<mpsc::UnboundedSender<Signal>>,
    /// `run::serve`, until [`TestGateway::stop`] awaits it.
    lifecycle: Option<tokio::task::JoinHandle<Result<(), run::RunError>>>,
}

impl TestGateway {
    pub(crate) async fn start(upstream: SocketAddr, options: Options) -> Self {
        let dir = TempDir::new();
        let path = write_config(dir.path(), upstream, &options);
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let snapshot = Snapshot::build(config).unwrap_or_else(|e| panic!("{e}"));
        // The configuration's addresses: `127.0.0.1:0` for both listeners. The clock is
        // adjustable: tests move `shared.clock` forward instead of sleeping until tokens expire.
        let (shared, listeners) = run::start(snapshot, Clock::adjustable()).await.unwrap();
        let addr = listeners.gateway_addr().unwrap();
        let admin_addr = listeners.admin.local_addr().unwrap();
        let (signals_tx, signals) = Signals::injected();
        let lifecycle = tokio::spawn(run::serve(shared.clone(), listeners, signals, path));
        Self {
            addr,
            admin_addr,
            upstream,
            shared,
            dir,
            client: tls_client(false),
            signals: Some(signals_tx),
            lifecycle: Some(lifecycle),
        }
    }

    /// `method path` on the admin listener (plain HTTP).
    pub(crate) async fn admin(&self, method: &str, path: &str) -> Reply {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.admin_addr))
            .body(Full::default())
            .unwrap();
        Reply::read(client.request(req).await.unwrap()).await
    }

    /// Rewrites the configuration with `options` and reloads it, as SIGHUP does.
    pub(crate) fn reload(&self, options: &Options) -> Result<(), portcullis::config::ConfigErrors> {
        let path = write_config(self.dir.path(), self.upstream, options);
        portcullis::reload::reload(&self.shared, &path)
    }

    /// Sends `req` (its URI is a path) and returns status, headers and the whole body.
    pub(crate) async fn send(&self, req: Request<BoxBody<Bytes, hyper::Error>>) -> Reply {
        send_with(&self.client, self, req).await
    }

    pub(crate) async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        let mut req = Request::get(path);
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        self.send(req.body(empty()).unwrap()).await
    }

    /// `POST` a form to the token endpoint.
    pub(crate) async fn token(&self, form: &str) -> Reply {
        let req = Request::post("/api/oauth2/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(full(form.to_owned()))
            .unwrap();
        self.send(req).await
    }

    /// Logs in with the seed API's spelling; panics unless it succeeds.
    pub(crate) async fn login(&self, (user, password): (&str, &str)) -> Tokens {
        let reply = self
            .token(&format!(
                "grantType=Password&userName={user}&password={password}"
            ))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        Tokens::from(&reply)
    }

    /// A password-grant request for `(user, password)`, whatever its outcome.
    pub(crate) async fn try_login(&self, (user, password): (&str, &str)) -> Reply {
        self.token(&format!(
            "grant_type=password&username={user}&password={password}"
        ))
        .await
    }

    pub(crate) async fn refresh(&self, refresh_token: &str) -> Reply {
        self.token(&format!(
            "grant_type=refresh_token&refresh_token={refresh_token}"
        ))
        .await
    }

    pub(crate) async fn logout(&self, access: &str) -> Reply {
        let req = Request::post("/api/oauth2/logout")
            .header("authorization", format!("Bearer {access}"))
            .body(empty())
            .unwrap();
        self.send(req).await
    }
}

impl TestGateway {
    /// Starts the drain of both listeners, as SIGTERM does (dropping the gateway does it too).
    pub(crate) fn shutdown(&mut self) {
        if let Some(tx) = self.signals.take() {
            let _ = tx.send(Signal::Terminate);
        }
    }

    /// Sends `signal` to the gateway's lifecycle, as the process's handler would.
    pub(crate) fn signal(&self, signal: Signal) {
        if let Some(tx) = &self.signals {
            tx.send(signal).unwrap();
        }
    }

    /// Terminates the gateway and waits (at most 10 s) for its lifecycle to end: what
    /// `portcullis serve` would exit with.
    pub(crate) async fn stop(&mut self) -> Result<(), run::RunError> {
        self.shutdown();
        let lifecycle = self.lifecycle.take().expect("stopped once");
        tokio::time::timeout(std::time::Duration::from_secs(10), lifecycle)
            .await
            .expect("the lifecycle ends within 10 s")
            .expect("the lifecycle task does not panic")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A mock upstream and a gateway in front of it.
pub(crate) async fn gateway(options: Options) -> (upstream::MockUpstream, TestGateway) {
    let upstream = upstream::MockUpstream::start().await;
    let gw = TestGateway::start(upstream.addr, options).await;
    (upstream, gw)
}

/// Presents `refresh_token` `n` times at once, spread round-robin over `gateways`; the statuses.
pub(crate) async fn refresh_concurrently(
    gateways: &[Arc<TestGateway>],
    refresh_token: &str,
    n: usize,
) -> Vec<u16> {
    let attempts: Vec<_> = (0..n)
        .map(|i| {
            let gw = gateways[i % gateways.len()].clone();
            let refresh = refresh_token.to_owned();
            tokio::spawn(async move { gw.refresh(&refresh).await.status.as_u16() })
        })
        .collect();
    let mut statuses = Vec::with_capacity(n);
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    statuses
}

/// Writes the key material and `portcullis.toml` for `options` into `dir`; returns the config
/// file's path.
pub(crate) fn write_config(dir: &Path, upstream: SocketAddr, options: &Options) -> PathBuf {
    let m = material();
    std::fs::write(dir.join("gateway.crt"), &m.cert_pem).unwrap();
    portcullis::keygen::write_private(&dir.join("gateway.key"), m.key_pem.as_bytes()).unwrap();
    let signing = options.signing_pem.as_deref().unwrap_or(&m.signing_pem);
    portcullis::keygen::write_private(&dir.join("signing.pem"), signing.as_bytes()).unwrap();
    portcullis::keygen::write_private(&dir.join("users.toml"), m.users_toml.as_bytes()).unwrap();
    for (name, contents) in &options.files {
        portcullis::keygen::write_private(&dir.join(name), contents.as_bytes()).unwrap();
    }
    let routes = if options.routes.is_empty() {
        "[[routes]]\nname = \"api\"\npath_prefix = \"/\"\nupstreams = [\"http://{upstream}\"]\n"
            .to_owned()
    } else {
        options.routes.clone()
    };
    let store = if options.store.is_empty() {
        "path = \"sessions.db\""
    } else {
        &options.store
    };
    // Two request-path workers, whatever the machine: every test crosses workers.
    let workers = if options.server.contains("workers") {
        ""
    } else {
        "workers = 2\n"
    };
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"gateway.crt\"\ntls_key = \"gateway.key\"\n{workers}{}\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n{}\n\n[log]\nformat = \"json\"\n{}\n\n\
         [tokens]\nsigning_key = \"signing.pem\"\nleeway = \"0s\"\n{}\n\n\
         [store]\n{store}\n\n\
         [login]\nusers_file = \"users.toml\"\n{}\n\n{}",
        options.server,
        options.admin,
        options.log,
        options.tokens,
        options.login,
        routes.replace("{upstream}", &upstream.to_string())
    );
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub(crate) async fn send_with(
    client: &Client<hyper_rustls::HttpsConnector<HttpConnector>, BoxBody<Bytes, hyper::Error>>,
    gw: &TestGateway,
    req: Request<BoxBody<Bytes, hyper::Error>>,
) -> Reply {
    send_to(client, gw.addr.port(), req).await
}

/// Sends `req` (whose URI is a path) to the gateway on `https://localhost:port`.
pub(crate) async fn send_to(
    client: &Client<hyper_rustls::HttpsConnector<HttpConnector>, BoxBody<Bytes, hyper::Error>>,
    port: u16,
    mut req: Request<BoxBody<Bytes, hyper::Error>>,
) -> Reply {
    *req.uri_mut() = format!("https://localhost:{port}{}", req.uri())
        .parse()
        .unwrap();
    let response = tokio::time::timeout(std::time::Duration::from_secs(30), client.request(req))
        .await
        .expect("the gateway answers within 30 s")
        .expect("the request reaches the gateway");
    Reply::read(response).await
}

/// A rustls client that trusts only the test certificate; `http2_only` forces HTTP/2 via ALPN.
pub(crate) fn tls_client(
    http2_only: bool,
) -> Client<hyper_rustls::HttpsConnector<HttpConnector>, BoxBody<Bytes, hyper::Error>> {
    tls_client_trusting(&material().cert_pem, http2_only)
}

/// A rustls client configuration that trusts only `cert_pem`.
pub(crate) fn client_tls_config(cert_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let cert = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes()).unwrap();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A rustls client that trusts only `cert_pem`.
pub(crate) fn tls_client_trusting(
    cert_pem: &str,
    http2_only: bool,
) -> Client<hyper_rustls::HttpsConnector<HttpConnector>, BoxBody<Bytes, hyper::Error>> {
    let tls = client_tls_config(cert_pem);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    let connector = if http2_only {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().enable_http2().build()
    };
    let mut client = Client::builder(TokioExecutor::new());
    client.http2_only(http2_only);
    client.build(connector)
}

pub(crate) fn full(body: impl Into<Bytes>) -> BoxBody<Bytes, hyper::Error> {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

pub(crate) fn empty() -> BoxBody<Bytes, hyper::Error> {
    full(Bytes::new())
}

/// A whole response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) version: http::Version,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) trailers: Option<HeaderMap>,
}

impl Reply {
    pub(crate) async fn read(response: Response<hyper::body::Incoming>) -> Self {
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.unwrap();
        Self {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            trailers: collected.trailers().cloned(),
            body: collected.to_bytes(),
        }
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: not JSON: {}", self.text()))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts an RFC 6749 error: `status` and `error`.
    pub(crate) fn assert_oauth_error(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.json()["error"], error, "{}", self.text());
        assert!(self.json()["error_description"].is_string());
    }
}

/// A token pair from a successful token response.
#[derive(Clone, Debug)]
pub(crate) struct Tokens {
    pub(crate) access: String,
    pub(crate) refresh: String,
}

impl From<&Reply> for Tokens {
    fn from(reply: &Reply) -> Self {
        let json = reply.json();
        Self {
            access: json["access_token"].as_str().unwrap().to_owned(),
            refresh: json["refresh_token"].as_str().unwrap().to_owned(),
        }
    }
}

/// The decoded (unverified) header and claims of a JWT.
pub(crate) fn decode_parts(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let mut next = || -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap()
    };
    (next(), next())
}

/// A private temporary folder, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let path = std::env::temp_dir().join(format!("portcullis-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything the crate logged during the test run, for the "never logged" checks.
pub(crate) fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = CaptureWriter(logs.clone());
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init();
        logs
    })
    .clone()
}

/// What `f` logs on this thread (at debug and above), beside its result: for code that runs
/// synchronously, such as a reload.
pub(crate) fn logs_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let writer = CaptureWriter(logs.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    (result, text)
}

#[derive(Clone)]
struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
