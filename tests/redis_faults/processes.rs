//! Worker processes: this test binary started again, with only [`worker_process_entry`]
//! selected, as a worker that the tests can kill (SIGKILL), stop (SIGSTOP), let a node kill, or
//! shut down cleanly (closing its standard input, as a service's SIGTERM would).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fred::prelude::Client;
use goflow::redis::{RedisConfig, RunAhead};
use goflow::Workflow;
use tokio_util::sync::CancellationToken;

use crate::support::{pending_by_consumer, wait_until};
use crate::{kyc, ready_key, LIMIT};

/// The server a worker process connects to.
const WORKER_URL: &str = "GOFLOW_TEST_WORKER_URL";
/// The key prefix a worker process uses.
const WORKER_PREFIX: &str = "GOFLOW_TEST_WORKER_PREFIX";
/// The lease (ms) a worker process uses.
const WORKER_LEASE_MS: &str = "GOFLOW_TEST_WORKER_LEASE_MS";

/// How many partitions the workflows of the worker processes are split into.
const WORKER_PARTITIONS: &str = "GOFLOW_TEST_WORKER_PARTITIONS";

/// Whether the worker processes run ahead (`RedisConfig::run_ahead`): the mode's name,
/// `Off`, `Checked` or `Unchecked`.
const WORKER_RUN_AHEAD: &str = "GOFLOW_TEST_WORKER_RUN_AHEAD";

/// The name of [`worker_process_entry`] as the test harness knows it: its path in this
/// binary, without the crate's name (`processes::worker_process_entry`).
fn entry_name() -> &'static str {
    let path = concat!(module_path!(), "::worker_process_entry");
    path.split_once("::").map_or(path, |(_crate, name)| name)
}

/// Worker processes that are killed when dropped, so that a failing test leaves none behind.
pub(crate) struct WorkerProcesses(pub(crate) Vec<Child>);

impl WorkerProcesses {
    pub(crate) fn spawn(count: usize, config: &RedisConfig) -> Self {
        Self((0..count).map(|_| worker_process(config)).collect())
    }

    /// SIGKILLs the first worker once it holds entries of `W` (read or handed off); returns
    /// its consumer name and how many entries it held when it died (always some).
    pub(crate) async fn kill_first_holding<W: Workflow>(
        &mut self,
        client: &Client,
        config: &RedisConfig,
    ) -> (String, u64) {
        let victim_tag = format!("-{}-", self.0[0].id());
        let held_by_victim = async || {
            pending_by_consumer(client, &ready_key::<W>(config))
                .await
                .into_iter()
                .find(|(consumer, _)| consumer.contains(&victim_tag))
        };
        // Stopped (SIGSTOP) before it is killed, so that what it holds cannot change between
        // the look and the kill: a busy machine can let it finish what it held in between.
        loop {
            wait_until("the victim holds entries", LIMIT, async || {
                held_by_victim().await.is_some_and(|(_, held)| held > 0)
            })
            .await;
            self.signal(0, "-STOP");
            match held_by_victim().await {
                Some((victim, held)) if held > 0 => {
                    self.kill(0);
                    return (victim, held);
                }
                _ => self.signal(0, "-CONT"),
            }
        }
    }

    /// Sends worker `i` a signal (`-STOP`, `-CONT`).
    pub(crate) fn signal(&self, i: usize, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.0[i].id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal}");
    }

    /// Shuts worker `i` down cleanly (it stops reading, lets its attempts finish, and
    /// exits) and checks that it exited with success.
    pub(crate) fn stop(&mut self, i: usize) {
        drop(self.0[i].stdin.take());
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.0[i].try_wait().expect("poll the worker") {
                assert!(status.success(), "the worker exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not shut down within {LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs worker `i` and reaps it.
    pub(crate) fn kill(&mut self, i: usize) {
        self.0[i].kill().expect("SIGKILL the worker");
        self.0[i].wait().expect("reap the worker");
    }
}

/// Starts this test binary again as a worker process of `config`'s server and prefix.
pub(crate) fn worker_process(config: &RedisConfig) -> Child {
    Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", entry_name(), "--nocapture", "--include-ignored"])
        .env(WORKER_URL, &config.url)
        .env(WORKER_PREFIX, &config.prefix)
        .env(WORKER_LEASE_MS, config.lease.as_millis().to_string())
        .env(WORKER_PARTITIONS, config.partitions.to_string())
        .env(WORKER_RUN_AHEAD, format!("{:?}", config.run_ahead))
        // Closing it shuts the worker down cleanly (see `WorkerProcesses::stop`).
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a worker process")
}

impl Drop for WorkerProcesses {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Not a test: the body of the worker processes of the tests in [`crash`](crate::crash),
/// [`cluster`](crate::cluster),
/// [`leases`](crate::leases), [`innocents`](crate::innocents) and
/// [`consumers`](crate::consumers). Runs a worker of their workflows, when the environment
/// says where, until killed or until its standard input is closed (then it shuts down
/// cleanly); returns at once otherwise.
#[test]
#[ignore = "a worker process started by the crash and lease tests"]
fn worker_process_entry() {
    let (Ok(url), Ok(prefix)) = (std::env::var(WORKER_URL), std::env::var(WORKER_PREFIX)) else {
        return;
    };
    let lease = std::env::var(WORKER_LEASE_MS)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(1), Duration::from_millis);
    let partitions = std::env::var(WORKER_PARTITIONS)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        // Never outlive the test: a worker whose parent is gone exits.
        let parent = std::os::unix::process::parent_id();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if std::os::unix::process::parent_id() != parent {
                    std::process::exit(0);
                }
            }
        });
        let mut config = RedisConfig::new(url);
        config.prefix = prefix;
        config.lease = lease;
        config.retry_poll = Duration::from_millis(10);
        config.partitions = partitions;
        config.run_ahead = match std::env::var(WORKER_RUN_AHEAD).as_deref() {
            Ok("Checked") => RunAhead::Checked,
            Ok("Unchecked") => RunAhead::Unchecked,
            _ => RunAhead::Off,
        };
        let engine = kyc(config)
            .register::<crate::leases::Poison>()
            .register::<crate::crash::Sweep>()
            .register::<crate::cluster::KycEast>()
            .register::<crate::cluster::KycWest>()
            .register::<crate::cluster::KycNorth>()
            .register::<crate::crash::Mending>()
            .register::<crate::leases::CrashOnce>()
            .register::<crate::leases::CrashInDiamond>()
            .register::<crate::leases::StallThenHold>()
            .register::<crate::innocents::Errands>()
            .on_finish::<crate::consumers::Ticks, _, _>(|_| async {})
            .connect()
            .await
            .expect("worker connects");
        // A clean shutdown when the test closes this process's standard input.
        let shutdown = CancellationToken::new();
        let closed = shutdown.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            closed.cancel();
        });
        engine.worker(16).run(shutdown).await.expect("worker runs");
    });
}

/// The worker processes start [`worker_process_entry`] by its name: the harness of this binary
/// lists exactly that test under it (a module moved or renamed would otherwise start processes
/// that run no test and exit at once).
#[test]
fn the_worker_process_entry_is_found_by_its_name() {
    let listed = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--list", "--ignored", "--exact", entry_name()])
        .stderr(Stdio::inherit())
        .output()
        .expect("list the tests of this binary");
    assert!(listed.status.success(), "{listed:?}");
    let stdout = String::from_utf8_lossy(&listed.stdout);
    let tests: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .collect();
    assert_eq!(tests, [entry_name()], "{stdout}");
}
