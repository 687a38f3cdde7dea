//! The KYC example end to end: the `kyc` and `worker` binaries of `examples/kyc-app` run as
//! real processes, on a Redis server of the test's own or on the embedded engine, and are
//! driven over real HTTP.
//!
//! The binaries belong to another package, so Cargo does not build them for this test: the
//! test builds them itself (`cargo build -p goflow-kyc-app --bins`, a no-op when they are up
//! to date) into the target directory it runs from, then starts them from there. Every child
//! process is killed when its test ends, passed or failed.

// SIGTERM is sent with `kill`.
#![cfg(unix)]

mod support;

use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::RedisServer;

// ---------------------------------------------------------------------------------------------
// The binaries.

/// The example's binaries, built for the profile and target directory of this test.
struct Binaries {
    kyc: PathBuf,
    worker: PathBuf,
}

fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(build_binaries)
}

/// Builds the example's binaries next to this test's executable (`<target>/<profile>/deps/`
/// holds the test; the binaries go to `<target>/<profile>/`).
fn build_binaries() -> Binaries {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .filter(|deps| deps.file_name().is_some_and(|n| n == "deps"))
        .and_then(Path::parent)
        .unwrap_or_else(|| {
            panic!(
                "cannot find the target directory from the test's path {}: expected \
                 <target>/<profile>/deps/<test>",
                exe.display()
            )
        })
        .to_path_buf();
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a profile directory name")
        .to_owned();
    let target_dir = profile_dir
        .parent()
        .expect("a target directory")
        .to_path_buf();
    let name = |bin: &str| profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    let binaries = Binaries {
        kyc: name("kyc"),
        worker: name("worker"),
    };

    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut build = Command::new(&cargo);
    build
        .args(["build", "--quiet", "-p", "goflow-kyc-app", "--bins"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            build.arg("--release");
        }
        other => {
            build.args(["--profile", other]);
        }
    }
    let command = format!("{build:?}");
    let output = build.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("could not run cargo to build the KYC binaries ({command}): {e}")
    });
    assert!(
        output.status.success(),
        "building the KYC binaries failed ({command}): {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    for bin in [&binaries.kyc, &binaries.worker] {
        assert!(
            bin.is_file(),
            "`{command}` succeeded but {} is missing (a `--target` build puts binaries under \
             <target>/<triple>/; run the test without `--target`)",
            bin.display()
        );
    }
    binaries
}

// ---------------------------------------------------------------------------------------------
// Child processes.

/// One running binary, with its log file.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The end of its log, for failure messages.
    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("--- {} (pid {}) log ---\n{tail}", self.name, self.pid())
    }

    /// Waits for the process to exit, up to `limit`; `None` if it is still running.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
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
struct Cluster {
    procs: Vec<Proc>,
    dir: PathBuf,
    redis: Option<RedisServer>,
}

