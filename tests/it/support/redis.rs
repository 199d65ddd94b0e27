//! A real `redis-server` on a free loopback port, started by the test and stopped by PID.
//!
//! When `redis-server` is not installed the Redis tests say so loudly and pass without
//! running, unless `PORTCULLIS_REQUIRE_REDIS=1` (set by `.ci/run`), which makes that a failure.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

pub(crate) struct RedisServer {
    pub(crate) port: u16,
    dir: TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with these extra arguments (e.g. `--requirepass x`; `{port}` stands for
    /// the port chosen, e.g. `--port 0 --tls-port {port}`); `None` when
    /// `redis-server` is missing and not required.
    pub(crate) fn start(extra: &[&str]) -> Option<Self> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            let required = std::env::var("PORTCULLIS_REQUIRE_REDIS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "redis-server is not on PATH and PORTCULLIS_REQUIRE_REDIS=1"
            );
            eprintln!(
                "\n*** SKIPPED: redis-server is not on PATH; the Redis store tests did not run. \
                 Install it (apt-get install redis-server) or set PORTCULLIS_REQUIRE_REDIS=1 \
                 to make this a failure. ***\n"
            );
            return None;
        }
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            port,
            dir: TempDir::new(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        server.spawn();
        Some(server)
    }

    /// `redis://127.0.0.1:port/0`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server with SIGKILL and waits for it to be gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data (appendfsync always).
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(&port)
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--daemonize", "no", "--logfile", ""])
            .args(self.extra.iter().map(|a| a.replace("{port}", &port)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let plain = !self.extra.iter().any(|a| a == "--tls-port");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.answers(plain) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not come up on port {}", self.port);
    }

    /// Whether the server accepts connections (and, in plain mode, answers a PING at all).
    fn answers(&self, plain: bool) -> bool {
        let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else {
            return false;
        };
        if !plain {
            return true;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0_u8; 1];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && matches!(reply[0], b'+' | b'-')
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
