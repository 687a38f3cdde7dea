//! Lost deliveries and leases: a vertex that kills every worker that runs it, entries that a
//! completion moved on or handed both branches of a diamond to, reclaimed from a dead worker
//! for what they carry, a late duplicate from a worker that stalled past its lease, and an
//! attempt longer than its lease that renews it.

use std::time::{Duration, Instant};

use fred::prelude::Client;
use goflow::prelude::*;
use goflow::redis::{RedisConfig, RedisEngine};
use goflow::request::{Failure, RequestFailure};
use goflow::{Engine, RequestId};

use crate::processes::{worker_process, WorkerProcesses};
use crate::support::{self, pending_by_consumer, raw, wait_until};
use crate::{
    assert_attempts, completed, double, failed, ready_key, record_run, runs, short_lease, Running,
    LIMIT,
};

/// Submits `input` to a worker process that the workflow kills, waits for it to die, and
/// starts another in its place, which takes the entry over after its lease.
async fn outlive_a_worker<W: Workflow>(
    engine: &RedisEngine,
    config: &RedisConfig,
    input: &W::Input,
) -> (WorkerProcesses, RequestId) {
    let mut workers = WorkerProcesses::spawn(1, config);
    let id = engine.submit::<W>(input).await.unwrap();
    wait_until("the worker dies", LIMIT, async || {
        workers.0[0].try_wait().unwrap().is_some()
    })
    .await;
    workers.0[0] = worker_process(config);
    (workers, id)
}

/// A path of its own in the temporary directory, for the files worker processes and the test
/// signal each other with.
fn scratch_path(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "goflow-{test}-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ))
}

/// Kills the worker process running it when given 666.
#[node]
async fn poison(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "poison");
    if n == 666 {
        std::process::exit(101);
    }
    n
}

/// Runs for more than two leases of the test that uses it.
#[node]
async fn linger(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "linger");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    n + 1
}

/// Kills the worker process running it the first time, when the file at `path` does not
/// exist yet (it creates it); returns the path after that.
#[node]
async fn crash_once(ctx: Context, path: String) -> String {
    record_run(&ctx, "crash_once");
    if !std::path::Path::new(&path).exists() {
        std::fs::write(&path, b"crashed").expect("write the marker");
        std::process::exit(101);
    }
    path
}

#[node]
async fn pass_on(ctx: Context, path: String) -> String {
    record_run(&ctx, "pass_on");
    path
}

#[node]
async fn finish(path: String) -> String {
    path + "!"
}

/// Hangs in its first attempt (until its worker dies); returns its input after that.
#[node]
async fn hang_first(ctx: Context, path: String) -> String {
    if ctx.attempt() == 1 {
        std::future::pending::<()>().await;
    }
    path
}

