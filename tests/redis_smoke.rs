//! The Redis engine end to end, in one process: a worker and a client sharing a server.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::Duration;

use goflow::__private::{ArmSpec, BuildPlan, Fragment, Plan, PlanBuilder};
use goflow::codec::{Codec, CodecError, MsgPack};
use goflow::graph::{Graph, GraphVertex};
use goflow::prelude::*;
use goflow::redis::{RedisConfig, RedisEngine};
use goflow::request::{
    Control, Failure, Finished, RequestFailure, RequestOutcome, RequestState, RequestStatus,
    VertexStatus,
};
use goflow::{Engine, Error};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// An image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Image(String);

#[node]
async fn get_image(user: String) -> Image {
    Image(format!("{user}.png"))
}
#[node]
async fn detect(image: Image) -> bool {
    image.0.ends_with(".png")
}
#[node]
async fn score(image: Image) -> f64 {
    if image.0.starts_with("alice") {
        0.97
    } else {
        0.1
    }
}
#[node]
async fn verdict(detected: bool, score: f64) -> String {
    if detected && score > 0.9 {
        "verified".into()
    } else {
        "rejected".into()
    }
}

#[node]
async fn refuse(user: String) -> Result<String, NodeError> {
    if user.starts_with("bad") {
        Err(NodeError::permanent(format!("{user} refused")))
    } else {
        Ok(user)
    }
}

/// `n` bytes of output, to straddle the done event's inline limit.
#[node]
async fn fill(n: usize) -> String {
    "x".repeat(n)
}

/// Attempts of `gauged` running now, and the most seen at once.
static GAUGED: (
    std::sync::atomic::AtomicUsize,
    std::sync::atomic::AtomicUsize,
) = (
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
);

#[node]
async fn gauged(n: u32) -> u32 {
    use std::sync::atomic::Ordering::SeqCst;
    let now = GAUGED.0.fetch_add(1, SeqCst) + 1;
    GAUGED.1.fetch_max(now, SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    GAUGED.0.fetch_sub(1, SeqCst);
    n
}

/// How often `counted` ran, per input.
static COUNTED: LazyLock<Mutex<HashMap<u32, u32>>> = LazyLock::new(Mutex::default);

#[node]
async fn counted(n: u32) -> u32 {
    *COUNTED.lock().unwrap().entry(n).or_default() += 1;
    n
}

workflow! {
    pub Kyc = get_image -> [detect, score] => verdict;
    pub Screen = refuse;
    pub Fill = fill;
    pub Gauged = gauged;
    pub Counted = counted;
}

/// An engine with `W` registered, connected with `config`.
async fn engine_of<W: Workflow>(config: RedisConfig) -> RedisEngine {
    RedisEngine::builder(config)
        .register::<W>()
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyc_runs_on_redis() {
    let engine = engine_of::<Kyc>(support::config("smoke")).await;
    let worker = support::LocalWorker::start(&engine, 4);

    assert_eq!(engine.run::<Kyc>("alice".into()).await.unwrap(), "verified");
    let id = engine.submit::<Kyc>(&"bob".into()).await.unwrap();
    let output = support::completed::<Kyc>(&engine, &id, Duration::from_secs(10)).await;
    assert_eq!(output, "rejected");
    let state = engine.status::<Kyc>(&id).await.unwrap();
    assert_eq!(state.status, RequestStatus::Completed);
    assert!(state.vertices.iter().all(|v| v.attempts == 1), "{state:?}");

    worker.stop().await;
}

/// A workflow split into partitions runs on one server as on a cluster, its requests spread
/// over the partitions; an engine set to another number of partitions than the one the first
/// recorded refuses to connect, and says why and what to do, rather than look for the
/// requests in the wrong keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_number_of_partitions_is_one_per_deployment() {
    let mut config = support::config("partitions");
    config.partitions = 3;
    let engine = engine_of::<Kyc>(config.clone()).await;
    let worker = support::LocalWorker::start(&engine, 4);
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(engine.submit::<Kyc>(&format!("user-{n}")).await.unwrap());
    }
    for id in &ids {
        support::completed::<Kyc>(&engine, id, Duration::from_secs(10)).await;
    }
    let client = support::raw_client(&config.url).await;
    for tag in config.hash_tags(Kyc::NAME) {
        let done: u64 = support::raw(&client, "XLEN", vec![format!("{tag}:done").into()]).await;
        assert!(done > 0, "no request was in partition {tag}");
    }
    let listed = engine
        .list::<Kyc>(&goflow::request::RequestQuery::default().limit(100))
        .await
        .unwrap();
    assert_eq!(listed.requests.len(), ids.len());
    worker.stop().await;

    let mut other = config.clone();
    other.partitions = 2;
    let refused = RedisEngine::builder(other)
        .register::<Kyc>()
        .connect()
        .await
        .expect_err("another number of partitions");
    let mut message = refused.to_string();
    let mut source = std::error::Error::source(&refused);
    while let Some(error) = source {
        message = format!("{message}: {error}");
        source = error.source();
    }
    assert!(
        message.contains("split into 3 partitions in Redis")
            && message.contains("this process is set to 2")
            && message.contains("GOFLOW_REDIS_PARTITIONS"),
        "{message}"
    );
    for partitions in [0, goflow::redis::RedisConfig::MAX_PARTITIONS + 1] {
        let mut out_of_range = config.clone();
        out_of_range.partitions = partitions;
        let refused = RedisEngine::builder(out_of_range)
            .register::<Kyc>()
            .connect()
            .await
            .expect_err("partitions out of range");
        let message = std::error::Error::source(&refused).map(ToString::to_string);
        assert_eq!(
            message.as_deref(),
            Some(
                format!(
                    "RedisConfig::partitions (GOFLOW_REDIS_PARTITIONS) is {partitions}: a \
                     workflow is split into 1 to 1024 partitions"
                )
                .as_str()
            ),
        );
    }
}

