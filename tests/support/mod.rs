//! Test support shared by the integration tests that need Redis.
//!
//! Each test binary starts its own `redis-server` on a free port, in a temporary directory,
//! with persistence off (or uses `GOFLOW_TEST_REDIS_URL` when set), and each test gets its own
//! key prefix, so tests never see each other's keys or depend on a server outside the run.

#![allow(dead_code, unreachable_pub)]

pub mod cluster;
pub mod engines;
pub mod probe;

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
    /// Arguments after the defaults (which they override).
    extra: Vec<String>,
}

const INSTALL_HINT: &str = "the Redis tests need `redis-server` on PATH: install it with \
`apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), or point \
GOFLOW_TEST_REDIS_URL at a server the tests may write to";

impl RedisServer {
    /// Starts a server on a free port, failing the test with install instructions when
    /// `redis-server` cannot be run.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server as [`start`](Self::start) does, with `extra` arguments after the
    /// defaults (`["--appendonly", "yes"]`, say, which overrides persistence off).
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "goflow-test-redis-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory for redis-server");
        let mut server = Self {
            child: None,
            port: free_port(),
            dir,
            extra: extra.iter().map(|arg| (*arg).to_owned()).collect(),
        };
        // The free port may be taken by someone else (another test's server) before this one
        // binds it: then try another.
        for _ in 0..5 {
            if server.spawn() {
                return server;
            }
            server.kill();
            server.port = free_port();
        }
        panic!("redis-server found no free port in 5 tries: {INSTALL_HINT}");
    }

    /// Whether the server runs (it has not been killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts a watchdog process that kills this server, and removes its directory, when the
    /// process `owner` has exited.
    pub fn watch_over(&self, owner: u32) {
        let Some(server) = self.child.as_ref().map(Child::id) else {
            return;
        };
        let script = format!(
            "while kill -0 {owner} 2>/dev/null; do sleep 0.5; done; kill {server} 2>/dev/null; \
             sleep 0.5; rm -rf '{}'",
            self.dir.display()
        );
        // Deliberately not waited for: it must outlive this process, which is its whole point.
        #[allow(clippy::zombie_processes)]
        let _watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the redis-server watchdog");
    }

    /// Kills the server (as a crash would: its data is gone, persistence is off).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends the server `signal` (`"STOP"` pauses it: it accepts connections and answers
    /// nothing until `"CONT"`).
    #[allow(dead_code)]
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server runs").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run `kill`");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "redis-server could not listen on port {} again",
            self.port
        );
    }

    /// Starts redis-server on this port; `false` if it is not the one that ends up serving it
    /// (it exited: the port was taken).
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start redis-server ({e}): {INSTALL_HINT}"));
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = self.child.as_mut() {
                if child.try_wait().ok().flatten().is_some() {
                    return false;
                }
            }
            match server_pid(self.port) {
                Some(serving) => return serving == pid,
                None => {
                    assert!(
                        Instant::now() < deadline,
                        "redis-server did not listen on port {} within 10 s: {INSTALL_HINT}",
                        self.port
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The process id of the Redis server listening on `port` (`INFO server`), if one answers.
fn server_pid(port: u16) -> Option<u32> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        .ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !reply.windows(11).any(|w| w == b"process_id:") || !reply.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&reply);
    let line = text.lines().find(|l| l.starts_with("process_id:"))?;
    line["process_id:".len()..].trim().parse().ok()
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
            // Kept for the whole test process (statics are never dropped), so a watchdog
            // kills it, and removes its directory, once this process has exited.
            let server = Box::leak(Box::new(RedisServer::start()));
            server.watch_over(std::process::id());
            server.url()
        })
        .clone()
}

/// Settings for one test: the shared server, a prefix of its own, and short timings so that
/// leases and retries play out quickly.
pub fn config(test: &str) -> RedisConfig {
    config_at(&shared_url(), test)
}