/// Joins two paths; its first attempt marks `<a>.joining` and waits for `<a>.go` first.
#[node]
async fn both(ctx: Context, a: String, b: String) -> String {
    if ctx.attempt() == 1 {
        std::fs::write(format!("{a}.joining"), b"").expect("mark");
        while !std::path::Path::new(&format!("{a}.go")).exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    format!("{a}+{b}")
}

/// Waits in its first attempt until the file `release` appears in `dir` (marking `started`
/// and, before returning, `returned`); later attempts return at once.
#[node]
async fn stall_first(ctx: Context, dir: String) -> String {
    let dir_path = std::path::Path::new(&dir);
    if ctx.attempt() == 1 {
        std::fs::write(dir_path.join("started"), b"").expect("mark");
        while !dir_path.join("release").exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::write(dir_path.join("returned"), b"").expect("mark");
    }
    dir
}

/// Hangs in its first attempt (marking `holding` in `dir`), until its worker is killed.
#[node]
async fn hold_first(ctx: Context, dir: String) -> String {
    if ctx.attempt() == 1 {
        std::fs::write(std::path::Path::new(&dir).join("holding"), b"").expect("mark");
        std::future::pending::<()>().await;
    }
    dir
}

workflow! {
    /// Kills its worker on 666.
    pub(crate) Poison = poison -> double;
    /// Outlives its lease.
    pub(crate) Linger = linger -> double;
    /// A chain whose middle vertex kills its worker once, after the entry was moved on to it.
    pub(crate) CrashOnce = pass_on -> crash_once -> finish;
    /// A diamond whose branches run together: one kills its worker once, the other hangs
    /// in its first attempt.
    pub(crate) CrashInDiamond = pass_on -> [crash_once, hang_first] => both;
    /// A chain whose first vertex stalls and whose second hangs, each in its first attempt.
    pub(crate) StallThenHold = stall_first -> hold_first -> finish;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vertex_that_kills_every_worker_is_failed_as_lost_and_dead_lettered() {
    let (_server, config, engine, client) = short_lease::<Poison>("poison").await;
    let mut workers = WorkerProcesses::spawn(1, &config);

    // Each delivery kills its worker; a new worker takes the entry over after its lease.
    let id = engine.submit::<Poison>(&666).await.unwrap();
    let mut deaths = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = engine.status::<Poison>(&id).await.unwrap();
        if state.status.is_final() {
            break;
        }
        if workers.0[0].try_wait().unwrap().is_some() {
            deaths += 1;
            workers.0[0] = worker_process(&config);
        }
        assert!(
            Instant::now() < deadline && deaths <= 10,
            "the request did not fail within 60 s ({deaths} worker deaths): {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The first delivery ran at once, started ahead of its slot: its loss is not charged (it
    // might have been only waiting). The reclaimed ones are started as they run, and each loss
    // is charged; `max_lost_deliveries` is 3: the sixth delivery, the fourth charged loss
    // behind it, fails the vertex instead of running it.
    let want = RequestFailure::new("poison", 6, Failure::Lost(4));
    assert_eq!(failed::<Poison>(&engine, &id).await, want);
    assert!((1..=5).contains(&deaths), "{deaths} worker deaths");
    let dead = format!("{}:dead", support::flow_tag(&config.prefix, Poison::NAME));
    let letters = support::stream_entries(&client, &dead).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].1["r"], id.as_str());
    let recorded: RequestFailure = serde_json::from_str(&letters[0].1["failure"]).unwrap();
    assert_eq!(recorded, want);

    // The last worker serves other requests.
    let output = tokio::time::timeout(LIMIT, engine.run::<Poison>(21))
        .await
        .expect("a harmless request completes")
        .unwrap();
    assert_eq!(output, 42);
}

/// A completion moves its entry on to the next vertex of a chain instead of adding one. When
/// the worker dies running that vertex, the worker that reclaims the entry runs the vertex it
/// carries (as a lost delivery), not the one it was added for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_moved_on_to_the_next_vertex_is_reclaimed_for_that_vertex() {
    let (_server, config, engine, client) = short_lease::<CrashOnce>("moved").await;
    let marker = scratch_path("moved");
    let path = marker.to_string_lossy().into_owned();
    // The worker dies in `crash_once`.
    let (_workers, id) = outlive_a_worker::<CrashOnce>(&engine, &config, &path).await;
    assert_eq!(
        completed::<CrashOnce>(&engine, &id).await,
        format!("{path}!")
    );
    let _ = std::fs::remove_file(&marker);

    let want = [("pass_on", 1), ("crash_once", 2), ("finish", 1)];
    assert_attempts::<CrashOnce>(&engine, &id, &want).await;
    // One entry carried the whole chain, and nothing is left of it.
    assert_one_entry_carried_it_all(&client, &ready_key::<CrashOnce>(&config)).await;
}

/// Asserts that `stream` got one entry in all, which is gone (acknowledged and deleted).
async fn assert_one_entry_carried_it_all(client: &Client, stream: &str) {
    assert_eq!(raw::<u64>(client, "XLEN", vec![stream.into()]).await, 0);
    assert!(
        pending_by_consumer(client, stream).await.is_empty(),
        "{stream}"
    );
    let info: Vec<fred::prelude::Value> =
        raw(client, "XINFO", vec!["STREAM".into(), stream.into()]).await;
    let entries_added = info
        .chunks(2)
        .find(|pair| pair[0].as_str().as_deref() == Some("entries-added"))
        .and_then(|pair| pair[1].as_u64());
    assert_eq!(entries_added, Some(1), "one entry carried the request");
}

