//! The life of a request where the Redis engine has ways of its own: a pause or stop that takes
//! back an entry no worker has read, an entry vertex run at once, stream entry ids that two
//! flows share, several flows read by one worker, and the expiry of finished requests' keys.
//! What both engines do alike (the control table, parking, stops, retries, the sweep) is in
//! the conformance suite `tests/lifecycle.rs`.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use fred::prelude::Client;
use goflow::prelude::*;
use goflow::redis::{RedisConfig, RedisEngine, RedisEngineBuilder, RunAhead};
use goflow::request::{RequestOutcome, RequestState, RequestStatus, VersionState, VertexStatus};
use goflow::{Engine, Error, RequestId};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use support::{pending_by_consumer, raw, raw_client, vertex_index, wait_until};

/// How long any single wait of these tests may take before the test fails.
const LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Executions, gates and cancellations, per request and node, in this process.

/// Which node started, for which request.
static RUNS: support::probe::Runs = support::probe::Runs::new();
/// Gates that are closed: the node waits until the gate opens.
static CLOSED: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Requests whose `hold` attempt saw its cancellation or was dropped before it finished.
static CANCELLED: Mutex<Vec<(String, &'static str)>> = Mutex::new(Vec::new());

fn record_run(ctx: &Context, node: &'static str) {
    RUNS.record(ctx, node);
}

fn runs(id: &RequestId, node: &str) -> usize {
    RUNS.count(id, node)
}

fn close_gate(id: &RequestId) {
    CLOSED.lock().unwrap().push(id.as_str().to_owned());
}

fn open_gate(id: &RequestId) {
    CLOSED.lock().unwrap().retain(|r| r != id.as_str());
}

fn gate_closed(id: &RequestId) -> bool {
    CLOSED.lock().unwrap().iter().any(|r| r == id.as_str())
}

/// How `hold`'s attempt for `id` ended early: `"cancelled"` (it saw `ctx.cancelled()`) or
/// `"dropped"` (its future was dropped while waiting).
fn cancellation(id: &RequestId) -> Option<&'static str> {
    CANCELLED
        .lock()
        .unwrap()
        .iter()
        .find(|(r, _)| r == id.as_str())
        .map(|(_, how)| *how)
}

/// Records that `hold` was dropped unless it finished.
struct DropWatch {
    request: String,
    finished: bool,
}