impl Cluster {
    fn new(test: &str) -> Self {
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
    fn redis(&mut self) -> String {
        self.redis.get_or_insert_with(RedisServer::start).url()
    }

    /// Starts `binary` with `env` (and no other `GOFLOW_*` variable); returns its index.
    fn spawn(&mut self, name: &str, binary: &Path, env: &[(&str, String)]) -> usize {
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
    fn kyc(&mut self, name: &str, env: &[(&str, String)]) -> Service {
        let port = free_port();
        let mut env = env.to_vec();
        env.push(("GOFLOW_PORT", port.to_string()));
        env.push(("GOFLOW_HOST", "127.0.0.1".to_owned()));
        env.push(("GOFLOW_SHUTDOWN_GRACE", "15".to_owned()));
        let index = self.spawn(name, &binaries().kyc, &env);
        let service = Service { port, index };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.procs[index].child.try_wait().expect("poll a child") {
                panic!(
                    "{name} exited ({status}) before it was ready\n{}",
                    self.procs[index].log_tail()
                );
            }
            if let Ok(reply) = service.try_request("GET", "/readyz", &[], None) {
                if reply.status == 200 {
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
    fn worker(&mut self, name: &str, env: &[(&str, String)]) -> usize {
        let index = self.spawn(name, &binaries().worker, env);
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

    fn logs(&self) -> String {
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

fn unique(what: &str) -> String {
    format!("{what}-{:08x}", fastrand::u32(..))
}

/// Sends SIGTERM to the process.
fn terminate(proc: &Proc) {
    let status = Command::new("kill")
        .args(["-TERM", &proc.pid().to_string()])
        .status()
        .expect("run `kill`");
    assert!(status.success(), "kill -TERM {} failed", proc.pid());
}

// ---------------------------------------------------------------------------------------------
// A small HTTP/1.1 client: one connection per request, closed by the server after answering.

/// An answer.
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {}, body {:?}",
                self.status,
                self.text()
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    #[track_caller]
    fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        self.json()
    }

    #[track_caller]
    fn expect_error(&self, status: u16, code: &str) {
        let body = self.expect(status);
        assert_eq!(body["error"]["code"], code, "body: {body}");
    }
}

/// A `kyc` service process, by its port and its index in the [`Cluster`].
#[derive(Clone, Copy)]
struct Service {
    port: u16,
    index: usize,
}

impl Service {
    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> std::io::Result<Reply> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            self.port,
            body.len()
        );
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        parse_reply(&raw).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP answer: {:?}", String::from_utf8_lossy(&raw)),
            )
        })
    }

    #[track_caller]
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path} on port {}: {e}", self.port))
    }

    #[track_caller]
    fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], None)
    }

    #[track_caller]
    fn post(&self, path: &str, body: &Value) -> Reply {
        self.request("POST", path, &[], Some(body))
    }

    /// Polls the request at `location` until `done` holds (failing after 60 s: a hang, not a
    /// timing expectation); returns its status.
    #[track_caller]
    fn poll(&self, location: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.get(location).expect(200);
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

fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        body = dechunk(&body)?;
    }
    Some(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

fn is_final(status: &Value) -> bool {
    matches!(
        status["status"].as_str(),
        Some("completed" | "failed" | "stopped")
    )
}

fn vertex<'a>(status: &'a Value, path: &str) -> &'a Value {
    status["vertices"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["vertex"] == path))
        .unwrap_or_else(|| panic!("no vertex `{path}` in {status}"))
}

/// The 202 answer's location.
#[track_caller]
fn location(reply: &Reply) -> String {
    reply.expect(202);
    reply
        .header("location")
        .unwrap_or_else(|| panic!("no Location header: {:?}", reply.headers))
        .to_owned()
}