/// An engine (and so a worker or service) started before its Redis is up waits for it, within
/// the connect timeout, instead of failing at the first refused connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_waits_for_a_server_that_is_still_starting() {
    let (mut server, config) = support::own_server("starting");
    server.kill();
    let connecting = tokio::spawn(engine_of::<Kyc>(config));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!connecting.is_finished(), "gave up on a refused connection");
    server.restart();
    let engine = tokio::time::timeout(Duration::from_secs(15), connecting)
        .await
        .expect("connected once the server was up")
        .expect("the connecting task");
    let worker = support::LocalWorker::start(&engine, 2);
    assert_eq!(engine.run::<Kyc>("alice".into()).await.unwrap(), "verified");
    worker.stop().await;
}

/// A server that forgets its scripts (`SCRIPT FLUSH`, or a restart) gets each again on its
/// next call, from the client and the worker alike, and the call goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_run_on_after_the_server_forgets_its_scripts() {
    let (_server, config) = support::own_server("noscript");
    let client = support::raw_client(&config.url).await;
    let engine = engine_of::<Kyc>(config).await;
    let worker = support::LocalWorker::start(&engine, 4);
    assert_eq!(engine.run::<Kyc>("alice".into()).await.unwrap(), "verified");

    let flushed: String = support::raw(&client, "SCRIPT", vec!["FLUSH".into()]).await;
    assert_eq!(flushed, "OK");
    // Submit, start, complete and control scripts, each called once more after the flush.
    let id = engine.submit::<Kyc>(&"alice".into()).await.unwrap();
    let output = support::completed::<Kyc>(&engine, &id, Duration::from_secs(10)).await;
    assert_eq!(output, "verified");
    match engine.pause::<Kyc>(&id).await {
        Err(Error::Conflict {
            flow: "kyc",
            request_id,
            action: Control::Pause,
            status: RequestStatus::Completed,
        }) if request_id == id => {}
        other => panic!("pausing a completed request: {other:?}"),
    }
    let state = engine.status::<Kyc>(&id).await.unwrap();
    assert!(state.vertices.iter().all(|v| v.attempts == 1), "{state:?}");

    worker.stop().await;
}

