//! Conditionals (`check ? { Variant => arm, .. } -> next`) and for-each
//! (`list -> each { body } => gather`), every case on both engines (see
//! `tests/support/engines.rs`). The Redis-only case of a for-each surviving a killed worker is
//! in `tests/redis_faults/crash.rs`.
//!
//! Nodes keep no global state the two variants of a case could share: whatever they record is
//! keyed by request id.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use goflow::prelude::*;
use goflow::redis::RedisEngineBuilder;
use goflow::request::{RequestFailure, RequestState, RequestStatus, VertexStatus};
use goflow::Error;
use serde::{Deserialize, Serialize};
use support::engines::{conformance, final_state};
use tokio::sync::Barrier;

/// A bound against hanging forever, never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(20);

fn register_all(builder: RedisEngineBuilder) -> RedisEngineBuilder {
    builder
        .register::<Triage>()
        .register::<TriageChain>()
        .register::<Squares>()
        .register::<ParallelItems>()
        .register::<Grid>()
        .register::<Outer>()
        .register::<PerItemSub>()
        .register::<ItemFailure>()
        .register::<ItemRetry>()
        .register::<GatherOnce>()
        .register::<SortItems>()
        .register::<EachInArm>()
        .register::<Gate>()
}

// ---------------------------------------------------------------------------------------------
// Per-request records.

type Key = (&'static str, String);

static COUNTS: LazyLock<Mutex<HashMap<Key, u32>>> = LazyLock::new(Mutex::default);
static FLAGS: LazyLock<Mutex<HashSet<Key>>> = LazyLock::new(Mutex::default);

fn bump(what: &'static str, id: &str) -> u32 {
    let mut counts = COUNTS.lock().unwrap();
    let count = counts.entry((what, id.to_owned())).or_default();
    *count += 1;
    *count
}

fn count(what: &'static str, id: &str) -> u32 {
    COUNTS
        .lock()
        .unwrap()
        .get(&(what, id.to_owned()))
        .copied()
        .unwrap_or(0)
}

fn set_flag(what: &'static str, id: &str) {
    FLAGS.lock().unwrap().insert((what, id.to_owned()));
}

fn flag(what: &'static str, id: &str) -> bool {
    FLAGS.lock().unwrap().contains(&(what, id.to_owned()))
}

/// Polls until `check` holds; panics after [`PATIENCE`].
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Conditionals.

/// What `classify` makes of a number: each variant carries what its arm needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Verdict {
    /// Approved: the number.
    Pass(u32),
    /// Rejected: why.
    Fail(String),
    /// Neither: the number passes through.
    Skip(u32),
}

#[node]
async fn classify(n: u32) -> Verdict {
    match n % 3 {
        0 => Verdict::Pass(n),
        1 => Verdict::Fail(format!("odd one {n}")),
        _ => Verdict::Skip(n),
    }
}

#[node]
async fn approve(n: u32) -> u32 {
    n * 10
}

#[node]
async fn plus_one(n: u32) -> u32 {
    n + 1
}

#[node]
async fn reason_length(reason: String) -> u32 {
    reason.len() as u32
}

#[node]
async fn report(n: u32) -> String {
    format!("report {n}")
}

workflow! {
    /// One arm per variant; `Skip` passes its payload straight to `report`.
    Triage = classify ? { Pass => approve, Fail => reason_length, Skip => {} } -> report;
    /// Arms that are chains.
    TriageChain = classify ? {
        Pass => approve -> plus_one,
        Fail => reason_length -> plus_one as plus_two,
        Skip => {},
    } -> report;
}

fn status_of(state: &RequestState, vertex: &str) -> VertexStatus {
    state
        .vertices
        .iter()
        .find(|v| v.vertex == vertex)
        .unwrap_or_else(|| panic!("no vertex `{vertex}` in {state:#?}"))
        .status
}