/// The pid inside a worker's consumer name (`{host}-{pid}-{random}`).
fn consumer_pid(consumer: &str) -> Option<u32> {
    consumer.rsplit('-').nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn redis_service_with_two_workers() {
    let mut cluster = Cluster::new("workers");
    let redis = cluster.redis();
    let env = vec![
        ("GOFLOW_REDIS_URL", redis),
        ("GOFLOW_REDIS_PREFIX", unique("e2e-workers")),
    ];
    let kyc = cluster.kyc("kyc", &env);
    let worker_a = cluster.worker("worker-a", &env);
    let worker_b = cluster.worker("worker-b", &env);
    let pids: HashSet<u32> = [kyc.index, worker_a, worker_b]
        .iter()
        .map(|&i| cluster.procs[i].pid())
        .collect();

    let body = kyc.get("/readyz").expect(200);
    assert_eq!(body["engine"], "redis");

    // `?wait` answers with the verdict.
    let reply = kyc.post("/flow/kyc?wait=20", &json!({"user_id": "alice"}));
    let body = reply.expect(200);
    assert_eq!(body["status"], "completed", "body: {body}");
    assert_eq!(
        body["output"],
        json!({"user_id": "alice", "kyc_verified": true, "reason": "1 face(s), match score 0.97"})
    );
    assert!(reply.header("x-request-id").is_some());
    let body = kyc
        .post("/flow/kyc?wait=20", &json!({"user_id": "bob"}))
        .expect(200);
    assert_eq!(body["output"]["kyc_verified"], false, "body: {body}");
    let body = kyc
        .post("/flow/onboarding?wait=20", &json!({"user_id": " Ann "}))
        .expect(200);
    assert_eq!(body["output"]["user_id"], "ann", "body: {body}");

    // 40 requests, all completed, run by more than one worker. Ten are slow: more than one
    // worker's slots (8), so at least two consumers must take a share.
    let locations: Vec<(String, String)> = (0..40)
        .map(|i| {
            let user = if i < 10 {
                format!("slow-{i}")
            } else {
                format!("a-user-{i}")
            };
            let reply = kyc.post("/flow/kyc", &json!({ "user_id": user }));
            (user, location(&reply))
        })
        .collect();
    let mut consumers = HashSet::new();
    for (user, location) in &locations {
        let status = kyc.poll(location, "each of the 40 requests ends", is_final);
        assert_eq!(status["status"], "completed", "status: {status}");
        assert_eq!(status["output"]["user_id"], user.as_str());
        assert_eq!(
            status["output"]["kyc_verified"],
            user.starts_with('a'),
            "status: {status}"
        );
        for v in status["vertices"].as_array().expect("vertices") {
            assert_eq!(v["status"], "done", "vertex {v}");
            let consumer = v["worker"]
                .as_str()
                .unwrap_or_else(|| panic!("no worker on {v}"));
            consumers.insert(consumer.to_owned());
        }
    }
    assert!(
        consumers.len() >= 2,
        "all 40 requests ran on one consumer: {consumers:?}"
    );
    for consumer in &consumers {
        let pid = consumer_pid(consumer);
        assert!(
            pid.is_some_and(|p| pids.contains(&p)),
            "consumer {consumer} is none of this test's processes {pids:?}"
        );
    }

    // Pause, resume and stop a slow user over HTTP.
    let paused = location(&kyc.post("/flow/kyc", &json!({"user_id": "slow-pause"})));
    let body = kyc
        .request("POST", &format!("{paused}/pause"), &[], None)
        .expect(202);
    assert_eq!(body["status"], "paused", "body: {body}");
    kyc.request("POST", &format!("{paused}/pause"), &[], None)
        .expect_error(409, "conflict");
    // Whatever had started finishes; nothing new starts.
    let status = kyc.poll(&paused, "the paused request settles", |s| {
        s["vertices"]
            .as_array()
            .is_some_and(|vs| vs.iter().all(|v| v["status"] != "running"))
    });
    assert_eq!(status["status"], "paused", "status: {status}");
    assert_ne!(
        vertex(&status, "mark_profile")["status"],
        "done",
        "status: {status}"
    );
    let body = kyc
        .request("POST", &format!("{paused}/resume"), &[], None)
        .expect(202);
    assert_eq!(body["status"], "running", "body: {body}");
    let status = kyc.poll(&paused, "the resumed request ends", is_final);
    assert_eq!(status["status"], "completed", "status: {status}");
    assert_eq!(status["output"]["user_id"], "slow-pause");

    let stopped = location(&kyc.post("/flow/kyc", &json!({"user_id": "slow-stop"})));
    let body = kyc
        .request("POST", &format!("{stopped}/stop"), &[], None)
        .expect(202);
    assert_eq!(body["status"], "stopped", "body: {body}");
    kyc.request("POST", &format!("{stopped}/resume"), &[], None)
        .expect_error(409, "conflict");
    kyc.request("POST", &format!("{stopped}/stop"), &[], None)
        .expect_error(409, "conflict");
    let status = kyc.get(&stopped).expect(200);
    assert_eq!(status["status"], "stopped", "status: {status}");
    assert!(status.get("output").is_none(), "status: {status}");
}

#[test]
fn a_token_is_required_over_http() {
    let mut cluster = Cluster::new("auth");
    let kyc = cluster.kyc("kyc", &[("GOFLOW_API_TOKEN", "e2e-token".to_owned())]);
    let body = json!({"user_id": "alice"});

    let reply = kyc.post("/flow/kyc", &body);
    reply.expect_error(401, "unauthorized");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    kyc.request(
        "POST",
        "/flow/kyc",
        &[("Authorization", "Bearer wrong")],
        Some(&body),
    )
    .expect_error(401, "unauthorized");
    kyc.get("/flows").expect_error(401, "unauthorized");

    let auth = [("Authorization", "Bearer e2e-token")];
    let reply = kyc.request("POST", "/flow/kyc", &auth, Some(&body));
    let location = location(&reply);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = kyc.request("GET", &location, &auth, None).expect(200);
        if is_final(&status) {
            assert_eq!(status["output"]["kyc_verified"], true, "status: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "not completed: {status}");
        std::thread::sleep(Duration::from_millis(10));
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(kyc.get(path).status, 200, "{path}");
    }
}

#[test]
fn the_embedded_mode_serves_wait_and_shuts_down_on_sigterm() {
    let mut cluster = Cluster::new("embedded");
    let kyc = cluster.kyc("kyc", &[]);
    assert_eq!(
        kyc.get("/readyz").expect(200),
        json!({"status": "ready", "engine": "embedded"})
    );
    let body = kyc
        .post("/flow/kyc?wait=20", &json!({"user_id": "alice"}))
        .expect(200);
    assert_eq!(body["status"], "completed", "body: {body}");
    assert_eq!(body["output"]["kyc_verified"], true, "body: {body}");
    let body = kyc.post("/flow/greet?wait=20", &json!("e2e")).expect(200);
    assert_eq!(body["output"], "Hello e2e");
    let body = kyc
        .post("/flow/kyc?wait=20", &json!({"user_id": ""}))
        .expect(200);
    assert_eq!(body["status"], "failed", "body: {body}");
    assert_eq!(body["failure"]["vertex"], "get_kyc_image", "body: {body}");
    let metrics = kyc.get("/metrics");
    assert!(
        metrics
            .text()
            .contains("goflow_http_flows_started_total{flow=\"kyc\"} 2"),
        "{}",
        metrics.text()
    );
    let mermaid = kyc.get("/flow/kyc.mmd");
    assert_eq!(mermaid.status, 200);
    assert!(mermaid.text().starts_with("flowchart LR"));

    let proc = &mut cluster.procs[kyc.index];
    terminate(proc);
    let status = proc
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("kyc still running 30 s after SIGTERM\n{}", proc.log_tail()));
    assert!(
        status.success(),
        "kyc exited with {status}\n{}",
        proc.log_tail()
    );
}

#[test]
fn sigterm_lets_the_redis_service_finish_and_exit_0() {
    let mut cluster = Cluster::new("sigterm");
    let redis = cluster.redis();
    let env = vec![
        ("GOFLOW_REDIS_URL", redis),
        ("GOFLOW_REDIS_PREFIX", unique("e2e-sigterm")),
    ];
    let kyc = cluster.kyc("kyc", &env);
    // A request in flight when the signal arrives.
    let slow = location(&kyc.post("/flow/kyc", &json!({"user_id": "slow-term"})));
    kyc.poll(&slow, "the slow request starts", |s| {
        s["status"] != "queued"
    });

    let proc = &mut cluster.procs[kyc.index];
    terminate(proc);
    let status = proc
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("kyc still running 30 s after SIGTERM\n{}", proc.log_tail()));
    assert!(
        status.success(),
        "kyc exited with {status}\n{}",
        proc.log_tail()
    );
    assert!(
        proc.log().contains("shutting down"),
        "no shutdown in the log\n{}",
        proc.log_tail()
    );

    // Nothing was lost: a new process picks the request up where it was left.
    let next = cluster.kyc("kyc-2", &env);
    let status = next.poll(&slow, "the request ends after the restart", is_final);
    assert_eq!(status["status"], "completed", "status: {status}");
    assert_eq!(status["output"]["user_id"], "slow-term");
}
