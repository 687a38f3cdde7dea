//! Redis out of memory (`maxmemory` with `noeviction`, filled with filler keys): a spell while
//! a backlog waits strands nothing, and once memory is freed the backlog drains at full speed,
//! far within one lease, each vertex having run once; a worker started at `maxmemory` waits
//! instead of exiting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fred::prelude::{Client, ClientLike, Value};
use goflow::prelude::*;
use goflow::redis::{RedisConfig, RedisEngine, RedisEngineBuilder};
use goflow::Engine;

use crate::support::{self, pending_by_consumer, raw, raw_client, wait_until, RedisServer};
use crate::{completed, double, expected, kyc, ready_key, record_run, runs, Kyc, Running, LIMIT};

/// Closed: `hold_back` waits.
static HELD_BACK: AtomicBool = AtomicBool::new(true);

/// Waits while [`HELD_BACK`] is closed, so that the backlog is queued and the workers' slots
/// are busy when memory runs out.
#[node]
async fn hold_back(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "hold_back");
    while HELD_BACK.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    n
}

workflow! {
    /// Held back, then doubled.
    pub(crate) Backlog = hold_back -> double;
}

fn backlog(config: RedisConfig) -> RedisEngineBuilder {
    RedisEngine::builder(config).register::<Backlog>()
}

/// Runs the raw command `name` with `args`, and returns its error, if any.
async fn refused(client: &Client, name: &'static str, args: Vec<Value>) -> Option<String> {
    let command =
        fred::types::CustomCommand::new_static(name, fred::types::ClusterHash::FirstKey, false);
    let reply: Result<Value, _> = client.custom(command, args).await;
    reply.err().map(|e| e.details().to_owned())
}

/// The server's `used_memory` (bytes).
async fn used_memory(client: &Client) -> u64 {
    let info: String = raw(client, "INFO", vec!["memory".into()]).await;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO memory has used_memory")
}

/// Fills the server with 8 MB of filler keys and sets `maxmemory` halfway through them, with
/// `noeviction`: writes are refused until the filler is freed ([`free`]), which leaves 4 MB.
async fn fill_to_maxmemory(client: &Client) -> Vec<String> {
    let _: Value = raw(
        client,
        "CONFIG",
        vec!["SET".into(), "maxmemory-policy".into(), "noeviction".into()],
    )
    .await;
    let before = used_memory(client).await;
    let value = "x".repeat(128 * 1024);
    let keys: Vec<String> = (0..64).map(|i| format!("filler:{i}")).collect();
    for key in &keys {
        let _: Value = raw(
            client,
            "SET",
            vec![key.as_str().into(), value.as_str().into()],
        )
        .await;
    }
    let limit = before + 4 * 1024 * 1024;
    let _: Value = raw(
        client,
        "CONFIG",
        vec!["SET".into(), "maxmemory".into(), limit.to_string().into()],
    )
    .await;
    let error = refused(client, "SET", vec!["probe".into(), "x".into()]).await;
    assert!(
        error.as_deref().is_some_and(|e| e.starts_with("OOM")),
        "Redis is out of memory: {error:?}"
    );
    keys
}

/// Deletes the filler keys.
async fn free(client: &Client, keys: &[String]) {
    let _: Value = raw(
        client,
        "DEL",
        keys.iter().map(|k| k.as_str().into()).collect(),
    )
    .await;
    assert_eq!(
        refused(client, "SET", vec!["probe".into(), "x".into()]).await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_oom_spell_strands_nothing_and_the_backlog_drains_at_full_speed() {
    const REQUESTS: u32 = 600;
    const CONCURRENCY: u64 = 16;
    let server = RedisServer::start();
    let mut config = support::config_at(&server.url(), "oom");
    // Reclaiming (after a lease, a batch per half lease) would take over a minute for the
    // backlog: the drain below must not wait for it.
    config.lease = Duration::from_secs(10);
    let client = raw_client(&config.url).await;
    let first = Running::start(config.clone(), backlog).await;
    let second = Running::start(config.clone(), backlog).await;
    let engine = &first.engine;

    // A backlog: both workers' slots are busy with held-back attempts, the rest queued.
    let mut ids = Vec::new();
    for n in 0..REQUESTS {
        ids.push((engine.submit::<Backlog>(&n).await.unwrap(), n));
    }
    wait_until("both workers' slots are busy", LIMIT, async || {
        ids.iter()
            .filter(|(id, _)| runs(id, "hold_back") > 0)
            .count()
            >= 2 * CONCURRENCY as usize
    })
    .await;

    // Memory runs out; the held-back attempts end, and for a few seconds every completion and
    // start is refused. The workers keep what they hold and read no more: at most their
    // intake and their slots, twice their concurrency, are pending.
    let filler = fill_to_maxmemory(&client).await;
    HELD_BACK.store(false, Ordering::SeqCst);
    let ready = ready_key::<Backlog>(&config);
    let spell = Instant::now() + Duration::from_secs(3);
    let mut most_pending = 0;
    while Instant::now() < spell {
        let pending: u64 = pending_by_consumer(&client, &ready).await.values().sum();
        most_pending = most_pending.max(pending);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        most_pending <= 2 * 2 * CONCURRENCY,
        "{most_pending} entries pending during the spell: the workers read on"
    );

    // Memory returns: the backlog drains at full speed, well within one lease.
    free(&client, &filler).await;
    let freed = Instant::now();
    for (id, n) in &ids {
        assert_eq!(completed::<Backlog>(engine, id).await, n * 2, "{id}");
    }
    let recovery = freed.elapsed();
    println!(
        "oom: {REQUESTS} requests drained {recovery:?} after memory returned \
         (at most {most_pending} pending during the spell)"
    );
    assert!(
        recovery < config.lease / 2,
        "the backlog took {recovery:?} to drain after memory returned"
    );
    // Each vertex ran once: no completion refused meanwhile was run again.
    for (id, _) in &ids {
        assert_eq!(runs(id, "hold_back"), 1, "{id}");
        assert_eq!(runs(id, "double"), 1, "{id}");
    }
    second.finish().await;
    first.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_at_maxmemory_waits_for_memory() {
    let server = RedisServer::start();
    let mut config = support::config_at(&server.url(), "oom-start");
    config.lease = Duration::from_secs(1);
    let client = raw_client(&config.url).await;
    // A worker creates the consumer group, and goes.
    let first = Running::start(config.clone(), kyc).await;
    assert_eq!(
        first.engine.run::<Kyc>("ann".into()).await.unwrap(),
        expected("ann")
    );
    first.finish().await;

    // Started at maxmemory (XGROUP CREATE is refused, though the group exists), a worker
    // waits instead of exiting, and serves once memory returns.
    let filler = fill_to_maxmemory(&client).await;
    let second = Running::start(config.clone(), kyc).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !second.worker.is_finished(),
        "the worker exited at maxmemory: {:?}",
        second.worker.await
    );
    free(&client, &filler).await;
    let output = tokio::time::timeout(LIMIT, second.engine.run::<Kyc>("bob".into()))
        .await
        .expect("a request completes once memory returns")
        .unwrap();
    assert_eq!(output, expected("bob"));
    second.finish().await;
}