impl Drop for DropWatch {
    fn drop(&mut self) {
        if !self.finished {
            CANCELLED
                .lock()
                .unwrap()
                .push((std::mem::take(&mut self.request), "dropped"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Workflows.

#[node]
async fn prepare(ctx: Context, n: u32) -> Result<u32, NodeError> {
    record_run(&ctx, "prepare");
    if n == 13 {
        return Err(NodeError::permanent("13 is unlucky"));
    }
    Ok(n + 1)
}

/// Waits at its gate, giving up when its request is stopped.
#[node]
async fn hold(ctx: Context, n: u32) -> Result<u32, NodeError> {
    record_run(&ctx, "hold");
    let mut watch = DropWatch {
        request: ctx.request_id().as_str().to_owned(),
        finished: false,
    };
    let gate = async {
        while gate_closed(ctx.request_id()) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let result = tokio::select! {
        () = gate => Ok(n * 2),
        () = ctx.cancelled() => {
            CANCELLED
                .lock()
                .unwrap()
                .push((ctx.request_id().as_str().to_owned(), "cancelled"));
            Err(NodeError::permanent("stopped"))
        }
    };
    watch.finished = true;
    result
}

#[node]
async fn finish(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "finish");
    n + 3
}

/// `Gated`'s output for `n`.
fn gated(n: u32) -> u32 {
    (n + 1) * 2 + 3
}

#[node]
async fn split(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "split");
    tokio::time::sleep(Duration::from_millis(u64::from(n % 3))).await;
    n + 1
}

#[node]
async fn left(ctx: Context, n: u32) -> u64 {
    record_run(&ctx, "left");
    tokio::time::sleep(Duration::from_millis(u64::from(n % 2) + 1)).await;
    u64::from(n) * 3
}

#[node]
async fn right(ctx: Context, n: u32) -> u64 {
    record_run(&ctx, "right");
    tokio::time::sleep(Duration::from_millis(1)).await;
    u64::from(n) + 1000
}

#[node]
async fn join(ctx: Context, a: u64, b: u64) -> u64 {
    record_run(&ctx, "join");
    tokio::time::sleep(Duration::from_millis(1)).await;
    a * 10_000 + b
}

#[node]
async fn tail(ctx: Context, n: u64) -> u64 {
    record_run(&ctx, "tail");
    n + 7
}

/// `Diamond`'s output for `n`.
fn diamond(n: u32) -> u64 {
    let m = u64::from(n) + 1;
    (m * 3) * 10_000 + (m + 1000) + 7
}

/// A quick step of `Steps`.
#[node]
async fn step(n: u32) -> u32 {
    n + 1
}

/// The items a `Fan` request of `n` goes through.
#[node]
async fn fan_source(n: u32) -> Vec<u32> {
    (1..=n).collect()
}

#[node]
async fn fan_item(n: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(1)).await;
    n * n
}

#[node]
async fn fan_sum(squares: Vec<u32>) -> u32 {
    squares.iter().sum()
}

workflow! {
    /// A small for-each: a list, a quick vertex per item, and their gather.
    pub Fan = fan_source -> each { fan_item } => fan_sum;
    /// Six quick vertices in a row.
    pub Steps = step -> step as s2 -> step as s3 -> step as s4 -> step as s5 -> step as s6;
    /// A chain whose middle vertex waits at a gate the test controls.
    pub Gated = prepare -> hold -> finish;
    /// A fan-out, a join and a tail, with a little async work in each.
    pub Diamond = split -> [left, right] => join -> tail;
    /// A chain whose entry vertex waits at a gate the test controls.
    pub HeldFirst = hold -> finish;
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// An engine with both workflows and a worker running in this process.
struct Running {
    engine: RedisEngine,
    client: Client,
    shutdown: CancellationToken,
    worker: JoinHandle<Result<(), Error>>,
}

impl Running {
    async fn start(config: RedisConfig) -> Self {
        Self::start_with(config, 16).await
    }

    /// [`start`](Self::start) with a worker running up to `concurrency` attempts at once.
    async fn start_with(config: RedisConfig, concurrency: usize) -> Self {
        let client = raw_client(&config.url).await;
        let engine = builder(config).connect().await.expect("connect");
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(engine.worker(concurrency).run(shutdown.clone()));
        let running = Self {
            engine,
            client,
            shutdown,
            worker,
        };
        // Stops reach workers over pub/sub: make sure this one listens before going on.
        let channel = format!("{}:control", running.engine.config().prefix);
        wait_until("the worker listens for stops", LIMIT, async || {
            let reply: Vec<fred::prelude::Value> = raw(
                &running.client,
                "PUBSUB",
                vec!["NUMSUB".into(), channel.as_str().into()],
            )
            .await;
            reply.get(1).and_then(fred::prelude::Value::as_u64) == Some(1)
        })
        .await;
        running
    }

    async fn state(&self, id: &RequestId) -> RequestState {
        self.engine
            .status::<Gated>(id)
            .await
            .expect("the request's state")
    }

    /// Waits until `hold` runs for `id`.
    async fn wait_holding(&self, id: &RequestId) {
        wait_until(&format!("hold runs for {id}"), LIMIT, async || {
            runs(id, "hold") == 1
        })
        .await;
    }

    async fn finish(self) {
        self.shutdown.cancel();
        tokio::time::timeout(LIMIT, self.worker)
            .await
            .expect("the worker stops")
            .expect("the worker task did not panic")
            .expect("the worker ended without error");
    }
}

fn builder(config: RedisConfig) -> RedisEngineBuilder {
    RedisEngine::builder(config)
        .register::<Gated>()
        .register::<Diamond>()
        .register::<HeldFirst>()
        .register::<Steps>()
        .register::<Fan>()
}

async fn outcome<W: Workflow>(engine: &RedisEngine, id: &RequestId) -> RequestOutcome<W::Output> {
    engine.wait::<W>(id, LIMIT).await.expect("wait")
}

// ---------------------------------------------------------------------------------------------
// Pause and stop before any worker reads an entry; attempts run at once; entry ids shared by
// two flows' streams. (Pause, resume and stop on both engines are in `tests/lifecycle.rs`.)

/// A small input rides on the entry vertex's entry, and the worker that reads it runs the vertex
/// at once, without asking whether it may: a pause or stop that comes before any worker has
/// read the entry takes it back. Paused, the entry vertex is parked at once and runs when the
/// request is resumed; stopped, it never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_or_stop_before_any_worker_reads_the_entry_takes_it_back() {
    let (_server, config) = support::own_server("take-back");
    let client = raw_client(&config.url).await;
    let submitter = builder(config.clone()).connect().await.expect("connect");
    let paused = submitter.submit::<Gated>(&4).await.unwrap();
    let stopped = submitter.submit::<Gated>(&5).await.unwrap();
    assert_eq!(
        submitter.pause::<Gated>(&paused).await.unwrap(),
        RequestStatus::Paused
    );
    assert_eq!(
        submitter.stop::<Gated>(&stopped).await.unwrap(),
        RequestStatus::Stopped
    );
    let ready = support::ready_stream::<Gated>(&config.prefix);
    assert_eq!(raw::<u64>(&client, "XLEN", vec![ready.into()]).await, 0);

    let running = Running::start(config).await;
    let engine = &running.engine;
    let state = running.state(&paused).await;
    let at = vertex_index(&state, "prepare");
    assert_eq!(state.vertices[at].status, VertexStatus::Parked, "{state:?}");
    // Give a wrongly delivered entry the chance to run; it must not.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs(&paused, "prepare"), 0);
    assert_eq!(runs(&stopped, "prepare"), 0);

    assert_eq!(
        engine.resume::<Gated>(&paused).await.unwrap(),
        RequestStatus::Running
    );
    match outcome::<Gated>(engine, &paused).await {
        RequestOutcome::Completed(output) => assert_eq!(output, 13),
        other => panic!("{other:?}"),
    }
    for node in ["prepare", "hold", "finish"] {
        assert_eq!(runs(&paused, node), 1, "{node}");
    }
    assert!(matches!(
        outcome::<Gated>(engine, &stopped).await,
        RequestOutcome::Stopped
    ));
    assert_eq!(runs(&stopped, "prepare"), 0);
    running.finish().await;
}

/// An entry vertex that runs at once (its entry carried the input) records its start with its
/// end, or on its own once it runs long: the request's state shows it running on its worker
/// meanwhile, and one attempt in the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_vertex_run_at_once_shows_running_while_it_runs_long() {
    let (_server, config) = support::own_server("at-once");
    let running = Running::start(config).await;
    let engine = &running.engine;
    let id = RequestId::generate();
    close_gate(&id);
    assert!(engine.submit_as::<HeldFirst>(id.clone(), &4).await.unwrap());
    wait_until(&format!("hold runs for {id}"), LIMIT, async || {
        runs(&id, "hold") == 1
    })
    .await;
    let state_of = async || engine.status::<HeldFirst>(&id).await.expect("a state");
    let at = vertex_index(&state_of().await, "hold");
    wait_until("hold shows running", LIMIT, async || {
        let state = state_of().await;
        let hold = &state.vertices[at];
        hold.status == VertexStatus::Running
            && hold.attempts == 1
            && hold.worker.is_some()
            && hold.started_at_ms.is_some()
            && state.status == RequestStatus::Running
    })
    .await;
    open_gate(&id);
    match outcome::<HeldFirst>(engine, &id).await {
        RequestOutcome::Completed(output) => assert_eq!(output, 11),
        other => panic!("{other:?}"),
    }
    let state = state_of().await;
    assert!(
        state
            .vertices
            .iter()
            .all(|v| v.status == VertexStatus::Done && v.attempts == 1 && v.worker.is_some()),
        "{state:?}"
    );
    running.finish().await;
}

/// Makes the next entry ids of `gated`'s and `diamond`'s ready streams collide, then starts a
/// `Gated` request whose `hold` waits at its closed gate under entry `<ms>-2` of its stream, and
/// runs a `Diamond` request to completion, whose `left` or `right` ran under `<ms>-2` of the
/// other stream. Returns the `Gated` request.
///
/// Stream entry ids are unique within one stream only, yet a worker tracks its running attempts
/// by entry id alone, across all its workflows' streams: the `Diamond` attempt overwrote
/// `hold`'s record, and removed it when it finished.
async fn run_two_attempts_under_one_entry_id(running: &Running) -> RequestId {
    let engine = &running.engine;
    let prefix = engine.config().prefix.clone();
    // The worker created both ready streams (with their group); give them the same last id.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let last = format!("{}-0", now_ms + 3_600_000);
    for ready in [
        support::ready_stream::<Gated>(&prefix),
        support::ready_stream::<Diamond>(&prefix),
    ] {
        let _: fred::prelude::Value = raw(
            &running.client,
            "XSETID",
            vec![ready.into(), last.as_str().into()],
        )
        .await;
    }
    let held = RequestId::generate();
    close_gate(&held);
    engine.submit_as::<Gated>(held.clone(), &1).await.unwrap();
    running.wait_holding(&held).await;
    let other = engine.submit::<Diamond>(&2).await.unwrap();
    match outcome::<Diamond>(engine, &other).await {
        RequestOutcome::Completed(output) => assert_eq!(output, diamond(2)),
        unexpected => panic!("{unexpected:?}"),
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_reaches_an_attempt_whose_entry_id_another_flow_uses_too() {
    let (_server, config) = support::own_server("same-id-stop");
    let running = Running::start(config).await;
    let held = run_two_attempts_under_one_entry_id(&running).await;
    assert_eq!(
        running.engine.stop::<Gated>(&held).await.unwrap(),
        RequestStatus::Stopped
    );
    let mut cancelled = false;
    for _ in 0..1000 {
        cancelled = cancellation(&held).is_some();
        if cancelled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    open_gate(&held);
    assert!(cancelled, "the stop did not cancel `hold` within 5 s");
    running.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_keeps_its_lease_when_another_flow_uses_its_entry_id() {
    let (_server, config) = support::own_server("same-id-lease");
    let running = Running::start(config).await;
    let held = run_two_attempts_under_one_entry_id(&running).await;
    // `hold` outlives two leases; renewed, it is not delivered again meanwhile.
    tokio::time::sleep(running.engine.config().lease * 2).await;
    let started = runs(&held, "hold");
    open_gate(&held);
    assert_eq!(started, 1, "`hold` was delivered again while it ran");
    match outcome::<Gated>(&running.engine, &held).await {
        RequestOutcome::Completed(output) => assert_eq!(output, gated(1)),
        other => panic!("{other:?}"),
    }
    running.finish().await;
}

/// `XREADGROUP`'s `COUNT` is per stream: a worker of several flows asking for as many entries
/// as it has free slots can be handed more, one batch per flow. The entries beyond its free
/// slots are skipped, yet delivered to it: they wait in its pending list until some worker
/// reclaims them after a whole lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_of_two_flows_runs_every_entry_it_reads_without_waiting_a_lease() {
    let (_server, mut config) = support::own_server("count-per-stream");
    // Far longer than any wait below: nothing here may depend on reclaiming.
    config.lease = Duration::from_secs(60);
    let running = Running::start_with(config, 1).await;
    let engine = &running.engine;

    // The worker's one slot is busy while both flows' streams get a ready entry.
    let busy = RequestId::generate();
    close_gate(&busy);
    engine.submit_as::<Gated>(busy.clone(), &1).await.unwrap();
    running.wait_holding(&busy).await;
    let gated_next = engine.submit::<Gated>(&2).await.unwrap();
    let diamond_next = engine.submit::<Diamond>(&3).await.unwrap();
    // The slot frees: the next read returns an entry of each stream.
    open_gate(&busy);

    let wait = Duration::from_secs(10);
    let ends = [
        format!("{:?}", engine.wait::<Gated>(&busy, wait).await.unwrap()),
        format!(
            "{:?}",
            engine.wait::<Gated>(&gated_next, wait).await.unwrap()
        ),
        format!(
            "{:?}",
            engine.wait::<Diamond>(&diamond_next, wait).await.unwrap()
        ),
    ];
    let want = [
        format!("Completed({})", gated(1)),
        format!("Completed({})", gated(2)),
        format!("Completed({})", diamond(3)),
    ];
    let mut pending = Vec::new();
    let prefix = &engine.config().prefix;
    for (flow, ready) in [
        (Gated::NAME, support::ready_stream::<Gated>(prefix)),
        (Diamond::NAME, support::ready_stream::<Diamond>(prefix)),
    ] {
        pending.push((flow, pending_by_consumer(&running.client, &ready).await));
    }
    assert_eq!(ends, want, "entries pending per consumer: {pending:?}");
    running.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Finished requests leave no keys behind.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_requests_expire_after_their_retention() {
    let (_server, mut config) = support::own_server("ttl");
    config.retention = Duration::from_millis(500);
    let running = Running::start(config).await;
    let engine = &running.engine;

    // Completed, completed after a pause with a parked vertex, failed, stopped while running,
    // and stopped while paused with a parked vertex.
    let diamond_done = engine.submit::<Diamond>(&9).await.unwrap();
    assert!(
        matches!(outcome::<Diamond>(engine, &diamond_done).await, RequestOutcome::Completed(o) if o == diamond(9))
    );
    let completed = engine.submit::<Gated>(&1).await.unwrap();
    let failed = engine.submit::<Gated>(&13).await.unwrap();
    let [resumed, stopped, stopped_paused] = [(); 3].map(|()| RequestId::generate());
    for id in [&resumed, &stopped, &stopped_paused] {
        close_gate(id);
        engine.submit_as::<Gated>(id.clone(), &5).await.unwrap();
    }
    for id in [&resumed, &stopped, &stopped_paused] {
        running.wait_holding(id).await;
    }
    let at = vertex_index(&running.state(&resumed).await, "finish");
    for id in [&resumed, &stopped_paused] {
        engine.pause::<Gated>(id).await.unwrap();
        open_gate(id);
        wait_until("finish is parked", LIMIT, async || {
            running.state(id).await.vertices[at].status == VertexStatus::Parked
        })
        .await;
    }
    engine.resume::<Gated>(&resumed).await.unwrap();
    engine.stop::<Gated>(&stopped).await.unwrap();
    engine.stop::<Gated>(&stopped_paused).await.unwrap();

    assert!(
        matches!(outcome::<Gated>(engine, &completed).await, RequestOutcome::Completed(o) if o == gated(1))
    );
    assert!(
        matches!(outcome::<Diamond>(engine, &diamond_done).await, RequestOutcome::Completed(o) if o == diamond(9))
    );
    assert!(
        matches!(outcome::<Gated>(engine, &resumed).await, RequestOutcome::Completed(o) if o == gated(5))
    );
    assert!(matches!(
        outcome::<Gated>(engine, &failed).await,
        RequestOutcome::Failed(_)
    ));
    for id in [&stopped, &stopped_paused] {
        assert!(matches!(
            outcome::<Gated>(engine, id).await,
            RequestOutcome::Stopped
        ));
    }
    wait_until("the stopped hold is cancelled", LIMIT, async || {
        cancellation(&stopped).is_some()
    })
    .await;
    open_gate(&stopped);

    // Once the retention has passed, only the per-flow keys are left.
    let prefix = engine.config().prefix.clone();
    let mut per_flow: Vec<String> = [
        Gated::NAME,
        Diamond::NAME,
        HeldFirst::NAME,
        Steps::NAME,
        Fan::NAME,
    ]
    .iter()
    .flat_map(|flow| {
        let tag = support::flow_tag(&prefix, flow);
        // The listing indexes too: ids leave them as their hashes expire, when the next
        // request ends or the requests are listed or counted (below).
        let indexes = RequestStatus::ALL.iter().map(|s| format!("by:{s}"));
        [
            "delayed",
            "done",
            "dead",
            "ended",
            "events",
            "versions",
            "partitions",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain(indexes)
        .map(move |k| format!("{tag}:{k}"))
    })
    .collect();
    // Per version of each graph: its ready stream and the graph its workers wrote.
    for ready in [
        support::ready_stream::<Gated>(&prefix),
        support::ready_stream::<Diamond>(&prefix),
        support::ready_stream::<HeldFirst>(&prefix),
        support::ready_stream::<Steps>(&prefix),
        support::ready_stream::<Fan>(&prefix),
    ] {
        per_flow.push(ready.replace(":ready@", ":graph@"));
        per_flow.push(ready);
    }
    let pattern = format!("{{{prefix}:*");
    let mut keys = Vec::new();
    wait_until("per-request keys expire", LIMIT, async || {
        keys = raw::<Vec<String>>(&running.client, "KEYS", vec![pattern.as_str().into()]).await;
        keys.iter().all(|k| per_flow.contains(k))
    })
    .await;
    assert!(!keys.is_empty(), "the per-flow streams remain");
    for (flow, stream) in [
        (Gated::NAME, support::ready_stream::<Gated>(&prefix)),
        (Diamond::NAME, support::ready_stream::<Diamond>(&prefix)),
    ] {
        assert_eq!(
            raw::<u64>(&running.client, "XLEN", vec![stream.as_str().into()]).await,
            0
        );
        let pending = pending_by_consumer(&running.client, &stream).await;
        assert!(pending.values().all(|&n| n == 0), "{flow}: {pending:?}");
        let delayed = format!("{}:delayed", support::flow_tag(&prefix, flow));
        assert_eq!(
            raw::<u64>(&running.client, "ZCARD", vec![delayed.into()]).await,
            0
        );
    }
    for id in [&completed, &failed, &resumed, &stopped, &stopped_paused] {
        assert!(matches!(
            engine.status::<Gated>(id).await,
            Err(Error::UnknownRequest { .. })
        ));
        assert!(matches!(
            engine.pause::<Gated>(id).await,
            Err(Error::UnknownRequest { .. })
        ));
    }
    assert!(matches!(
        engine.status::<Diamond>(&diamond_done).await,
        Err(Error::UnknownRequest { .. })
    ));
    // Counting forgets the expired requests: the indexes are empty, and gone.
    assert_eq!(engine.counts::<Gated>().await.unwrap().total(), 0);
    assert_eq!(engine.counts::<Diamond>().await.unwrap().total(), 0);
    let left = raw::<Vec<String>>(&running.client, "KEYS", vec![pattern.as_str().into()]).await;
    assert!(
        left.iter()
            .all(|k| !k.contains(":by:") && !k.ends_with(":ended")),
        "{left:?}"
    );
    running.finish().await;
}

// ---------------------------------------------------------------------------------------------
// A request runs only on the graph it was submitted on.

/// Two builds of one workflow, `versioned`: the second has a vertex more, so vertex numbers
/// mean other vertices in each.
mod v1 {
    use super::*;
    workflow! {
        pub Versioned = prepare -> finish;
    }
}

mod v2 {
    use super::*;
    workflow! {
        pub Versioned = prepare -> finish -> finish as again;
    }
}

/// A request runs only on a worker that has the graph it was submitted on: its entries go to
/// the ready stream of its version, which only that version's workers read. While none runs,
/// the request waits (`waiting_for`), whether its first entry carried its input or not, and
/// nothing of it runs on another graph; once one starts, it completes there. An entry of it
/// that an engine of another version queues (a retry from a service of the new version) is
/// moved by the first worker that reads it to the stream of the request's version, unless it
/// is a retry from the start, which moves the request to the new version. Requests submitted
/// on the new graph run on it meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_for_a_worker_of_its_version_and_runs_there() {
    let (_server, mut config) = support::own_server("version");
    // `1` (one byte encoded) rides on the first entry, `100_000` (five) does not: both paths
    // are checked.
    config.inline_input_limit = 2;
    let old = RedisEngine::builder(config.clone())
        .register::<v1::Versioned>()
        .connect()
        .await
        .expect("connect");
    let new = RedisEngine::builder(config)
        .register::<v2::Versioned>()
        .connect()
        .await
        .expect("connect");
    let hash = |graph: &goflow::graph::Graph| format!("{:016x}", graph.structural_hash());
    let (v1, v2) = (hash(v1::Versioned::graph()), hash(v2::Versioned::graph()));
    assert_ne!(v1, v2);
    let new_workers = CancellationToken::new();
    let new_worker = tokio::spawn(new.worker(4).run(new_workers.clone()));
    let small = old.submit::<v1::Versioned>(&1).await.unwrap();
    let large = old.submit::<v1::Versioned>(&100_000).await.unwrap();
    let unlucky = old.submit::<v1::Versioned>(&13).await.unwrap();
    // The new graph's worker is at work: a request of its own version completes (`finish`
    // twice: + 1 + 3 + 3).
    let fresh = new.submit::<v2::Versioned>(&5).await.unwrap();
    match new
        .wait::<v2::Versioned>(&fresh, LIMIT)
        .await
        .expect("wait")
    {
        RequestOutcome::Completed(output) => assert_eq!(output, 12),
        other => panic!("{other:?}"),
    }
    for id in [&small, &large, &unlucky] {
        let state = old.status::<v1::Versioned>(id).await.unwrap();
        assert_eq!(state.status, RequestStatus::Queued, "{state:?}");
        assert_eq!(state.version, v1);
        assert_eq!(
            state.waiting_for.as_deref(),
            Some(format!("version {v1}").as_str())
        );
        assert_eq!(runs(id, "prepare"), 0, "a vertex ran on the wrong graph");
    }
    assert_eq!(
        new.status::<v2::Versioned>(&fresh).await.unwrap().version,
        v2
    );

    // A worker of the old graph starts: they run on it (`finish` once: + 1 + 3), and the one
    // that fails, fails for its own reason.
    let old_workers = CancellationToken::new();
    let old_worker = tokio::spawn(old.worker(4).run(old_workers.clone()));
    for (id, n) in [(&small, 1), (&large, 100_000)] {
        match old.wait::<v1::Versioned>(id, LIMIT).await.expect("wait") {
            RequestOutcome::Completed(output) => assert_eq!(output, n + 4, "{id}"),
            other => panic!("{id}: {other:?}"),
        }
        let state = old.status::<v1::Versioned>(id).await.unwrap();
        assert_eq!(state.waiting_for, None, "{state:?}");
        // Read by the new graph's engine, its vertices are those of its own graph.
        let state = new.status::<v2::Versioned>(id).await.unwrap();
        let names: Vec<&str> = state.vertices.iter().map(|v| v.vertex.as_str()).collect();
        assert_eq!(names, ["prepare", "finish"], "{state:?}");
    }
    let failed = |outcome| match outcome {
        RequestOutcome::Failed(failure) => {
            assert!(
                matches!(failure.failure, goflow::request::Failure::Permanent(_)),
                "{failure:?}"
            );
        }
        other => panic!("{other:?}"),
    };
    failed(
        old.wait::<v1::Versioned>(&unlucky, LIMIT)
            .await
            .expect("wait"),
    );
    assert_eq!(runs(&unlucky, "prepare"), 1);
    // Retried by the new graph's engine (a service of the new version, say) from where it
    // stopped: it keeps its version; its entry is queued on the new version's stream, and the
    // new worker hands it to the old one instead of running it.
    new.retry::<v2::Versioned>(&unlucky).await.expect("retry");
    failed(
        old.wait::<v1::Versioned>(&unlucky, LIMIT)
            .await
            .expect("wait"),
    );
    assert_eq!(runs(&unlucky, "prepare"), 2);
    let state = old.status::<v1::Versioned>(&unlucky).await.unwrap();
    assert_eq!((state.retries, state.version.as_str()), (1, v1.as_str()));
    assert_eq!(state.vertices[0].attempts, 2, "{state:?}");
    // Retried from the start by it, it moves to the new version: it runs from its input on
    // the new graph, its old graph's history gone (the attempts start again).
    new.retry_from_start::<v2::Versioned>(&unlucky)
        .await
        .expect("retry from the start");
    failed(
        new.wait::<v2::Versioned>(&unlucky, LIMIT)
            .await
            .expect("wait"),
    );
    assert_eq!(runs(&unlucky, "prepare"), 3);
    let state = new.status::<v2::Versioned>(&unlucky).await.unwrap();
    assert_eq!((state.retries, state.version.as_str()), (2, v2.as_str()));
    let names: Vec<&str> = state.vertices.iter().map(|v| v.vertex.as_str()).collect();
    assert_eq!(names, ["prepare", "finish", "again"], "{state:?}");
    assert_eq!(state.vertices[0].attempts, 1, "{state:?}");

    // Both versions' workers are listed, each with its version.
    let workers = new.workers("versioned").await.expect("workers");
    let versions: std::collections::BTreeSet<&str> =
        workers.workers.iter().map(|w| w.version.as_str()).collect();
    assert_eq!(versions, [v1.as_str(), v2.as_str()].into(), "{workers:?}");

    // The versions: the new engine's first; the old one drained (none of its requests is
    // under way), with its graph as its workers wrote it, and its live worker. A version in
    // use is not forgotten.
    let listed = new.versions("versioned").await.expect("versions");
    let states: Vec<(&str, VersionState, u64, usize)> = listed
        .iter()
        .map(|v| (v.version.as_str(), v.state, v.open, v.workers.len()))
        .collect();
    assert_eq!(
        states,
        [
            (v2.as_str(), VersionState::Current, 0, 1),
            (v1.as_str(), VersionState::Drained, 0, 1)
        ],
        "{listed:?}"
    );
    let graph = listed[1].graph.as_ref().expect("the old version's graph");
    assert_eq!(graph["hash"], v1.as_str(), "{graph}");
    assert_eq!(
        graph["vertices"].as_array().map(Vec::len),
        Some(2),
        "{graph}"
    );
    let refused = |reason: &'static str| {
        move |result: Result<(), Error>| match result {
            Err(Error::VersionInUse { reason: why, .. }) => assert!(why.contains(reason), "{why}"),
            other => panic!("{reason}: {other:?}"),
        }
    };
    refused("this engine runs")(new.forget_version("versioned", &v2).await);
    refused("alive")(new.forget_version("versioned", &v1).await);

    for (token, worker) in [(old_workers, old_worker), (new_workers, new_worker)] {
        token.cancel();
        worker
            .await
            .expect("the worker")
            .expect("the worker ends cleanly");
    }
    // Its workers gone (each left its group at its clean shutdown), a request of the old
    // version under way still holds it: draining.
    let held = old.submit::<v1::Versioned>(&7).await.unwrap();
    let listed = new.versions("versioned").await.expect("versions");
    assert_eq!(
        (listed[1].state, listed[1].open, listed[1].workers.len()),
        (VersionState::Draining, 1, 0),
        "{listed:?}"
    );
    refused("under way")(new.forget_version("versioned", &v1).await);
    // Once none is under way, the drained version is forgotten: only the new one is listed.
    old.stop::<v1::Versioned>(&held).await.unwrap();
    new.forget_version("versioned", &v1)
        .await
        .expect("forget the old version");
    let listed = new.versions("versioned").await.expect("versions");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].version, v2);
}

// ---------------------------------------------------------------------------------------------
// A request moves to a new version when its progress carries over.

#[node]
async fn double(ctx: Context, n: u64) -> u64 {
    record_run(&ctx, "double");
    n * 2
}

/// Three builds of one workflow, `migrating`. The second adds `double` after `left`, which
/// puts `right` one vertex further (2 → 3): a request paused before `left` and `right` carries
/// over, renumbered. The third swaps the nodes of `left` and `right`: no progress at either
/// carries over.
mod m1 {
    use super::*;
    workflow! {
        pub Migrating = hold -> [left, right] => join;
    }
}

mod m2 {
    use super::*;
    workflow! {
        pub Migrating = hold -> [left -> double, right] => join;
    }
}

mod m3 {
    use super::*;
    workflow! {
        pub Migrating = hold -> [right as left, left as right] => join;
    }
}

/// Each output: `m1`'s and `m2`'s for input `n`.
fn migrating_v1(n: u32) -> u64 {
    let h = u64::from(n) * 2;
    h * 3 * 10_000 + h + 1000
}

fn migrating_v2(n: u32) -> u64 {
    let h = u64::from(n) * 2;
    h * 3 * 2 * 10_000 + h + 1000
}

/// A migration moves a request to the caller's version when its progress carries over, as
/// the two graphs say: a request paused after `hold`, with `left` and `right` parked, moves to
/// `m2` (where `right` is another vertex number), resumes there and completes with `m2`'s
/// output, nothing run twice; to `m3` it does not (`left` runs another node there), and
/// nothing of it changes. A request waiting for a worker of its version moves and runs at once
/// on the new one, and the entry it left in the old stream never runs. One whose attempt runs
/// on a live worker of its version must wait; a completed one has nothing to move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_migrates_to_a_new_version_when_its_progress_carries_over() {
    let (server, config) = support::own_server("migrate");
    let prefix = config.prefix.clone();
    let connect = async |builder: RedisEngineBuilder| builder.connect().await.expect("connect");
    let e1 = connect(RedisEngine::builder(config.clone()).register::<m1::Migrating>()).await;
    let e2 = connect(RedisEngine::builder(config.clone()).register::<m2::Migrating>()).await;
    let e3 = connect(RedisEngine::builder(config.clone()).register::<m3::Migrating>()).await;
    // Version 1 again, submitting entries that do not carry their input.
    let mut bare = config;
    bare.inline_input_limit = 0;
    let e1_bare = connect(RedisEngine::builder(bare).register::<m1::Migrating>()).await;
    let hash = |graph: &goflow::graph::Graph| format!("{:016x}", graph.structural_hash());
    let (v1, v2) = (hash(m1::Migrating::graph()), hash(m2::Migrating::graph()));
    let parked_at_both = async |engine: &RedisEngine, id: &RequestId| {
        wait_until("left and right parked", LIMIT, async || {
            let state = engine.status::<m1::Migrating>(id).await.unwrap();
            let parked = |name: &str| {
                state
                    .vertices
                    .iter()
                    .any(|v| v.vertex == name && v.status == VertexStatus::Parked)
            };
            parked("left") && parked("right")
        })
        .await;
    };

    // On version 1: `paused` stops after `hold`; `busy` holds `hold` running.
    let old_workers = CancellationToken::new();
    let old_worker = tokio::spawn(e1.worker(4).run(old_workers.clone()));
    let paused = RequestId::parse("paused").unwrap();
    let busy = RequestId::parse("busy").unwrap();
    for id in [&paused, &busy] {
        close_gate(id);
        e1.submit_as::<m1::Migrating>(id.clone(), &5).await.unwrap();
    }
    wait_until("hold runs", LIMIT, async || {
        runs(&paused, "hold") == 1 && runs(&busy, "hold") == 1
    })
    .await;
    e1.pause::<m1::Migrating>(&paused).await.unwrap();
    open_gate(&paused);
    parked_at_both(&e1, &paused).await;
    let refusal = |result: Result<goflow::request::Migrated, Error>| match result {
        Err(Error::NotMigrated { refusal, from, .. }) => {
            assert_eq!(from, v1);
            *refusal
        }
        other => panic!("{other:?}"),
    };
    match refusal(e2.migrate::<m2::Migrating>(&busy).await) {
        goflow::request::Refusal::Running { vertex } => assert_eq!(vertex, "hold"),
        other => panic!("{other:?}"),
    }
    open_gate(&busy);
    assert!(matches!(
        e1.wait::<m1::Migrating>(&busy, LIMIT).await.unwrap(),
        RequestOutcome::Completed(n) if n == migrating_v1(5)
    ));
    assert!(matches!(
        refusal(e2.migrate::<m2::Migrating>(&busy).await),
        goflow::request::Refusal::Completed
    ));
    old_workers.cancel();
    old_worker.await.unwrap().unwrap();

    // No worker of version 1 is left. `waiting` is queued on its stream, its input on its
    // first entry (which the migration takes back); `stale` too, without it (its entry stays,
    // numbered in version 1's graph).
    let waiting = RequestId::parse("waiting").unwrap();
    e1.submit_as::<m1::Migrating>(waiting.clone(), &7)
        .await
        .unwrap();
    let stale = RequestId::parse("stale").unwrap();
    e1_bare
        .submit_as::<m1::Migrating>(stale.clone(), &9)
        .await
        .unwrap();
    let progress = async || {
        let state = e1.status::<m1::Migrating>(&paused).await.unwrap();
        format!("{} {:?}", state.version, state.vertices)
    };
    let before = progress().await;
    // To version 3, `paused` does not carry over: `left` runs another node there. Nothing of
    // it changes.
    match refusal(e3.migrate::<m3::Migrating>(&paused).await) {
        goflow::request::Refusal::Incompatible { vertex, reason } => {
            assert_eq!(vertex, "left");
            assert!(
                reason.contains("`left`") && reason.contains("`right`"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(progress().await, before);

    // To version 2 it moves, as does `waiting`; twice is once.
    for (id, queued) in [(&paused, 0), (&waiting, 1), (&stale, 1)] {
        let moved = e2.migrate::<m2::Migrating>(id).await.expect("migrate");
        assert_eq!(
            (
                moved.moved,
                moved.from.as_str(),
                moved.to.as_str(),
                moved.queued
            ),
            (true, v1.as_str(), v2.as_str(), queued),
            "{moved:?}"
        );
        let again = e2.migrate::<m2::Migrating>(id).await.expect("migrate");
        assert!(!again.moved, "{again:?}");
    }
    let state = e2.status::<m2::Migrating>(&paused).await.unwrap();
    assert_eq!(state.version, v2);
    let statuses: Vec<(&str, VertexStatus)> = state
        .vertices
        .iter()
        .map(|v| (v.vertex.as_str(), v.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("hold", VertexStatus::Done),
            ("left", VertexStatus::Parked),
            ("double", VertexStatus::Pending),
            ("right", VertexStatus::Parked),
            ("join", VertexStatus::Pending),
        ],
        "{state:?}"
    );

    // A worker of version 1 returns first: the entry `stale` left on its stream is dropped,
    // not handed to version 2 (where it would run a second time).
    let old_workers = CancellationToken::new();
    let old_worker = tokio::spawn(e1.worker(4).run(old_workers.clone()));
    let old_stream = support::ready_stream::<m1::Migrating>(&prefix);
    let client = raw_client(&server.url()).await;
    wait_until("the old stream is empty", LIMIT, async || {
        raw::<u64>(&client, "XLEN", vec![old_stream.as_str().into()]).await == 0
    })
    .await;

    // On version 2's worker, all complete with version 2's output, nothing run twice; what
    // was done stays done.
    let new_workers = CancellationToken::new();
    let new_worker = tokio::spawn(e2.worker(4).run(new_workers.clone()));
    e2.resume::<m2::Migrating>(&paused).await.unwrap();
    for (id, n) in [(&paused, 5), (&waiting, 7), (&stale, 9)] {
        match e2.wait::<m2::Migrating>(id, LIMIT).await.expect("wait") {
            RequestOutcome::Completed(output) => assert_eq!(output, migrating_v2(n), "{id}"),
            other => panic!("{id}: {other:?}"),
        }
        for node in ["hold", "left", "right", "double", "join"] {
            assert_eq!(runs(id, node), 1, "{id}: {node}");
        }
        let state = e2.status::<m2::Migrating>(id).await.unwrap();
        assert!(state.vertices.iter().all(|v| v.attempts == 1), "{state:?}");
    }
    for (token, worker) in [(old_workers, old_worker), (new_workers, new_worker)] {
        token.cancel();
        worker.await.unwrap().unwrap();
    }
}

/// A key prefix may hold what follows the hash tag in a request's key (`:req:`): the scripts
/// still find the request's id in its key, for the listing indexes and the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_holding_the_request_keys_separator_still_names_the_requests() {
    use futures_util::StreamExt as _;
    use goflow::request::{EventKind, RequestQuery};

    let (_server, mut config) = support::own_server("prefix-req");
    config.prefix = format!("{}:req:x", config.prefix);
    let running = Running::start(config).await;
    let id = running.engine.submit::<Diamond>(&4).await.unwrap();
    match outcome::<Diamond>(&running.engine, &id).await {
        RequestOutcome::Completed(output) => assert_eq!(output, diamond(4)),
        other => panic!("{other:?}"),
    }
    let completed = RequestQuery::new().status(RequestStatus::Completed);
    let page = running.engine.list::<Diamond>(&completed).await.unwrap();
    let listed: Vec<&RequestId> = page.requests.iter().map(|r| &r.request_id).collect();
    assert_eq!(listed, [&id]);
    let events = running.engine.request_events::<Diamond>(&id, None).await;
    let events: Vec<_> = events.unwrap().collect().await;
    let last = events.last().expect("events").as_ref().expect("an event");
    assert_eq!(last.request_id, id);
    assert_eq!(
        last.kind,
        EventKind::Request {
            status: RequestStatus::Completed
        }
    );
    running.finish().await;
}

/// One request of `W` on `input`, on a server of its own whose worker runs ahead in `mode`:
/// the server and the engine (both still running), the request's id and output, and how many
/// steps its events recorded (one stream entry per script call that moved it: the submit's,
/// then the completions').
async fn run_one<W>(
    mode: RunAhead,
    test: &str,
    input: &W::Input,
) -> (support::RedisServer, Running, RequestId, W::Output, u64)
where
    W: Workflow,
    W::Output: std::fmt::Debug,
{
    let (server, mut config) = support::own_server(test);
    config.run_ahead = mode;
    let events = format!("{}:events", support::flow_tag(&config.prefix, W::NAME));
    let running = Running::start(config).await;
    let id = running.engine.submit::<W>(input).await.unwrap();
    let output = match outcome::<W>(&running.engine, &id).await {
        RequestOutcome::Completed(output) => output,
        other => panic!("{other:?}"),
    };
    let steps: u64 = raw(&running.client, "XLEN", vec![events.as_str().into()]).await;
    (server, running, id, output, steps)
}

/// Checks `steps`, the steps a request of `vertices` vertices recorded (see [`run_one`]):
/// running ahead, the submit's and one, unless the machine stalls the run for 50 ms (which
/// records it so far); else one per vertex at least (items queued beyond the worker's
/// hand-offs record their start too), and the submit's.
fn assert_recorded_steps(mode: RunAhead, vertices: u64, steps: u64) {
    if mode == RunAhead::Off {
        assert!(
            steps > vertices,
            "{steps} steps recorded for {vertices} vertices"
        );
    } else {
        assert!(
            steps <= 3,
            "{steps} steps recorded for {vertices} vertices run ahead ({mode:?})"
        );
    }
}

/// The value of `field` in the hash at `key`.
async fn hash_field(client: &Client, key: &str, field: &str) -> String {
    raw(client, "HGET", vec![key.into(), field.into()]).await
}

/// The one field of the hash at `key` whose name starts with `prefix`.
async fn field_named(client: &Client, key: &str, prefix: &str) -> String {
    let fields: Vec<String> = raw(client, "HKEYS", vec![key.into()]).await;
    let found: Vec<&String> = fields.iter().filter(|f| f.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "{prefix} in {fields:?}");
    found[0].clone()
}

/// A request's hash, by its workflow's name and its id.
fn request_key(config: &RedisConfig, flow: &str, id: &RequestId) -> String {
    format!("{}:req:{id}", support::flow_tag(&config.prefix, flow))
}

/// Checks that `vertex` was recorded as if each of its steps had been recorded on its own:
/// done, in one attempt, by a worker, begun before it ended; gives back when it began and
/// ended (ms).
fn assert_done_once(vertex: &goflow::request::VertexState) -> (u64, u64) {
    assert_eq!(vertex.status, VertexStatus::Done, "{vertex:?}");
    assert_eq!(vertex.attempts, 1, "{vertex:?}");
    assert!(vertex.worker.is_some(), "{vertex:?}");
    match (vertex.started_at_ms, vertex.finished_at_ms) {
        (Some(started), Some(finished)) if started <= finished => (started, finished),
        _ => panic!("{vertex:?}"),
    }
}

/// Each way to run, running ahead first.
const MODES: [RunAhead; 3] = [RunAhead::Checked, RunAhead::Unchecked, RunAhead::Off];

/// A chain of quick vertices runs ahead (`RedisConfig::run_ahead`): the worker records it in
/// one script call, not one per vertex, and the state records each vertex as if it had been
/// recorded on its own: done, attempt 1, by this worker, in order. With running ahead off,
/// one call per vertex.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_quick_vertices_is_recorded_in_one_call_when_it_runs_ahead() {
    for mode in MODES {
        let (_server, running, id, output, steps) = run_one::<Steps>(mode, "run-ahead", &1).await;
        assert_eq!(output, 7);
        let state = running.engine.status::<Steps>(&id).await.unwrap();
        let mut previous_end = 0;
        for vertex in &state.vertices {
            let (started, finished) = assert_done_once(vertex);
            assert!(previous_end <= started, "{state:?}");
            previous_end = finished;
        }
        assert_recorded_steps(mode, 6, steps);
        running.finish().await;
    }
}

/// A small for-each runs ahead whole: its items start on the source's output in the
/// source's run, the gather starts in it once every item completes, and the run is recorded
/// in one script call, with the gather's size and count of arrivals as completions would
/// have recorded them. With running ahead off, one call per vertex.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_for_each_is_recorded_in_one_call_when_it_runs_ahead() {
    for mode in MODES {
        let (_server, running, id, output, steps) =
            run_one::<Fan>(mode, "run-ahead-each", &5).await;
        assert_eq!(output, 1 + 4 + 9 + 16 + 25);
        let state = running.engine.status::<Fan>(&id).await.unwrap();
        assert_eq!(state.vertices.len(), 7, "{state:?}");
        for vertex in &state.vertices {
            assert_done_once(vertex);
        }
        // The gather's count of arrivals (`n:`) and the for-each's size (`c:`).
        let key = request_key(running.engine.config(), Fan::NAME, &id);
        for prefix in ["n:", "c:"] {
            let field = field_named(&running.client, &key, prefix).await;
            assert_eq!(hash_field(&running.client, &key, &field).await, "5");
        }
        assert_recorded_steps(mode, 7, steps);
        running.finish().await;
    }
}

/// A diamond runs ahead whole: both arms start on the split's output, the join starts in the
/// same run once both arms complete (the first arrival waits in the run), and the run is
/// recorded in one script call, with the join's count of arrivals as a completion would have
/// counted it. With running ahead off, one call per vertex.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_is_recorded_in_one_call_when_it_runs_ahead() {
    for mode in MODES {
        let (_server, running, id, output, steps) =
            run_one::<Diamond>(mode, "run-ahead-join", &4).await;
        assert_eq!(output, diamond(4));
        let state = running.engine.status::<Diamond>(&id).await.unwrap();
        let span = |name: &str| assert_done_once(&state.vertices[vertex_index(&state, name)]);
        let (split, left, right, join, tail) = (
            span("split"),
            span("left"),
            span("right"),
            span("join"),
            span("tail"),
        );
        assert!(split.1 <= left.0 && split.1 <= right.0, "{state:?}");
        assert!(
            left.1 <= join.0 && right.1 <= join.0 && join.1 <= tail.0,
            "{state:?}"
        );
        // The join's count of arrivals, as a completion records it (`n:` and its vertex).
        let key = request_key(running.engine.config(), Diamond::NAME, &id);
        let counter = field_named(&running.client, &key, "n:").await;
        assert_eq!(hash_field(&running.client, &key, &counter).await, "2");
        assert_recorded_steps(mode, 5, steps);
        running.finish().await;
    }
}
