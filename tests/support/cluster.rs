//! A local Redis Cluster for the tests: `redis-server --cluster-enabled yes` on free ports (each
//! in a temporary directory of its own, persistence off), joined by `redis-cli --cluster
//! create`, as the single servers of `RedisServer` are started.

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{free_port, RedisServer};

const CLI_HINT: &str = "the Redis Cluster tests need `redis-cli` on PATH (Debian/Ubuntu: \
`apt-get install -y redis-tools`, which `redis-server` brings; macOS: `brew install redis`)";

/// A cluster of `redis-server`s owned by the test run; killed when dropped.
pub struct RedisCluster {
    /// The primaries first, then the replicas.
    pub nodes: Vec<RedisServer>,
    primaries: usize,
}

impl RedisCluster {
    /// Starts `primaries` primaries, each with `replicas` replicas, and waits until the
    /// cluster serves every slot.
    pub fn start(primaries: usize, replicas: usize) -> Self {
        let count = primaries * (1 + replicas);
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| {
                let bus = free_port().to_string();
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    &bus,
                    // A replica takes over within a second or two of its primary's death.
                    "--cluster-node-timeout",
                    "1000",
                    // A replica syncs as soon as it is assigned (not 5 s later, Redis's
                    // default, when a test may already have killed its primary).
                    "--repl-diskless-sync-delay",
                    "0",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("could not run redis-cli ({e}): {CLI_HINT}"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { nodes, primaries };
        cluster.wait_until_ok();
        cluster
    }

    /// The cluster's URL, as `GOFLOW_REDIS_URL` takes it (`redis-cluster://` with every
    /// node).
    pub fn url(&self) -> String {
        let mut nodes = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port()));
        let first = nodes.next().expect("a node");
        let rest: Vec<String> = nodes.map(|n| format!("node={n}")).collect();
        format!("redis-cluster://{first}?{}", rest.join("&"))
    }

    /// The URL of each node alone (`redis://`), primaries first as started.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// How many primaries the cluster was started with.
    pub fn primaries(&self) -> usize {
        self.primaries
    }

    /// Waits until every live node says the cluster is up and serves every slot, and every
    /// live replica has synced with its primary.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                let replica = cli(n.port(), &["INFO", "replication"]);
                cli(n.port(), &["CLUSTER", "INFO"]).contains("cluster_state:ok")
                    && (replica.contains("role:master")
                        || (replica.contains("master_link_status:up")
                            && replica.contains("master_sync_in_progress:0")))
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok (and its replicas their sync) within \
                 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl RedisCluster {
    /// Moves hash slot `slot` from primary `from` to primary `to` (indexes into `nodes`) as
    /// `redis-cli --cluster reshard` does, a batch of keys at a time: `IMPORTING` on the
    /// target, `MIGRATING` on the source, `MIGRATE` of its keys, then the slot is the
    /// target's on every node (clients are redirected with `MOVED` from then on). Answers how
    /// many keys it moved.
    pub fn move_slot(&self, slot: u16, from: usize, to: usize) -> usize {
        let (source, target) = (self.nodes[from].port(), self.nodes[to].port());
        let id = |port: u16| cli(port, &["CLUSTER", "MYID"]).trim().to_owned();
        let (source_id, target_id) = (id(source), id(target));
        let slot = slot.to_string();
        let ok = |port: u16, args: &[&str]| {
            let answer = cli(port, args);
            assert!(
                answer.trim() == "OK" || answer.trim() == "NOKEY",
                "{args:?}: {answer}"
            );
        };
        ok(
            target,
            &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &source_id],
        );
        ok(
            source,
            &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &target_id],
        );
        let mut moved = 0;
        loop {
            let keys = cli(source, &["CLUSTER", "GETKEYSINSLOT", &slot, "10"]);
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let port = target.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(&keys);
            ok(source, &args);
            moved += keys.len();
        }
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            ok(
                node.port(),
                &["CLUSTER", "SETSLOT", &slot, "NODE", &target_id],
            );
        }
        self.wait_until_ok();
        moved
    }
}

/// What `redis-cli -p port args…` prints (empty if it cannot be run).
pub fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The cluster shared by the tests of this binary (each with its own prefix): 3 primaries.
pub fn shared() -> &'static RedisCluster {
    static CLUSTER: OnceLock<&'static RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        // Kept for the whole test process (statics are never dropped), so a watchdog kills
        // each node, and removes its directory, once this process has exited.
        let cluster: &'static RedisCluster = Box::leak(Box::new(RedisCluster::start(3, 0)));
        for node in &cluster.nodes {
            node.watch_over(std::process::id());
        }
        cluster
    })
}