conformance! {
    run_ahead;
    fn a_conditional_runs_the_arm_of_the_variant(engine) {
        assert_eq!(engine.run::<Triage>(3).await.unwrap(), "report 30");
        assert_eq!(engine.run::<Triage>(4).await.unwrap(), "report 9"); // "odd one 4"
        assert_eq!(engine.run::<Triage>(5).await.unwrap(), "report 5");
        assert_eq!(engine.run::<TriageChain>(3).await.unwrap(), "report 31");
        assert_eq!(engine.run::<TriageChain>(4).await.unwrap(), "report 10");
        assert_eq!(engine.run::<TriageChain>(5).await.unwrap(), "report 5");
    }

    fn the_arms_not_taken_are_skipped(engine) {
        let id = engine.submit::<TriageChain>(&4).await.unwrap();
        let state = final_state::<TriageChain>(engine, &id).await;
        assert_eq!(state.status, RequestStatus::Completed, "{state:#?}");
        assert_eq!(status_of(&state, "classify"), VertexStatus::Done);
        assert_eq!(status_of(&state, "approve"), VertexStatus::Skipped);
        assert_eq!(status_of(&state, "plus_one"), VertexStatus::Skipped);
        assert_eq!(status_of(&state, "reason_length"), VertexStatus::Done);
        assert_eq!(status_of(&state, "plus_two"), VertexStatus::Done);
        assert_eq!(status_of(&state, "report"), VertexStatus::Done);

        // The empty arm: both other arms are skipped.
        let id = engine.submit::<TriageChain>(&5).await.unwrap();
        let state = final_state::<TriageChain>(engine, &id).await;
        for vertex in ["approve", "plus_one", "reason_length", "plus_two"] {
            assert_eq!(status_of(&state, vertex), VertexStatus::Skipped, "{vertex}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// For-each.

#[node]
async fn numbers(n: u32) -> Vec<u32> {
    (0..n).collect()
}

/// Later items finish first, so the gather's order is the items' order, not completion order.
#[node]
async fn square(x: u32) -> u64 {
    tokio::time::sleep(Duration::from_millis(u64::from(10u32.saturating_sub(x)))).await;
    u64::from(x) * u64::from(x)
}

#[node]
async fn listing(squares: Vec<u64>) -> String {
    squares
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[node]
async fn total(squares: Vec<u64>) -> u64 {
    squares.iter().sum()
}

/// The barrier of `parties` shared by the items of one request.
fn barrier(ctx: &Context, parties: usize) -> Arc<Barrier> {
    static BARRIERS: LazyLock<Mutex<HashMap<String, Arc<Barrier>>>> = LazyLock::new(Mutex::default);
    let mut barriers = BARRIERS.lock().unwrap();
    Arc::clone(
        barriers
            .entry(ctx.request_id().as_str().to_owned())
            .or_insert_with(|| Arc::new(Barrier::new(parties))),
    )
}

/// Returns only once three items of its request wait together: the items run in parallel.
#[node]
async fn meet_three(ctx: Context, x: u32) -> Result<u64, NodeError> {
    tokio::time::timeout(PATIENCE, barrier(&ctx, 3).wait())
        .await
        .map_err(|_| NodeError::permanent("the items did not run in parallel"))?;
    Ok(u64::from(x))
}

/// A grid of `n` rows of `n` numbers.
#[node]
async fn grid(n: u32) -> Vec<Vec<u32>> {
    (0..n)
        .map(|row| (0..n).map(|col| row * n + col).collect())
        .collect()
}

#[node]
async fn row(cells: Vec<u32>) -> Vec<u32> {
    cells
}

#[node]
async fn count_of(n: u64) -> String {
    format!("sum {n}")
}

#[node]
async fn square_one(x: u32) -> u64 {
    u64::from(x) * u64::from(x)
}

#[node]
async fn add_one(x: u64) -> u64 {
    x + 1
}

workflow! {
    Squares = numbers -> each { square } => listing;
    ParallelItems = numbers -> each { meet_three } => total;
    /// A for-each nested in a for-each: the inner one runs per row.
    Grid = grid -> each { row -> each { square } => total } => listing;
    /// A for-each inside a sub-workflow.
    SumOfSquares = numbers -> each { square_one } => total;
    Outer = SumOfSquares -> count_of;
    /// A sub-workflow as the body.
    SquarePlusOne = square_one -> add_one;
    PerItemSub = numbers -> each { SquarePlusOne } => listing;
}

conformance! {
    run_ahead;
    fn a_for_each_gathers_the_outputs_in_item_order(engine) {
        assert_eq!(engine.run::<Squares>(5).await.unwrap(), "0,1,4,9,16");
        assert_eq!(engine.run::<Squares>(1).await.unwrap(), "0");
    }

    fn an_empty_collection_gives_the_gather_an_empty_vec(engine) {
        assert_eq!(engine.run::<Squares>(0).await.unwrap(), "");
        assert_eq!(engine.run::<Outer>(0).await.unwrap(), "sum 0");
    }

    fn the_items_run_in_parallel(engine) {
        assert_eq!(engine.run::<ParallelItems>(3).await.unwrap(), 3);
    }

    fn for_each_nests(engine) {
        // Rows [0,1,2], [3,4,5], [6,7,8]: the sums of their squares.
        assert_eq!(engine.run::<Grid>(3).await.unwrap(), "5,50,149");
        // An empty inner collection in every row, and no rows at all.
        assert_eq!(engine.run::<Grid>(0).await.unwrap(), "");
    }

    fn for_each_works_in_and_around_sub_workflows(engine) {
        assert_eq!(engine.run::<Outer>(4).await.unwrap(), "sum 14");
        assert_eq!(engine.run::<PerItemSub>(3).await.unwrap(), "1,2,5");
    }

    fn item_instances_are_in_the_request_state(engine) {
        let id = engine.submit::<Squares>(&3).await.unwrap();
        let state = final_state::<Squares>(engine, &id).await;
        assert_eq!(state.status, RequestStatus::Completed, "{state:#?}");
        let names: Vec<&str> = state.vertices.iter().map(|v| v.vertex.as_str()).collect();
        assert_eq!(names, ["numbers", "square[0]", "square[1]", "square[2]", "listing"]);
        assert!(state.vertices.iter().all(|v| v.status == VertexStatus::Done), "{state:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Failures, retries, exactly-once gathers.

#[node]
async fn fragile(x: u32) -> Result<u64, NodeError> {
    if x == 2 {
        return Err(NodeError::permanent(format!("item {x} is broken")));
    }
    Ok(u64::from(x))
}

/// Fails the first attempt of every item, then succeeds.
#[node(retries = 2, backoff = "1ms")]
async fn shaky(ctx: Context, x: u32) -> Result<u64, NodeError> {
    if bump("shaky", &format!("{}/{x}", ctx.request_id())) == 1 {
        return Err(NodeError::new("first attempt fails"));
    }
    Ok(u64::from(x))
}

/// Counts its runs per request.
#[node]
async fn gather_counted(ctx: Context, xs: Vec<u64>) -> u64 {
    bump("gather", ctx.request_id().as_str());
    xs.len() as u64
}

workflow! {
    ItemFailure = numbers -> each { fragile } => total;
    ItemRetry = numbers -> each { shaky } => total;
    GatherOnce = numbers -> each { square_one } => gather_counted;
}

conformance! {
    run_ahead;
    fn a_failing_item_fails_the_request_naming_the_item(engine) {
        match engine.run::<ItemFailure>(5).await {
            Err(Error::Failed {
                failure: RequestFailure { vertex, failure, .. },
                ..
            }) => {
                assert_eq!(vertex, "fragile[2]");
                assert!(failure.to_string().contains("item 2 is broken"), "{failure}");
            }
            other => panic!("expected the item to fail the request, got {other:?}"),
        }
        // Items before and after the broken one do not hide it.
        assert!(matches!(
            engine.run::<ItemFailure>(2).await,
            Ok(1)
        ));
    }

    fn a_retry_policy_recovers_a_failing_item(engine) {
        assert_eq!(engine.run::<ItemRetry>(4).await.unwrap(), 6);
    }

    fn the_gather_runs_exactly_once(engine) {
        for n in [0, 1, 7, 40] {
            let id = engine.submit::<GatherOnce>(&n).await.unwrap();
            let state = final_state::<GatherOnce>(engine, &id).await;
            assert_eq!(state.status, RequestStatus::Completed, "{state:#?}");
            assert_eq!(count("gather", id.as_str()), 1, "n = {n}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Conditionals and for-each together.

/// How much work a number makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Size {
    /// A list to run over.
    Many(Vec<u32>),
    /// A single number.
    Few(u32),
}

#[node]
async fn sort_size(n: u32) -> Size {
    if n >= 3 {
        Size::Many((0..n).collect())
    } else {
        Size::Few(n)
    }
}

#[node]
async fn few(n: u32) -> u64 {
    u64::from(n) * 1000
}

#[node]
async fn parity(x: u32) -> Verdict {
    if x % 2 == 0 {
        Verdict::Pass(x)
    } else {
        Verdict::Skip(x)
    }
}

#[node]
async fn widen(x: u32) -> u64 {
    u64::from(x)
}

workflow! {
    /// A conditional inside a for-each body: each item picks its own arm.
    SortItems = numbers -> each {
        parity ? { Pass => approve, Fail => reason_length, Skip => {} } -> widen
    } => listing;
    /// A for-each inside an arm.
    EachInArm = sort_size ? {
        Many => row -> each { square_one } => total,
        Few => few,
    } -> count_of;
}

conformance! {
    run_ahead;
    fn each_item_picks_its_own_arm(engine) {
        // Even items are approved (x10), odd ones pass through.
        assert_eq!(engine.run::<SortItems>(4).await.unwrap(), "0,1,20,3");
        let id = engine.submit::<SortItems>(&2).await.unwrap();
        let state = final_state::<SortItems>(engine, &id).await;
        assert_eq!(status_of(&state, "approve[0]"), VertexStatus::Done);
        assert_eq!(status_of(&state, "approve[1]"), VertexStatus::Skipped);
        assert_eq!(status_of(&state, "reason_length[0]"), VertexStatus::Skipped);
    }

    fn a_for_each_runs_inside_an_arm(engine) {
        assert_eq!(engine.run::<EachInArm>(4).await.unwrap(), "sum 14");
        assert_eq!(engine.run::<EachInArm>(2).await.unwrap(), "sum 2000");
    }
}

// ---------------------------------------------------------------------------------------------
// Pause and stop inside a for-each.

/// Holds its item until the request's `release` flag is set.
#[node]
async fn held(ctx: Context, x: u32) -> u64 {
    let id = ctx.request_id().as_str().to_owned();
    set_flag("started", &id);
    while !flag("release", &id) && !ctx.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    u64::from(x)
}

#[node]
async fn gate_total(ctx: Context, xs: Vec<u64>) -> u64 {
    bump("gate_total", ctx.request_id().as_str());
    xs.iter().sum()
}

workflow! {
    Gate = numbers -> each { held } => gate_total;
}

conformance! {
    fn a_paused_for_each_holds_its_gather_until_resumed(engine) {
        let id = engine.submit::<Gate>(&3).await.unwrap();
        until("an item started", async || flag("started", id.as_str())).await;
        assert_eq!(
            engine.pause::<Gate>(&id).await.unwrap(),
            RequestStatus::Paused
        );
        set_flag("release", id.as_str());
        // The running items finish; the gather waits, parked.
        until("the gather is parked", async || {
            let state = engine.status::<Gate>(&id).await.unwrap();
            status_of(&state, "gate_total") == VertexStatus::Parked
        })
        .await;
        let state = engine.status::<Gate>(&id).await.unwrap();
        assert_eq!(state.status, RequestStatus::Paused);
        assert_eq!(count("gate_total", id.as_str()), 0);
        assert_eq!(
            engine.resume::<Gate>(&id).await.unwrap(),
            RequestStatus::Running
        );
        let state = final_state::<Gate>(engine, &id).await;
        assert_eq!(state.status, RequestStatus::Completed, "{state:#?}");
        assert_eq!(count("gate_total", id.as_str()), 1);
    }

    fn a_stopped_for_each_cancels_its_items(engine) {
        let id = engine.submit::<Gate>(&3).await.unwrap();
        until("an item started", async || flag("started", id.as_str())).await;
        assert_eq!(
            engine.stop::<Gate>(&id).await.unwrap(),
            RequestStatus::Stopped
        );
        let state = final_state::<Gate>(engine, &id).await;
        assert_eq!(state.status, RequestStatus::Stopped);
        // The stop settles every instance at once (the lifecycle's sweep): the items, running
        // or queued, are cancelled, and the gather, still waiting for them, is skipped.
        assert_eq!(status_of(&state, "numbers"), VertexStatus::Done);
        for item in ["held[0]", "held[1]", "held[2]"] {
            assert_eq!(status_of(&state, item), VertexStatus::Cancelled, "{item}: {state:#?}");
        }
        assert_eq!(status_of(&state, "gate_total"), VertexStatus::Skipped, "{state:#?}");
        assert!(
            state.vertices.iter().all(|v| v.status.is_final() && v.finished_at_ms.is_some()),
            "{state:#?}"
        );
        set_flag("release", id.as_str());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(count("gate_total", id.as_str()), 0);
    }
}