/// Settings for one test on the Redis Cluster shared by the tests of this binary (3
/// primaries; see [`cluster::shared`]), with a prefix of its own, as [`config`] makes them,
/// each workflow split into 3 partitions, so that its requests spread over the primaries.
pub fn cluster_config(test: &str) -> RedisConfig {
    let mut config = config_at(&cluster::shared().url(), test);
    config.partitions = 3;
    config
}

/// Settings for one test against the server at `url` (one the test started for itself): a
/// prefix of its own and the same short timings as [`config`].
pub fn config_at(url: &str, test: &str) -> RedisConfig {
    let mut config = RedisConfig::new(url);
    config.prefix = format!("t-{test}-{:08x}", fastrand::u32(..));
    config.lease = Duration::from_millis(1500);
    config.retry_poll = Duration::from_millis(10);
    config
}

/// A plain client of the server at `url`, for the raw commands the engine does not expose
/// (adding stream entries by hand, listing keys, reading pending entries).
pub async fn raw_client(url: &str) -> fred::prelude::Client {
    use fred::prelude::{Builder, ClientLike, Config};
    let config = Config::from_url(url).expect("a valid redis url");
    let client = Builder::from_config(config)
        .build()
        .expect("build a redis client");
    tokio::time::timeout(Duration::from_secs(10), client.init())
        .await
        .expect("connect to redis within 10 s")
        .expect("connect to redis");
    client
}

/// Runs the raw command `name` with `args` and converts its reply.
pub async fn raw<R: fred::types::FromValue>(
    client: &fred::prelude::Client,
    name: &'static str,
    args: Vec<fred::prelude::Value>,
) -> R {
    use fred::prelude::ClientLike;
    let command =
        fred::types::CustomCommand::new_static(name, fred::types::ClusterHash::FirstKey, false);
    client
        .custom(command, args)
        .await
        .unwrap_or_else(|e| panic!("redis {name} failed: {e}"))
}

/// Runs the raw command `name` with `args`; nil when Redis answers an error (a stream that does
/// not exist yet, say).
pub async fn raw_or_nil(
    client: &fred::prelude::Client,
    name: &'static str,
    args: Vec<fred::prelude::Value>,
) -> fred::prelude::Value {
    use fred::prelude::ClientLike;
    let command =
        fred::types::CustomCommand::new_static(name, fred::types::ClusterHash::FirstKey, false);
    client
        .custom(command, args)
        .await
        .unwrap_or(fred::prelude::Value::Null)
}

/// The hash tag that starts every key of `flow` under `prefix` (see the engine's `PROTOCOL.md`):
/// `{prefix:flow}`.
pub fn flow_tag(prefix: &str, flow: &str) -> String {
    format!("{{{prefix}:{flow}}}")
}

/// The ready stream of workflow `W`'s graph under `prefix`: one per version of a graph, named
/// by its structural hash.
#[allow(dead_code)]
pub fn ready_stream<W: goflow::Workflow>(prefix: &str) -> String {
    format!(
        "{}:ready@{:016x}",
        flow_tag(prefix, W::NAME),
        W::graph().structural_hash()
    )
}

/// The ready stream of the one version of workflow `flow` whose workers have started under
/// `prefix` (each adds its version to the workflow's `:versions` set as it starts); `None`
/// before the first has.
#[allow(dead_code)]
pub async fn ready_stream_named(
    client: &fred::prelude::Client,
    prefix: &str,
    flow: &str,
) -> Option<String> {
    let tag = flow_tag(prefix, flow);
    let versions: Vec<String> =
        raw(client, "SMEMBERS", vec![format!("{tag}:versions").into()]).await;
    assert!(
        versions.len() <= 1,
        "the versions of `{flow}`: {versions:?}"
    );
    Some(format!("{tag}:ready@{}", versions.first()?))
}

/// The index of the vertex at `path` in a request's state (vertices are in plan order, which is
/// also the vertex number in stream entries and state fields).
pub fn vertex_index(state: &goflow::request::RequestState, path: &str) -> usize {
    state
        .vertices
        .iter()
        .position(|v| v.vertex == path)
        .unwrap_or_else(|| panic!("no vertex `{path}` in {state:?}"))
}

