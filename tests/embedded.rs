//! Behaviour specific to the embedded engine, through the public API (but for one check of
//! `run_local`'s plan, through `goflow::__private`): the plan it runs (sub-workflows inlined,
//! as a request's state lists its vertices), dropping a request's future cancelling its
//! running vertices, the JSON codec (`EmbeddedEngineBuilder::new(Json)`), and parallel
//! branches on a current_thread runtime.
//!
//! The behaviours both engines share (shapes, errors, retries, timeouts, panics, a failing
//! branch, the `Context` a node sees, many concurrent requests) live in `tests/conformance.rs`,
//! which runs each of them on the embedded engine and on the Redis one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use goflow::codec::Json;
use goflow::embedded::EmbeddedEngineBuilder;
use goflow::prelude::*;
use goflow::request::{Failure, RequestFailure, RequestOutcome, RequestStatus};
use goflow::{EmbeddedEngine, Engine, Error};
use serde::{Deserialize, Serialize};
use tokio::sync::{Barrier, Notify};

/// How long a test waits for something that should happen "soon" (a barrier releasing, a
/// cancelled future being dropped). Only a bound against hanging forever: no test asserts
/// how long anything took.
const PATIENCE: Duration = Duration::from_secs(10);

/// Sets its flag when dropped: proves that a future was dropped (cancelled) or finished.
struct SetOnDrop(&'static AtomicBool);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Waits (at most [`PATIENCE`]) until `flag` is set.
async fn eventually(flag: &AtomicBool) -> bool {
    tokio::time::timeout(PATIENCE, async {
        while !flag.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .is_ok()
}

// ---------------------------------------------------------------------------------------------
// Shapes the plan and codec tests run: fan-out, fan-in, aliases, sub-workflows.

#[node]
async fn start(s: String) -> String {
    format!("{s}>")
}

#[node]
async fn b(s: String) -> String {
    s + "b"
}

#[node]
async fn c(s: String) -> String {
    s + "c"
}

#[node]
async fn d(s: String) -> String {
    s + "d"
}

#[node]
async fn pair(x: String, y: String) -> String {
    format!("({x}|{y})")
}

#[node]
async fn inc(n: i64) -> i64 {
    n + 1
}

#[node]
async fn dbl(n: i64) -> i64 {
    n * 2
}

workflow! {
    JoinBc = start -> [b, c] => pair;
    JoinCb = start -> [c, b] => pair;
    Arith = inc -> dbl -> inc as inc2 -> dbl as dbl2;
    /// Its entry is a join node: the workflow input is the tuple of its parameters.
    EntryJoin = pair -> d;
    /// A join into a sub-workflow whose entry is a join node.
    JoinIntoSub = start -> [b, c] => EntryJoin;
    /// The same sub-workflow twice, under two aliases, as the branches of a join.
    TwoSubs = start -> [JoinBc as left, JoinCb as right] => pair;
}

#[tokio::test]
async fn the_plan_inlines_sub_workflows_and_is_built_once() {
    // The engine's plan is not public: a request's state lists its vertices, in plan order.
    let engine = EmbeddedEngine::new();
    let id = engine.submit::<TwoSubs>(&"x".into()).await.unwrap();
    match engine.wait::<TwoSubs>(&id, PATIENCE).await.unwrap() {
        RequestOutcome::Completed(output) => assert_eq!(output, "((x>>b|x>>c)|(x>>c|x>>b))"),
        other => panic!("expected the request to complete, got {other:?}"),
    }
    let state = engine.status::<TwoSubs>(&id).await.unwrap();
    assert_eq!(state.status, RequestStatus::Completed);
    let paths: Vec<&str> = state.vertices.iter().map(|v| v.vertex.as_str()).collect();
    for path in [
        "start",
        "left/start",
        "left/b",
        "left/c",
        "left/pair",
        "right/start",
        "right/b",
        "right/c",
        "right/pair",
        "pair",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
    assert_eq!(paths.len(), 10, "{paths:?}");
    // The plan `run_local` runs is built once per workflow. (The engine's own plans, built
    // once per engine and workflow, are private.)
    use goflow::__private::BuildPlan;
    assert!(Arc::ptr_eq(TwoSubs::local_plan(), TwoSubs::local_plan()));
}

// ---------------------------------------------------------------------------------------------
// Parallelism on one thread: branches that can only finish together.

static TRIO_BARRIER: LazyLock<Barrier> = LazyLock::new(|| Barrier::new(3));

/// Waits for the other branches at `barrier`; if they never come (branches run one after the
/// other), fails instead of hanging.
async fn meet(barrier: &Barrier) -> Result<(), NodeError> {
    tokio::time::timeout(PATIENCE, barrier.wait())
        .await
        .map(drop)
        .map_err(|_| NodeError::permanent("the sibling branches never reached the barrier"))
}

#[node]
async fn trio_a(n: u32) -> Result<u32, NodeError> {
    meet(&TRIO_BARRIER).await?;
    Ok(n + 1)
}

#[node]
async fn trio_b(n: u32) -> Result<u32, NodeError> {
    meet(&TRIO_BARRIER).await?;
    Ok(n + 2)
}

#[node]
async fn trio_c(n: u32) -> Result<u32, NodeError> {
    meet(&TRIO_BARRIER).await?;
    Ok(n + 3)
}

#[node]
async fn plus10(n: u32) -> u32 {
    n + 10
}

#[node]
async fn digits3(x: u32, y: u32, z: u32) -> u32 {
    x * 100 + y * 10 + z
}

workflow! {
    /// One branch is a chain: its last vertex meets the other branches.
    Parallel3 = plus10 -> [trio_a, plus10 as ten -> trio_b, trio_c] => digits3;
}

#[tokio::test(flavor = "current_thread")]
async fn fan_out_branches_run_concurrently_on_one_thread() {
    // On one thread too, branches are tasks that interleave rather than a sequence.
    assert_eq!(
        Parallel3::run_local(0).await.unwrap(),
        100 * 11 + 10 * 22 + 13
    );
}

// ---------------------------------------------------------------------------------------------
// Dropping a request.

static ABANDONED_GONE: AtomicBool = AtomicBool::new(false);
static ABANDONED_STARTED: LazyLock<Notify> = LazyLock::new(Notify::new);

#[node]
async fn abandoned(n: u32) -> u32 {
    let _guard = SetOnDrop(&ABANDONED_GONE);
    ABANDONED_STARTED.notify_one();
    tokio::time::sleep(Duration::from_secs(30)).await;
    n
}

workflow! {
    Abandoned = plus10 -> abandoned;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_request_cancels_its_running_vertices() {
    let request = tokio::spawn(Abandoned::run_local(1));
    tokio::time::timeout(PATIENCE, ABANDONED_STARTED.notified())
        .await
        .expect("the vertex never started");
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());
    assert!(
        eventually(&ABANDONED_GONE).await,
        "the running vertex outlived its request"
    );
}

// ---------------------------------------------------------------------------------------------
// Codecs.

/// A payload with a nested collection and an optional field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    id: u64,
    lines: Vec<String>,
    note: Option<String>,
}

#[node]
async fn split_order(order: Order) -> Order {
    order
}

#[node]
async fn count_lines(order: Order) -> usize {
    order.lines.len()
}

#[node]
async fn total_id(order: Order) -> u64 {
    order.id * 2
}

#[node]
async fn summary(lines: usize, id: u64) -> String {
    format!("{lines} lines, id {id}")
}

/// Maps with tuple keys: MessagePack encodes them, JSON cannot.
type Grid = BTreeMap<(u8, u8), u8>;

#[node(retries = 2, backoff = "1ms")]
async fn make_grid(n: u8) -> Grid {
    (0..n).map(|i| ((i, i), i)).collect()
}

#[node]
async fn grid_size(grid: Grid) -> usize {
    grid.len()
}

workflow! {
    OrderFlow = split_order -> [count_lines, total_id] => summary;
    GridFlow = make_grid -> grid_size;
    GridInput = grid_size;
}

#[tokio::test]
async fn the_json_codec_runs_workflows() {
    let order = Order {
        id: 21,
        lines: vec!["a".into(), "b".into(), "c".into()],
        note: None,
    };
    let json = EmbeddedEngineBuilder::new(Json).build();
    assert_eq!(
        json.run::<OrderFlow>(order.clone()).await.unwrap(),
        "3 lines, id 42"
    );
    assert_eq!(json.run::<JoinBc>("x".into()).await.unwrap(), "(x>b|x>c)");
    assert_eq!(json.run::<Arith>(1).await.unwrap(), 10);
    assert_eq!(
        json.run::<EntryJoin>(("p".into(), "q".into()))
            .await
            .unwrap(),
        "(p|q)d"
    );
    assert_eq!(
        json.run::<JoinIntoSub>("x".into()).await.unwrap(),
        "(x>b|x>c)d"
    );
    assert_eq!(
        json.run::<TwoSubs>("x".into()).await.unwrap(),
        "((x>>b|x>>c)|(x>>c|x>>b))"
    );
    assert_eq!(
        EmbeddedEngine::new().run::<OrderFlow>(order).await.unwrap(),
        "3 lines, id 42"
    );
}

#[tokio::test]
async fn a_codec_failure_is_reported_and_not_retried() {
    // MessagePack carries the grid...
    assert_eq!(GridFlow::run_local(3).await.unwrap(), 3);
    // ...JSON cannot encode it: the vertex fails at once, although it allows retries.
    let json = EmbeddedEngineBuilder::new(Json).build();
    match json.run::<GridFlow>(3).await {
        Err(Error::Failed {
            failure:
                RequestFailure {
                    vertex,
                    attempts,
                    failure: Failure::Codec(message),
                    ..
                },
            ..
        }) => {
            assert_eq!(vertex, "make_grid");
            assert_eq!(attempts, 1);
            assert!(message.contains("json encoding failed"), "{message}");
        }
        other => panic!("expected a codec failure of `make_grid`, got {other:?}"),
    }
    // A workflow input that cannot be encoded fails the request before any vertex runs.
    let grid: Grid = [((1, 2), 3)].into();
    match json.run::<GridInput>(grid).await {
        Err(Error::Codec { flow, source }) => {
            assert_eq!(flow, "grid_input");
            assert!(
                source.to_string().contains("json encoding failed"),
                "{source}"
            );
        }
        other => panic!("expected Error::Codec, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_on_the_json_codec_all_complete_correctly() {
    let json = EmbeddedEngineBuilder::new(Json).build();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let json = json.clone();
        tasks.spawn(async move { (i, json.run::<JoinBc>(format!("r{i}")).await) });
    }
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.unwrap();
        assert_eq!(result.unwrap(), format!("(r{i}>b|r{i}>c)"), "request {i}");
        done += 1;
    }
    assert_eq!(done, 200);
}

/// Finished requests past the retention are evicted on a timer too: an engine that goes quiet
/// gives their memory back without another call (eviction also runs on every submission and
/// lookup).
#[tokio::test]
async fn finished_requests_are_evicted_on_a_timer_without_further_calls() {
    let engine = EmbeddedEngine::builder()
        .retention(Duration::from_millis(50))
        .build();
    let id = engine.submit::<Arith>(&1).await.unwrap();
    match engine.wait::<Arith>(&id, PATIENCE).await.unwrap() {
        RequestOutcome::Completed(output) => assert_eq!(output, 10),
        other => panic!("{other:?}"),
    }
    // `Debug` shows how many requests the engine keeps, without evicting any itself.
    assert!(format!("{engine:?}").contains("kept: 1"), "{engine:?}");
    let deadline = std::time::Instant::now() + PATIENCE;
    while !format!("{engine:?}").contains("kept: 0") {
        assert!(
            std::time::Instant::now() < deadline,
            "never evicted: {engine:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