/// The worker reads and starts the next entries while its slots are busy, but never runs more
/// attempts at once than its concurrency.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_runs_no_more_attempts_at_once_than_its_concurrency() {
    use std::sync::atomic::Ordering::SeqCst;
    let engine = engine_of::<Gauged>(support::config("slots")).await;
    let worker = support::LocalWorker::start(&engine, 2);
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push((n, engine.submit::<Gauged>(&n).await.unwrap()));
    }
    for (n, id) in &ids {
        match engine.wait::<Gauged>(id, Duration::from_secs(20)).await {
            Ok(RequestOutcome::Completed(out)) => assert_eq!(out, *n),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(GAUGED.1.load(SeqCst), 2, "most attempts at once");
    worker.stop().await;
}

/// Entries queued before the worker starts are read and started several at once (one start
/// script for the read): those of stopped requests are dropped there, the others run once. With
/// the input on the entry (`inline_input_limit`, the default), they run at once instead, and a
/// stop that comes before the read takes the stopped request's entry back: the same requests
/// run, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_read_together_start_together_and_the_stopped_ones_never_run() {
    for (limit, first) in [(0, 0u32), (256, 100)] {
        let mut config = support::config("batch-start");
        config.inline_input_limit = limit;
        let client = support::raw_client(&config.url).await;
        let ready = support::ready_stream::<Counted>(&config.prefix);
        let engine = engine_of::<Counted>(config).await;
        let mut ids = Vec::new();
        for n in first..first + 16 {
            let id = engine.submit::<Counted>(&n).await.unwrap();
            if n % 2 == 1 {
                assert_eq!(
                    engine.stop::<Counted>(&id).await.unwrap(),
                    RequestStatus::Stopped
                );
            }
            ids.push((n, id));
        }
        // Taken back, or left for the worker to drop.
        let queued: u64 = support::raw(&client, "XLEN", vec![ready.as_str().into()]).await;
        assert_eq!(queued, if limit == 0 { 16 } else { 8 }, "limit {limit}");
        let worker = support::LocalWorker::start(&engine, 8);
        for (n, id) in &ids {
            match engine.wait::<Counted>(id, Duration::from_secs(20)).await {
                Ok(RequestOutcome::Completed(out)) if n % 2 == 0 => assert_eq!(out, *n),
                Ok(RequestOutcome::Stopped) if n % 2 == 1 => {}
                other => panic!("request {n}, limit {limit}: {other:?}"),
            }
        }
        worker.stop().await;
        let counted = COUNTED.lock().unwrap();
        for n in first..first + 16 {
            let expected = u32::from(n % 2 == 0);
            assert_eq!(
                counted.get(&n).copied().unwrap_or(0),
                expected,
                "runs of {n}, limit {limit}"
            );
        }
    }
}