/// Polls `check` every few milliseconds until it holds, failing the test with `what` if it
/// does not within `limit`. The limit only turns a hang into a failure; it is not a timing
/// expectation, so make it generous.
pub async fn wait_until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The entries of the stream at `key` (`XRANGE key - +`): id and fields of each.
pub async fn stream_entries(
    client: &fred::prelude::Client,
    key: &str,
) -> Vec<(String, std::collections::HashMap<String, String>)> {
    let reply: fred::prelude::Value =
        raw(client, "XRANGE", vec![key.into(), "-".into(), "+".into()]).await;
    let text = |v: &fred::prelude::Value| v.as_string().unwrap_or_default();
    reply
        .into_array()
        .into_iter()
        .map(|entry| {
            let mut parts = entry.into_array().into_iter();
            let id = parts.next().map(|v| text(&v)).unwrap_or_default();
            let fields: Vec<String> = parts
                .next()
                .map(|v| v.into_array().iter().map(text).collect())
                .unwrap_or_default();
            let fields = fields
                .chunks(2)
                .filter_map(|pair| Some((pair.first()?.clone(), pair.get(1)?.clone())))
                .collect();
            (id, fields)
        })
        .collect()
}

/// Entries delivered to the consumer group `workers` of the stream at `key` and not yet
/// acknowledged, per consumer (`XPENDING key workers`); empty when there are none.
pub async fn pending_by_consumer(
    client: &fred::prelude::Client,
    key: &str,
) -> std::collections::HashMap<String, u64> {
    let reply: fred::prelude::Value =
        raw(client, "XPENDING", vec![key.into(), "workers".into()]).await;
    let number = |v: &fred::prelude::Value| {
        v.as_u64()
            .or_else(|| v.as_string().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    };
    reply
        .into_array()
        .into_iter()
        .nth(3)
        .map(|consumers| {
            consumers
                .into_array()
                .into_iter()
                .filter_map(|pair| {
                    let pair = pair.into_array();
                    Some((pair.first()?.as_string()?, number(pair.get(1)?)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The output of request `id`, which must complete within `limit`.
pub async fn completed<W: goflow::Workflow>(
    engine: &goflow::redis::RedisEngine,
    id: &goflow::RequestId,
    limit: Duration,
) -> W::Output
where
    W::Output: std::fmt::Debug,
{
    use goflow::Engine as _;
    match engine.wait::<W>(id, limit).await.expect("wait") {
        goflow::request::RequestOutcome::Completed(output) => output,
        other => panic!("request {id} did not complete: {other:?}"),
    }
}

/// A server of the test's own and settings for it, as [`config_at`] makes them. The server is
/// killed when the returned [`RedisServer`] is dropped, so keep it for the whole test.
pub fn own_server(test: &str) -> (RedisServer, RedisConfig) {
    let server = RedisServer::start();
    let config = config_at(&server.url(), test);
    (server, config)
}

/// A worker of `engine` running in this process, as the service tests start one: stopped by
/// [`stop`](Self::stop), or cancelled and aborted when dropped (a test that fails midway).
pub struct LocalWorker {
    consumer: String,
    shutdown: tokio_util::sync::CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl LocalWorker {
    /// Spawns `engine.worker(concurrency)`, running until stopped; the task panics if the
    /// worker returns an error.
    pub fn start<C: goflow::codec::Codec>(
        engine: &goflow::redis::RedisEngine<C>,
        concurrency: usize,
    ) -> Self {
        let worker = engine.worker(concurrency);
        let consumer = worker.consumer().to_owned();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let token = shutdown.clone();
        let handle = tokio::spawn(async move {
            worker.run(token).await.expect("the worker runs");
        });
        Self {
            consumer,
            shutdown,
            handle: Some(handle),
        }
    }

    /// The worker's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Cancels the worker and waits for it, failing the test unless it ends cleanly within 30 s.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(30), handle)
                .await
                .expect("the worker stops within 30 s")
                .expect("the worker ends cleanly");
        }
    }
}

impl Drop for LocalWorker {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}
