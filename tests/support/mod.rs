//! Test support shared by the integration tests that need Redis.
//!
//! Each test binary starts its own `redis-server` on a free port, in a temporary directory,
//! with persistence off (or uses `GOFLOW_TEST_REDIS_URL` when set), and each test gets its own
//! key prefix, so tests never see each other's keys or depend on a server outside the run.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use goflow::redis::RedisConfig;

/// A `redis-server` owned by the test run; killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

const INSTALL_HINT: &str = "the Redis tests need `redis-server` on PATH: install it with \
`apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), or point \
GOFLOW_TEST_REDIS_URL at a server the tests may write to";

impl RedisServer {
    /// Starts a server on a free port, failing the test with install instructions when
    /// `redis-server` cannot be run.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "goflow-test-redis-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory for redis-server");
        let port = free_port();
        let mut server = Self {
            child: None,
            port,
            dir,
        };
        server.spawn();
        server
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would: its data is gone, persistence is off).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start redis-server ({e}): {INSTALL_HINT}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on port {} within 10 s: {INSTALL_HINT}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

/// The server shared by the tests of this binary (each with its own prefix).
pub fn shared_url() -> String {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            if let Ok(url) = std::env::var("GOFLOW_TEST_REDIS_URL") {
                return url;
            }
            // Leaked on purpose: it lives as long as the test process, and its port and
            // directory are this process's own.
            let server = Box::leak(Box::new(RedisServer::start()));
            server.url()
        })
        .clone()
}

/// Settings for one test: the shared server, a prefix of its own, and short timings so that
/// leases and retries play out quickly.
pub fn config(test: &str) -> RedisConfig {
    let mut config = RedisConfig::new(shared_url());
    config.prefix = format!("t-{test}-{:08x}", fastrand::u32(..));
    config.lease = Duration::from_millis(1500);
    config.retry_poll = Duration::from_millis(10);
    config
}