/// A small output rides on the done event (the waiter reads no state); a large one, or any
/// with the limit at 0, is read from the state. Either way every waiter gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_reach_waiters_with_or_without_the_done_event_carrying_them() {
    for limit in [256, 0] {
        let mut config = support::config("inline");
        config.inline_output_limit = limit;
        let url = config.url.clone();
        let done_key = format!("{}:done", support::flow_tag(&config.prefix, Fill::NAME));
        let engine = engine_of::<Fill>(config).await;
        let worker = support::LocalWorker::start(&engine, 4);
        for n in [10, 100_000] {
            assert_eq!(
                engine.run::<Fill>(n).await.unwrap().len(),
                n,
                "run, {n} bytes"
            );
            let id = engine.submit::<Fill>(&n).await.unwrap();
            match engine.wait::<Fill>(&id, Duration::from_secs(10)).await {
                Ok(RequestOutcome::Completed(out)) => assert_eq!(out.len(), n),
                other => panic!("{other:?}"),
            }
        }
        // Four events: the first two (10 bytes) carry the output under the default limit.
        let client = support::raw_client(&url).await;
        let carried: Vec<bool> = support::stream_entries(&client, &done_key)
            .await
            .iter()
            .map(|(_, fields)| fields.contains_key("out"))
            .collect();
        let expected = if limit == 0 {
            [false; 4]
        } else {
            [true, true, false, false]
        };
        assert_eq!(carried, expected, "limit {limit}");
        worker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_hooks_run_once_per_request() {
    let seen: Arc<Mutex<HashMap<String, Vec<Finished>>>> = Arc::default();
    let record = Arc::clone(&seen);
    let engine = RedisEngine::builder(support::config("hooks"))
        .register::<Screen>()
        .on_finish::<Screen, _, _>(move |finished| {
            let record = Arc::clone(&record);
            async move {
                let mut seen = record.lock().unwrap();
                seen.entry(finished.request_id.to_string())
                    .or_default()
                    .push(finished);
            }
        })
        .connect()
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    // Two workers: each event must still be hooked once.
    let workers = [
        tokio::spawn(engine.worker(4).run(shutdown.clone())),
        tokio::spawn(engine.worker(4).run(shutdown.clone())),
    ];
    // Let the workers create the hooks' consumer group before requests end.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut ids = Vec::new();
    for i in 0..20 {
        let user = if i % 5 == 0 {
            format!("bad{i}")
        } else {
            format!("ok{i}")
        };
        ids.push((engine.submit::<Screen>(&user).await.unwrap(), user));
    }
    for (id, _) in &ids {
        let _ = engine
            .wait::<Screen>(id, Duration::from_secs(10))
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < ids.len() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give a duplicate, if there were one, time to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.cancel();
    for worker in workers {
        worker.await.unwrap().unwrap();
    }

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), ids.len(), "every request hooked");
    for (id, user) in &ids {
        let events = &seen[id.as_str()];
        assert_eq!(events.len(), 1, "{id}: hooked {} times", events.len());
        let event = &events[0];
        if user.starts_with("bad") {
            assert_eq!(event.status, RequestStatus::Failed);
            let failure = event.failure.as_ref().expect("failure recorded");
            assert_eq!(failure.vertex, "refuse");
            assert!(
                failure.failure.to_string().contains("refused"),
                "{failure:?}"
            );
        } else {
            assert_eq!(event.status, RequestStatus::Completed);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A for-each and a conditional on Redis. The conditional is built by hand (`Workflow` and
// `BuildPlan` implementations over `PlanBuilder`) so that its selector can fail, which `workflow!` rules out
// at compile time (the arms must cover every variant): it stands for an output that cannot be
// decoded. Its graph lists the vertices only, which is all the engine reads of a graph (its
// structural hash).

/// What a sweep runs over.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Batch {
    count: u32,
    /// The item whose verification fails, if any.
    bad: Option<u32>,
    /// The item whose verification fails on its first attempt only, if any.
    flaky: Option<u32>,
    /// How long listing the items takes.
    slow_ms: u64,
}

/// One item of a sweep.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Item {
    n: u32,
    bad: bool,
    flaky: bool,
}

#[node]
async fn list(batch: Batch) -> Vec<Item> {
    tokio::time::sleep(Duration::from_millis(batch.slow_ms)).await;
    (0..batch.count)
        .map(|n| Item {
            n,
            bad: batch.bad == Some(n),
            flaky: batch.flaky == Some(n),
        })
        .collect()
}
#[node(retries = 1, backoff = "10ms")]
async fn verify(ctx: Context, item: Item) -> Result<u32, NodeError> {
    // Each instance runs under its own name, which its idempotency key holds.
    let name = format!("verify[{}]", item.n);
    if ctx.vertex() != name || !ctx.idempotency_key().ends_with(&format!(":{name}")) {
        return Err(NodeError::permanent(format!("ran as {}", ctx.vertex())));
    }
    if item.flaky && ctx.attempt() == 1 {
        return Err(NodeError::new(format!("item {} is flaky", item.n)));
    }
    if item.bad {
        Err(NodeError::permanent(format!("item {} is bad", item.n)))
    } else {
        Ok(item.n)
    }
}
#[node]
async fn weigh(n: u32) -> u64 {
    u64::from(n) * 2
}
#[node]
async fn total(weights: Vec<u64>) -> Vec<u64> {
    weights
}

/// The size class of a number: which arm of [`Classify`] runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Size {
    /// Under 10: `inc`.
    Small(u32),
    /// 10 and up: `halve -> shrink`.
    Large(u32),
    /// Zero: no vertex, straight to `report`.
    Zero(u32),
    /// 13: no arm takes it, so the conditional cannot pick one (as if its output could not be
    /// decoded).
    Unlucky(u32),
}

#[node]
async fn classify(n: u32) -> Size {
    match n {
        0 => Size::Zero(0),
        13 => Size::Unlucky(13),
        n if n < 10 => Size::Small(n),
        n => Size::Large(n),
    }
}
#[node]
async fn inc(n: u32) -> u32 {
    n + 1
}
#[node]
async fn halve(n: u32) -> u32 {
    n / 2
}
#[node]
async fn shrink(n: u32) -> u32 {
    n / 5
}
#[node]
async fn report(n: u32) -> String {
    format!("={n}")
}

fn vertex<S: goflow::dsl::Step>(name: &'static str) -> GraphVertex {
    GraphVertex::new(name, S::describe())
}

workflow! {
    /// A for-each whose body is a chain.
    pub Sweep = list -> each { verify -> weigh } => total;
}

/// `classify ? { Small => inc, Large => halve -> shrink, Zero => } -> report`.
#[derive(Debug)]
pub struct Classify;

impl Workflow for Classify {
    const NAME: &'static str = "classify";
    type Input = u32;
    type Output = String;

    fn graph() -> &'static Graph {
        static GRAPH: OnceLock<Graph> = OnceLock::new();
        GRAPH.get_or_init(|| {
            let vertices = vec![
                vertex::<classify>("classify"),
                vertex::<inc>("inc"),
                vertex::<halve>("halve"),
                vertex::<shrink>("shrink"),
                vertex::<report>("report"),
            ];
            Graph::new("classify", vertices, Vec::new(), 0, 4)
        })
    }
}