/// A completion hands both branches of a diamond to its worker on its own entry, which then
/// carries the two at once. When the worker dies running them, the worker that reclaims the
/// entry runs both (as lost deliveries) at once, having reclaimed it once, and the join fires
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_carrying_both_branches_is_reclaimed_for_both() {
    let (_server, config, engine, client) = short_lease::<CrashInDiamond>("branches").await;
    let marker = scratch_path("branches");
    let path = marker.to_string_lossy().into_owned();
    let (_workers, id) = outlive_a_worker::<CrashInDiamond>(&engine, &config, &path).await;
    // The join runs on the entry too: reclaimed once, it was delivered twice in all (a
    // branch left behind would have kept it unrenewed, to be reclaimed again).
    let joining = format!("{path}.joining");
    wait_until("the join runs", LIMIT, async || {
        std::path::Path::new(&joining).exists()
    })
    .await;
    let ready = ready_key::<CrashInDiamond>(&config);
    let pending: Vec<Vec<fred::prelude::Value>> = raw(
        &client,
        "XPENDING",
        vec![
            ready.as_str().into(),
            "workers".into(),
            "-".into(),
            "+".into(),
            "10".into(),
        ],
    )
    .await;
    let deliveries: Vec<u64> = pending.iter().filter_map(|e| e.get(3)?.as_u64()).collect();
    assert_eq!(deliveries, vec![2], "{pending:?}");
    std::fs::write(format!("{path}.go"), b"").unwrap();
    assert_eq!(
        completed::<CrashInDiamond>(&engine, &id).await,
        format!("{path}+{path}")
    );
    for file in [marker.clone(), joining.into(), format!("{path}.go").into()] {
        let _ = std::fs::remove_file(file);
    }

    let want = [
        ("pass_on", 1),
        ("crash_once", 2),
        ("hang_first", 2),
        ("both", 1),
    ];
    assert_attempts::<CrashInDiamond>(&engine, &id, &want).await;
    assert_one_entry_carried_it_all(&client, &ready_key::<CrashInDiamond>(&config)).await;
}

/// A worker that stalls past its lease (stopped by SIGSTOP) loses its entry to another, which
/// runs the vertex and moves the entry on to the next one. When the stalled worker wakes and
/// finishes the first vertex too, its completion is a duplicate and must leave the entry
/// pending: the next vertex lives on it. Then the second worker dies, and the entry is
/// reclaimed for the vertex it carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_duplicate_leaves_a_moved_entry_pending() {
    let (_server, config, engine, client) = short_lease::<StallThenHold>("late").await;
    let ready = ready_key::<StallThenHold>(&config);
    let dir = scratch_path("late");
    std::fs::create_dir_all(&dir).unwrap();
    let marked = |name: &str| dir.join(name).exists();

    // Worker A starts `stall_first` and is stopped in it.
    let mut workers = WorkerProcesses::spawn(1, &config);
    let id = engine
        .submit::<StallThenHold>(&dir.to_string_lossy().into_owned())
        .await
        .unwrap();
    wait_until("A runs stall_first", LIMIT, async || marked("started")).await;
    workers.signal(0, "-STOP");

    // Worker B reclaims the entry after its lease, runs `stall_first` again, and moves the
    // entry on to `hold_first`, which hangs.
    workers.0.push(worker_process(&config));
    wait_until("B runs hold_first", LIMIT, async || marked("holding")).await;

    // A wakes and finishes `stall_first`: a duplicate, which must not acknowledge the entry.
    std::fs::write(dir.join("release"), b"").unwrap();
    workers.signal(0, "-CONT");
    wait_until("A's stall_first returns", LIMIT, async || {
        marked("returned")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pending = pending_by_consumer(&client, &ready).await;
    assert_eq!(
        pending.values().sum::<u64>(),
        1,
        "the moved entry is pending: {pending:?}"
    );

    // B dies; A reclaims the entry for `hold_first` (its second attempt returns).
    workers.0[1].kill().unwrap();
    let output = completed::<StallThenHold>(&engine, &id).await;
    assert_eq!(output, format!("{}!", dir.to_string_lossy()));
    let want = [("stall_first", 2), ("hold_first", 2), ("finish", 1)];
    assert_attempts::<StallThenHold>(&engine, &id, &want).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_longer_than_the_lease_keeps_it_and_runs_once() {
    let (_server, mut config) = support::own_server("lease");
    config.lease = Duration::from_secs(1);
    let linger_flow = |config| RedisEngine::builder(config).register::<Linger>();
    // Two workers: the idle one would claim the entry if the busy one did not renew it.
    let first = Running::start(config.clone(), linger_flow).await;
    let second = Running::start(config, linger_flow).await;
    let engine = &first.engine;

    let id = engine.submit::<Linger>(&4).await.unwrap();
    assert_eq!(completed::<Linger>(engine, &id).await, 10);
    assert_eq!(runs(&id, "linger"), 1);
    let state = engine.status::<Linger>(&id).await.unwrap();
    assert!(state.vertices.iter().all(|v| v.attempts == 1), "{state:?}");
    second.finish().await;
    first.finish().await;
}
