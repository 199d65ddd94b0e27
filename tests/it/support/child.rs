//! `ChildGateway`: the built binary serving a configuration, for what only a real process can
//! show (signals, `kill -9`, exit codes).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Request;

use super::{empty, full, send_to, tls_client, Reply, Tokens};

/// The gateway binary serving the configuration in `dir`; killed on drop.
pub(crate) struct ChildGateway {
    pub(crate) child: Child,
    pub(crate) port: u16,
    pub(crate) admin_port: u16,
    /// Every line the process wrote to stderr so far.
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ChildGateway {
    pub(crate) fn start(config: &std::path::Path) -> Self {
        Self::start_with_env(config, &[])
    }

    /// [`ChildGateway::start`], with these environment variables set.
    pub(crate) fn start_with_env(config: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("serve")
            .arg("-c")
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                kept.lock().unwrap().push(line.clone());
                if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) {
                    if json["message"] == "portcullis ready" {
                        let field = |f: &str| json[f].as_str().unwrap_or_default().to_owned();
                        let _ = tx.send((field("listen"), field("admin"), field("version")));
                    }
                }
            }
        });
        let (listen, admin, version) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the gateway starts");
        // The start-up line says which build is running.
        assert_eq!(
            version,
            env!("CARGO_PKG_VERSION"),
            "the ready line's version"
        );
        let port_of = |addr: &str| addr.rsplit(':').next().unwrap().parse().unwrap();
        Self {
            child,
            port: port_of(&listen),
            admin_port: port_of(&admin),
            stderr: lines,
        }
    }

    /// The first stderr line for which `found` is true, waiting for it at most 10 s.
    pub(crate) async fn stderr_line(&self, found: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.stderr.lock().unwrap().clone();
            if let Some(line) = lines.iter().find(|l| found(l)) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no such line in:\n{}",
                lines.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` (e.g. `"HUP"`, `"TERM"`) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub(crate) fn kill_9(mut self) {
        self.child.kill().unwrap(); // SIGKILL: no shutdown code runs
        self.child.wait().unwrap();
    }
}

impl ChildGateway {
    /// `POST`s `form` to the token endpoint.
    pub(crate) async fn token(&self, form: String) -> Reply {
        let req = Request::post("/api/oauth2/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(full(form))
            .unwrap();
        send_to(&tls_client(false), self.port, req).await
    }

    pub(crate) async fn login(&self, (user, password): (&str, &str)) -> Tokens {
        let reply = self
            .token(format!(
                "grant_type=password&username={user}&password={password}"
            ))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        Tokens::from(&reply)
    }

    pub(crate) async fn refresh(&self, refresh: &str) -> Reply {
        self.token(format!("grant_type=refresh_token&refresh_token={refresh}"))
            .await
    }

    /// The status of `GET /x` with `access`.
    pub(crate) async fn status_of_get(&self, access: &str) -> u16 {
        let req = Request::get("/x")
            .header("authorization", format!("Bearer {access}"))
            .body(empty())
            .unwrap();
        send_to(&tls_client(false), self.port, req)
            .await
            .status
            .as_u16()
    }
}

impl Drop for ChildGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
