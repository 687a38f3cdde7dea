//! The KYC example's binaries as real processes, for the tests that drive them: a [`Cluster`]
//! of `kyc` services and `worker`s (killed when it drops, passed or failed), each with its
//! log file, on a Redis server of the test's own or on the embedded engine, and a blocking
//! HTTP client to talk to them.

// Each test file includes this module and uses what it needs of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::reply::Reply;
use crate::support::RedisServer;

/// The service binary, built by Cargo for the test.
pub(crate) const KYC: &str = env!("CARGO_BIN_EXE_kyc");
/// The worker binary.
pub(crate) const WORKER: &str = env!("CARGO_BIN_EXE_worker");

// ---------------------------------------------------------------------------------------------
// Child processes.

/// One running binary, with its log file.
pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The end of its log, for failure messages.
    pub(crate) fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("--- {} (pid {}) log ---\n{tail}", self.name, self.pid())
    }

    /// Waits for the process to exit, up to `limit`; `None` if it is still running.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll a child process") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Everything a test started: its processes (killed when dropped, even when the test fails)
/// and its Redis server.
pub(crate) struct Cluster {
    pub(crate) procs: Vec<Proc>,
    pub(crate) dir: PathBuf,
    pub(crate) redis: Option<RedisServer>,
}

impl Cluster {
    pub(crate) fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "goflow-e2e-{test}-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).expect("create a directory for the logs");
        Self {
            procs: Vec::new(),
            dir,
            redis: None,
        }
    }

    /// Starts a Redis server for this test; returns its URL.
    pub(crate) fn redis(&mut self) -> String {
        self.redis.get_or_insert_with(RedisServer::start).url()
    }

    /// Starts `binary` with `env` (and no other `GOFLOW_*` variable); returns its index.
    pub(crate) fn spawn(&mut self, name: &str, binary: &Path, env: &[(&str, String)]) -> usize {
        let log = self.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create a log file");
        let mut command = Command::new(binary);
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(|k| {
                k.starts_with("GOFLOW_") || k.starts_with("OTEL_") || k == "RUST_LOG"
            }) {
                command.env_remove(key);
            }
        }
        command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", binary.display()));
        self.procs.push(Proc {
            name: name.to_owned(),
            child,
            log,
        });
        self.procs.len() - 1
    }

    /// Starts the `kyc` service on a free port with `env`; returns it once `/readyz` is 200.
    pub(crate) fn kyc(&mut self, name: &str, env: &[(&str, String)]) -> Service {
        self.service(name, Path::new(KYC), env)
    }

    /// Starts `binary`, a service, on a free port with `env`; returns it once `/readyz` is 200.
    pub(crate) fn service(&mut self, name: &str, binary: &Path, env: &[(&str, String)]) -> Service {
        let port = free_port();
        let mut env = env.to_vec();
        env.push(("GOFLOW_PORT", port.to_string()));
        env.push(("GOFLOW_HOST", "127.0.0.1".to_owned()));
        if !env.iter().any(|(name, _)| *name == "GOFLOW_SHUTDOWN_GRACE") {
            env.push(("GOFLOW_SHUTDOWN_GRACE", "15".to_owned()));
        }
        let index = self.spawn(name, binary, &env);
        let service = Service { port, index };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.procs[index].child.try_wait().expect("poll a child") {
                panic!(
                    "{name} exited ({status}) before it was ready\n{}",
                    self.procs[index].log_tail()
                );
            }
            // Not kept alive in the client's pool: a test of the connection limit counts on
            // the connections it opens itself.
            let close = [("Connection", "close")];
            if let Ok(reply) = service.try_request(Method::GET, "/readyz", &close, None) {
                if reply.status == StatusCode::OK {
                    return service;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{name} not ready within 30 s\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a `worker` process with `env`; returns once it reports it has started.
    pub(crate) fn worker(&mut self, name: &str, env: &[(&str, String)]) -> usize {
        self.worker_of(name, Path::new(WORKER), env)
    }

    /// Starts `binary`, a worker, with `env`; returns once it reports it has started.
    pub(crate) fn worker_of(&mut self, name: &str, binary: &Path, env: &[(&str, String)]) -> usize {
        let index = self.spawn(name, binary, env);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.procs[index].log().contains("worker started") {
            if let Some(status) = self.procs[index].child.try_wait().expect("poll a child") {
                panic!("{name} exited ({status})\n{}", self.procs[index].log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not start within 30 s\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        index
    }

    pub(crate) fn logs(&self) -> String {
        self.procs
            .iter()
            .map(Proc::log_tail)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Captured by the test harness and shown with the failure.
            println!("{}", self.logs());
        }
        for proc in &mut self.procs {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // The Redis server (if any) is killed after its clients, when the field drops.
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

pub(crate) fn unique(what: &str) -> String {
    format!("{what}-{:08x}", fastrand::u32(..))
}

/// Sends SIGTERM to the process.
pub(crate) fn terminate(proc: &Proc) {
    let status = Command::new("kill")
        .args(["-TERM", &proc.pid().to_string()])
        .status()
        .expect("run `kill`");
    assert!(status.success(), "kill -TERM {} failed", proc.pid());
}

// ---------------------------------------------------------------------------------------------
// HTTP.

/// The client of every test: no proxy (whatever the environment says), and a timeout that
/// turns a hung service into a failure.
pub(crate) fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build the HTTP client")
    })
}

/// A `kyc` service process, by its port and its index in the [`Cluster`].
#[derive(Clone, Copy)]
pub(crate) struct Service {
    pub(crate) port: u16,
    pub(crate) index: usize,
}

impl Service {
    pub(crate) fn try_request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> reqwest::Result<Reply> {
        let mut request = client().request(method, format!("http://127.0.0.1:{}{path}", self.port));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send()?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes()?.to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    #[track_caller]
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let what = format!("{method} {path} on port {}", self.port);
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{what}: {e:?}"))
    }

    #[track_caller]
    pub(crate) fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, &[], None)
    }

    #[track_caller]
    pub(crate) fn post(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::POST, path, &[], Some(body))
    }

    /// Polls the request at `location` until `done` holds (failing after 60 s: a hang, not a
    /// timing expectation); returns its status.
    #[track_caller]
    pub(crate) fn poll(&self, location: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.get(location).expect(StatusCode::OK);
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within 60 s; last status {status}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The 202 answer's location.
#[track_caller]
pub(crate) fn location(reply: &Reply) -> String {
    reply.expect(StatusCode::ACCEPTED);
    reply
        .header("location")
        .unwrap_or_else(|| panic!("no Location header: {:?}", reply.headers))
        .to_owned()
}

/// The request id at the end of a request's location.
pub(crate) fn id_in(location: &str) -> &str {
    location.rsplit('/').next().unwrap_or(location)
}