impl BuildPlan for Classify {
    fn build<C: Codec>(plan: &mut PlanBuilder<C>) -> Fragment {
        let classify = plan.node::<classify>("classify");
        let inc = plan.node::<inc>("inc");
        let halve = plan.node::<halve>("halve");
        let shrink = plan.node::<shrink>("shrink");
        let report = plan.node::<report>("report");
        plan.connect(halve, shrink);
        plan.branch(
            classify,
            |codec, bytes| {
                Ok(match codec.decode::<Size>(bytes)? {
                    Size::Small(n) => (0, codec.encode(&n)?),
                    Size::Large(n) => (1, codec.encode(&n)?),
                    Size::Zero(n) => (2, codec.encode(&n)?),
                    Size::Unlucky(_) => {
                        return Err(CodecError::decode("test", &"no arm takes `Unlucky`"))
                    }
                })
            },
            &[
                ArmSpec {
                    entries: &[inc],
                    exit: Some(inc),
                },
                ArmSpec {
                    entries: &[halve],
                    exit: Some(shrink),
                },
                ArmSpec {
                    entries: &[],
                    exit: None,
                },
            ],
            report,
        );
        Fragment {
            entry: classify.entry,
            exit: report.exit,
        }
    }

    fn local_plan() -> &'static Arc<Plan> {
        static PLAN: OnceLock<Arc<Plan>> = OnceLock::new();
        PLAN.get_or_init(|| Arc::new(Plan::new::<Self, MsgPack>(MsgPack)))
    }
}

const LIMIT: Duration = Duration::from_secs(60);

fn statuses(state: &RequestState) -> HashMap<String, VertexStatus> {
    state
        .vertices
        .iter()
        .map(|v| (v.vertex.clone(), v.status))
        .collect()
}

async fn hash_fields(
    engine: &RedisEngine,
    flow: &str,
    id: &goflow::RequestId,
    names: &[&str],
) -> Vec<Option<String>> {
    let client = support::raw_client(&engine.config().url).await;
    let key = format!(
        "{}:req:{id}",
        support::flow_tag(&engine.config().prefix, flow)
    );
    let mut args = vec![key.into()];
    args.extend(names.iter().map(|n| (*n).into()));
    let reply: fred::prelude::Value = support::raw(&client, "HMGET", args).await;
    reply
        .into_array()
        .into_iter()
        .map(|v| match v {
            fred::prelude::Value::Null => None,
            v => Some(String::from_utf8_lossy(&v.into_bytes().unwrap_or_default()).into_owned()),
        })
        .collect()
}

fn batch(count: u32, bad: Option<u32>) -> Batch {
    Batch {
        count,
        bad,
        flaky: None,
        slow_ms: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_for_each_runs_its_body_once_per_item_and_gathers_in_order() {
    let engine = engine_of::<Sweep>(support::config("each")).await;
    let shutdown = CancellationToken::new();
    let workers = [
        tokio::spawn(engine.worker(8).run(shutdown.clone())),
        tokio::spawn(engine.worker(8).run(shutdown.clone())),
    ];

    // Item 42 fails its first attempt: its retry waits in the delayed set under its key.
    let flaky = Batch {
        flaky: Some(42),
        ..batch(100, None)
    };
    let id = engine.submit::<Sweep>(&flaky).await.unwrap();
    match engine.wait::<Sweep>(&id, LIMIT).await.unwrap() {
        RequestOutcome::Completed(out) => {
            assert_eq!(out, (0..100).map(|n| n * 2).collect::<Vec<u64>>());
        }
        other => panic!("{other:?}"),
    }
    let state = engine.status::<Sweep>(&id).await.unwrap();
    assert_eq!(state.vertices.len(), 1 + 100 + 100 + 1, "{state:?}");
    assert_eq!(state.vertices[0].vertex, "list");
    assert_eq!(state.vertices[1].vertex, "verify[0]");
    assert_eq!(state.vertices[100].vertex, "verify[99]");
    assert_eq!(state.vertices[101].vertex, "weigh[0]");
    assert_eq!(state.vertices[201].vertex, "total");
    for vertex in &state.vertices {
        assert_eq!(vertex.status, VertexStatus::Done, "{vertex:?}");
        if vertex.vertex == "verify[42]" {
            assert_eq!(vertex.attempts, 2, "{vertex:?}");
            assert_eq!(
                vertex.last_failure,
                Some(Failure::Error("item 42 is flaky".into()))
            );
        } else {
            assert_eq!(vertex.attempts, 1, "{vertex:?}");
        }
    }
    // The gather waited for 100 items and counted each exactly once; items are stored under
    // the source's key.
    let stored = hash_fields(&engine, Sweep::NAME, &id, &["c:3", "n:3", "o:0#7", "o:2.7"]).await;
    assert_eq!(
        stored[..2],
        [Some("100".to_owned()), Some("100".to_owned())]
    );
    assert!(stored[2..].iter().all(Option::is_some), "{stored:?}");

    // An empty collection: the gather runs at once, on an empty sequence.
    let id = engine.submit::<Sweep>(&batch(0, None)).await.unwrap();
    match engine.wait::<Sweep>(&id, LIMIT).await.unwrap() {
        RequestOutcome::Completed(out) => assert!(out.is_empty(), "{out:?}"),
        other => panic!("{other:?}"),
    }
    let state = engine.status::<Sweep>(&id).await.unwrap();
    let names: Vec<&str> = state.vertices.iter().map(|v| v.vertex.as_str()).collect();
    assert_eq!(names, ["list", "total"]);
    assert!(state
        .vertices
        .iter()
        .all(|v| v.status == VertexStatus::Done));

    shutdown.cancel();
    for worker in workers {
        worker.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_item_fails_the_request_and_is_named_with_its_index() {
    let config = support::config("each-fail");
    let dead = format!("{}:dead", support::flow_tag(&config.prefix, Sweep::NAME));
    let engine = engine_of::<Sweep>(config).await;
    let worker = support::LocalWorker::start(&engine, 8);

    let id = engine.submit::<Sweep>(&batch(100, Some(37))).await.unwrap();
    let failure = match engine.wait::<Sweep>(&id, LIMIT).await.unwrap() {
        RequestOutcome::Failed(failure) => failure,
        other => panic!("{other:?}"),
    };
    assert_eq!(failure.vertex, "verify[37]");
    assert_eq!(failure.attempts, 1);
    assert_eq!(failure.failure, Failure::Permanent("item 37 is bad".into()));
    let state = engine.status::<Sweep>(&id).await.unwrap();
    assert_eq!(state.status, RequestStatus::Failed);
    assert_eq!(state.failure.as_ref(), Some(&failure));
    let statuses = statuses(&state);
    assert_eq!(statuses["verify[37]"], VertexStatus::Failed);
    // The request ended: the gather, which never got its inputs, is settled as skipped.
    assert_eq!(statuses["total"], VertexStatus::Skipped);

    let client = support::raw_client(&engine.config().url).await;
    let letters = support::stream_entries(&client, &dead).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        letters[0].1["v"], "1.37",
        "the dead letter holds the instance key"
    );
    let recorded: RequestFailure = serde_json::from_str(&letters[0].1["failure"]).unwrap();
    assert_eq!(recorded, failure);

    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn items_made_ready_while_paused_are_parked_and_resumed_once() {
    let engine = engine_of::<Sweep>(support::config("each-pause")).await;
    let worker = support::LocalWorker::start(&engine, 8);

    let slow = Batch {
        count: 50,
        bad: None,
        flaky: None,
        slow_ms: 300,
    };
    let id = engine.submit::<Sweep>(&slow).await.unwrap();
    support::wait_until("list runs", LIMIT, async || {
        let state = engine.status::<Sweep>(&id).await.unwrap();
        state.vertices[0].status == VertexStatus::Running
    })
    .await;
    assert_eq!(
        engine.pause::<Sweep>(&id).await.unwrap(),
        RequestStatus::Paused
    );
    support::wait_until("the items are parked", LIMIT, async || {
        let state = engine.status::<Sweep>(&id).await.unwrap();
        let parked = state
            .vertices
            .iter()
            .filter(|v| v.status == VertexStatus::Parked)
            .count();
        parked == 50
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let state = engine.status::<Sweep>(&id).await.unwrap();
    assert_eq!(state.status, RequestStatus::Paused);
    assert_eq!(state.vertices.len(), 1 + 50 + 1, "nothing ran while paused");

    assert_eq!(
        engine.resume::<Sweep>(&id).await.unwrap(),
        RequestStatus::Running
    );
    match engine.wait::<Sweep>(&id, LIMIT).await.unwrap() {
        RequestOutcome::Completed(out) => {
            assert_eq!(out, (0..50).map(|n| n * 2).collect::<Vec<u64>>());
        }
        other => panic!("{other:?}"),
    }
    let state = engine.status::<Sweep>(&id).await.unwrap();
    assert!(state.vertices.iter().all(|v| v.attempts == 1), "{state:?}");

    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_for_each_over_thousands_of_items_is_one_completion() {
    // More items than one Lua `unpack` takes: the scripts store, enqueue and gather in chunks.
    let engine = engine_of::<Sweep>(support::config("each-big")).await;
    let worker = support::LocalWorker::start(&engine, 64);

    let id = engine.submit::<Sweep>(&batch(4500, None)).await.unwrap();
    match engine.wait::<Sweep>(&id, LIMIT).await.unwrap() {
        RequestOutcome::Completed(out) => {
            assert_eq!(out, (0..4500).map(|n| n * 2).collect::<Vec<u64>>());
        }
        other => panic!("{other:?}"),
    }

    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conditional_runs_one_arm_and_skips_the_others() {
    let engine = engine_of::<Classify>(support::config("branch")).await;
    let worker = support::LocalWorker::start(&engine, 4);

    use VertexStatus::{Done, Skipped};
    let cases = [
        (3, "=4", [Done, Skipped, Skipped]),
        (40, "=4", [Skipped, Done, Done]),
        (0, "=0", [Skipped, Skipped, Skipped]),
    ];
    for (input, output, arms) in cases {
        let id = engine.submit::<Classify>(&input).await.unwrap();
        match engine.wait::<Classify>(&id, LIMIT).await.unwrap() {
            RequestOutcome::Completed(out) => assert_eq!(out, output, "input {input}"),
            other => panic!("input {input}: {other:?}"),
        }
        let state = engine.status::<Classify>(&id).await.unwrap();
        let got: Vec<(&str, VertexStatus)> = state
            .vertices
            .iter()
            .map(|v| (v.vertex.as_str(), v.status))
            .collect();
        let want = vec![
            ("classify", Done),
            ("inc", arms[0]),
            ("halve", arms[1]),
            ("shrink", arms[2]),
            ("report", Done),
        ];
        assert_eq!(got, want, "input {input}");
    }

    // A conditional whose output picks no arm fails, once: the same bytes would not do better
    // on a retry.
    let id = engine.submit::<Classify>(&13).await.unwrap();
    match engine.wait::<Classify>(&id, LIMIT).await.unwrap() {
        RequestOutcome::Failed(failure) => {
            assert_eq!(failure.vertex, "classify");
            assert_eq!(failure.attempts, 1);
            assert!(
                matches!(&failure.failure, Failure::Codec(m) if m.contains("Unlucky")),
                "{failure:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let state = engine.status::<Classify>(&id).await.unwrap();
    let statuses = statuses(&state);
    assert_eq!(statuses["classify"], VertexStatus::Failed);
    // The request ended: the arms that never got their input are settled as skipped.
    assert_eq!(statuses["inc"], VertexStatus::Skipped);

    worker.stop().await;
}

// ---------------------------------------------------------------------------------------------
// An idle worker.

/// What this test process logged at `info` and above: level, message, and the `consumer`
/// field (workers name themselves by it).
static LOGS: LazyLock<Mutex<Vec<Logged>>> = LazyLock::new(Mutex::default);

#[derive(Debug, Clone, Default)]
struct Logged {
    level: Option<tracing::Level>,
    message: String,
    consumer: Option<String>,
}

impl tracing::field::Visit for Logged {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "consumer" => self.consumer = Some(value.to_owned()),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "consumer" => self.consumer = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

/// Records every event at `info` and above in [`LOGS`].
struct RecordLogs;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RecordLogs {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let level = *event.metadata().level();
        if level > tracing::Level::INFO {
            return;
        }
        let mut logged = Logged {
            level: Some(level),
            ..Logged::default()
        };
        event.record(&mut logged);
        LOGS.lock().unwrap().push(logged);
    }
}

/// Installs [`RecordLogs`] as this process's subscriber (once, for every test that reads
/// [`LOGS`]).
fn capture_logs() {
    use tracing_subscriber::layer::SubscriberExt as _;
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(RecordLogs),
        );
    });
}

/// What worker `consumer` logged.
fn logged_by(consumer: &str) -> Vec<Logged> {
    LOGS.lock()
        .unwrap()
        .iter()
        .filter(|logged| logged.consumer.as_deref() == Some(consumer))
        .cloned()
        .collect()
}

/// A blocking read that times out (nothing arrived within its block) is the normal answer of
/// an idle stream: the worker reads again at once, and logs nothing (it used to log a parse
/// error and sleep 200 ms after every idle second, so a request arriving then waited).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_reads_on_without_warnings() {
    capture_logs();
    let engine = RedisEngine::builder(support::config("idle"))
        .register::<Kyc>()
        .connect()
        .await
        .expect("connect");
    let worker = support::LocalWorker::start(&engine, 2);
    // Three blocks of 1 s time out.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let id = engine.submit::<Kyc>(&"idle".into()).await.unwrap();
    support::completed::<Kyc>(&engine, &id, Duration::from_secs(30)).await;
    worker.stop().await;
    let logs = LOGS.lock().unwrap();
    let reads: Vec<&Logged> = logs
        .iter()
        .filter(|l| l.level == Some(tracing::Level::WARN) && l.message.contains("reading"))
        .collect();
    assert!(reads.is_empty(), "an idle worker warned: {reads:?}");
}

// ---------------------------------------------------------------------------------------------
// Persistence.

/// A worker warns at start when the server persists nothing (neither the append-only file nor
/// snapshots: a restart would lose every request), says at `info` when it cannot tell
/// (`CONFIG` disabled), and says nothing when the append-only file is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_warns_when_redis_persists_nothing() {
    capture_logs();
    let about_persistence = |logged: &Logged| {
        ["persists nothing", "snapshots only", "could not tell"]
            .iter()
            .any(|words| logged.message.contains(words))
    };
    let cases: [(&[&str], Option<tracing::Level>); 3] = [
        // What the test servers run with: `--save "" --appendonly no`.
        (&[], Some(tracing::Level::WARN)),
        (&["--appendonly", "yes"], None),
        (
            &["--rename-command", "CONFIG", ""],
            Some(tracing::Level::INFO),
        ),
    ];
    for (args, want) in cases {
        let server = support::RedisServer::start_with(args);
        let engine = engine_of::<Kyc>(support::config_at(&server.url(), "persistence")).await;
        let worker = support::LocalWorker::start(&engine, 1);
        // The worker checks before it reads: once a request has run, it has said it.
        let id = engine.submit::<Kyc>(&"alice".into()).await.unwrap();
        support::completed::<Kyc>(&engine, &id, Duration::from_secs(30)).await;
        let consumer = worker.consumer().to_owned();
        worker.stop().await;
        let said: Vec<Logged> = logged_by(&consumer)
            .into_iter()
            .filter(about_persistence)
            .collect();
        match want {
            None => assert!(said.is_empty(), "{args:?}: {said:?}"),
            Some(level) => {
                assert_eq!(said.len(), 1, "{args:?}: {said:?}");
                assert_eq!(said[0].level, Some(level), "{args:?}: {said:?}");
                if level == tracing::Level::WARN {
                    assert!(said[0].message.contains("persists nothing"), "{said:?}");
                } else {
                    assert!(said[0].message.contains("could not tell"), "{said:?}");
                }
            }
        }
    }
}
