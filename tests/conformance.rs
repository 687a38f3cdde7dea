//! The conformance suite: the same behaviour tests, run on both engines.
//!
//! Every case is written once, against the `Engine` trait, and `conformance!` expands it into a module
//! with four tests: `<case>::embedded` (the in-process engine), `<case>::redis` (the Redis
//! streams engine, with a worker of its own running in the test process, on the test binary's
//! own `redis-server` and under a key prefix of its own) and `<case>::redis_cluster` (the same
//! on the test binary's own Redis Cluster of 3 primaries), and `<case>::redis_run_ahead` (the
//! Redis engine with `RedisConfig::run_ahead` on); see `tests/support/engines.rs`.
//! Conditionals and for-each have a suite of their own, `tests/branches.rs`.
//!
//! Both variants of a case run in parallel in one process, so nodes keep no global state that
//! the two could share: whatever a node counts or records is keyed by its request id (or, when
//! the test chooses a fixed id, by a unique input).
//!
//! Where the Redis engine legitimately differs from the embedded one, the case says so in a
//! comment and asserts what each engine does, rather than only what both do.

mod support;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use goflow::prelude::*;
use goflow::redis::RedisEngineBuilder;
use goflow::request::{Failure, RequestFailure, RequestStatus, VertexStatus};
use goflow::{Error, RequestId};
use serde::{Deserialize, Serialize};
use support::engines::conformance;
use tokio::sync::Barrier;

/// How long a test waits for something that should happen "soon" (a barrier releasing, a
/// request ending). Only a bound against hanging forever: no test asserts how long anything
/// took.
const PATIENCE: Duration = Duration::from_secs(10);

/// Registers every top-level workflow the suite runs (sub-workflows are inlined in them).
fn register_all(builder: RedisEngineBuilder) -> RedisEngineBuilder {
    builder
        // Shapes.
        .register::<JoinBc>()
        .register::<JoinCb>()
        .register::<Join3>()
        .register::<Join3Reversed>()
        .register::<ChainBranch>()
        .register::<ChainBranchLast>()
        .register::<Braced>()
        .register::<BracedSwapped>()
        .register::<BracedSplit>()
        .register::<Arith>()
        .register::<EntryJoin>()
        .register::<JoinIntoSub>()
        .register::<TwoSubs>()
        .register::<Wrapper>()
        .register::<SubFirst>()
        .register::<SubLast>()
        // Parallelism.
        .register::<Parallel>()
        .register::<Parallel3>()
        // Errors.
        .register::<NodeErrorFlow>()
        .register::<IoErrorFlow>()
        .register::<IoAliasFlow>()
        .register::<PermanentFlow>()
        .register::<OuterAliased>()
        .register::<OuterPlain>()
        .register::<OuterNested>()
        // Retries, timeouts, panics.
        .register::<FlakyFlow>()
        .register::<HopelessFlow>()
        .register::<SleepyFlow>()
        .register::<DozyFlow>()
        .register::<PanicFormatted>()
        .register::<PanicLiteral>()
        .register::<PanicNumber>()
        .register::<PanicOnce>()
        .register::<PanicAlways>()
        // A failing branch.
        .register::<FailingBranch>()
        // Context.
        .register::<ProbeFlow>()
        // Many requests.
        .register::<Sevens>()
}

// ---------------------------------------------------------------------------------------------
// State that nodes record, keyed by request id so that cases (and their two variants) never see
// each other's.

/// What was recorded (a name) and for which request.
type Key = (&'static str, String);

static COUNTS: LazyLock<Mutex<HashMap<Key, u32>>> = LazyLock::new(Mutex::default);
static FLAGS: LazyLock<Mutex<HashSet<Key>>> = LazyLock::new(Mutex::default);

/// Adds one to the count `what` of the request `ctx` belongs to.
fn bump(what: &'static str, ctx: &Context) {
    bump_id(what, ctx.request_id().as_str());
}

fn bump_id(what: &'static str, id: &str) {
    *COUNTS
        .lock()
        .unwrap()
        .entry((what, id.to_owned()))
        .or_default() += 1;
}

/// The count `what` of request `id`.
fn count(what: &'static str, id: &RequestId) -> u32 {
    COUNTS
        .lock()
        .unwrap()
        .get(&(what, id.as_str().to_owned()))
        .copied()
        .unwrap_or(0)
}

fn set_flag(what: &'static str, id: &str) {
    FLAGS.lock().unwrap().insert((what, id.to_owned()));
}

/// Whether the flag `what` of request `id` is set.
fn flag(what: &'static str, id: &RequestId) -> bool {
    FLAGS
        .lock()
        .unwrap()
        .contains(&(what, id.as_str().to_owned()))
}

/// Waits (at most [`PATIENCE`]) until the flag `what` of request `id` is set.
async fn eventually(what: &'static str, id: &RequestId) -> bool {
    tokio::time::timeout(PATIENCE, async {
        while !flag(what, id) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .is_ok()
}

/// Sets a flag of its request when dropped: proves that a future was dropped or finished.
struct FlagOnDrop(&'static str, String);

impl FlagOnDrop {
    fn new(what: &'static str, ctx: &Context) -> Self {
        Self(what, ctx.request_id().as_str().to_owned())
    }
}

impl Drop for FlagOnDrop {
    fn drop(&mut self) {
        set_flag(self.0, &self.1);
    }
}

/// Counts its drops in a count of its request.
struct CountOnDrop(&'static str, String);

impl CountOnDrop {
    fn new(what: &'static str, ctx: &Context) -> Self {
        Self(what, ctx.request_id().as_str().to_owned())
    }
}

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        bump_id(self.0, &self.1);
    }
}

/// Destructures an `Error::Failed`, panicking with the error otherwise.
fn failed<T: std::fmt::Debug>(result: Result<T, Error>) -> (String, u32, Failure) {
    match result {
        Err(Error::Failed {
            failure:
                RequestFailure {
                    vertex,
                    attempts,
                    failure,
                    ..
                },
            ..
        }) => (vertex, attempts, failure),
        other => panic!("expected Error::Failed, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes: fan-in order, chains in groups, braced bodies, aliases, sub-workflows.

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
async fn triple(x: String, y: String, z: String) -> String {
    format!("({x}|{y}|{z})")
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
    Join3 = start -> [b, c, d] => triple;
    Join3Reversed = start -> [d, c, b] => triple;
    ChainBranch = start -> [b -> c, d] => pair;
    ChainBranchLast = start -> [d, b -> c] => pair;
    Braced = { start -> [b, c]; [b, c] => pair; };
    BracedSwapped = { start -> [b, c]; [c, b] => pair; };
    BracedSplit = { start -> b; start -> c; [b, c] => pair; pair -> d; };
    Arith = inc -> dbl -> inc as inc2 -> dbl as dbl2;
    /// Its entry is a join node: the workflow input is the tuple of its parameters.
    EntryJoin = pair -> d;
    /// A join into a sub-workflow whose entry is a join node.
    JoinIntoSub = start -> [b, c] => EntryJoin;
    /// The same sub-workflow twice, under two aliases, as the branches of a join.
    TwoSubs = start -> [JoinBc as left, JoinCb as right] => pair;
    /// A sub-workflow alone.
    Wrapper = JoinBc;
    /// A sub-workflow as the entry, and as the exit.
    SubFirst = JoinBc -> d;
    SubLast = start -> JoinCb;
}

conformance! {
    run_ahead;
    /// A request is pinned to the version of the graph it was submitted on: the graph's
    /// structural hash, in its state; nothing holds it back once it has ended.
    fn a_request_is_pinned_to_the_version_of_its_graph(engine) {
        let id = engine.submit::<JoinBc>(&"v".to_owned()).await.unwrap();
        engine.wait::<JoinBc>(&id, PATIENCE).await.unwrap();
        let state = engine.status::<JoinBc>(&id).await.unwrap();
        assert_eq!(state.version, format!("{:016x}", JoinBc::graph().structural_hash()));
        assert_eq!(state.waiting_for, None);
        // On its engine's version already, a migration leaves it as it is, and a request that
        // does not exist is unknown.
        let migrated = engine.migrate::<JoinBc>(&id).await.unwrap();
        assert!(!migrated.moved, "{migrated:?}");
        assert_eq!((migrated.from.as_str(), migrated.to.as_str()), (state.version.as_str(), state.version.as_str()));
        assert_eq!(migrated.status, RequestStatus::Completed);
        let unknown = RequestId::parse("never-submitted").unwrap();
        assert!(matches!(
            engine.migrate::<JoinBc>(&unknown).await,
            Err(Error::UnknownRequest { .. })
        ));
    }

    fn fan_in_passes_outputs_in_the_declared_order(engine) {
        assert_eq!(engine.run::<JoinBc>("x".into()).await.unwrap(), "(x>b|x>c)");
        assert_eq!(engine.run::<JoinCb>("x".into()).await.unwrap(), "(x>c|x>b)");
    }

    fn three_way_join_keeps_the_order(engine) {
        assert_eq!(engine.run::<Join3>("x".into()).await.unwrap(), "(x>b|x>c|x>d)");
        assert_eq!(
            engine.run::<Join3Reversed>("x".into()).await.unwrap(),
            "(x>d|x>c|x>b)"
        );
    }

    fn join_of_a_chain_branch_takes_the_chain_output(engine) {
        assert_eq!(
            engine.run::<ChainBranch>("x".into()).await.unwrap(),
            "(x>bc|x>d)"
        );
        assert_eq!(
            engine.run::<ChainBranchLast>("x".into()).await.unwrap(),
            "(x>d|x>bc)"
        );
    }

    fn braced_body_declares_a_diamond(engine) {
        assert_eq!(engine.run::<Braced>("x".into()).await.unwrap(), "(x>b|x>c)");
        assert_eq!(
            engine.run::<BracedSwapped>("x".into()).await.unwrap(),
            "(x>c|x>b)"
        );
        assert_eq!(
            engine.run::<BracedSplit>("x".into()).await.unwrap(),
            "(x>b|x>c)d"
        );
    }

    fn aliases_are_separate_vertices_running_the_same_node(engine) {
        // ((1 + 1) * 2 + 1) * 2
        assert_eq!(engine.run::<Arith>(1).await.unwrap(), 10);
        assert_eq!(engine.run::<Arith>(3).await.unwrap(), 18);
        assert_eq!(engine.run::<Arith>(-1).await.unwrap(), 2);
    }

    fn a_join_node_as_entry_takes_the_tuple_input(engine) {
        assert_eq!(
            engine.run::<EntryJoin>(("p".into(), "q".into())).await.unwrap(),
            "(p|q)d"
        );
        assert_eq!(
            engine.run::<JoinIntoSub>("x".into()).await.unwrap(),
            "(x>b|x>c)d"
        );
    }

    fn sub_workflows_are_inlined_and_may_repeat(engine) {
        assert_eq!(
            engine.run::<TwoSubs>("x".into()).await.unwrap(),
            "((x>>b|x>>c)|(x>>c|x>>b))"
        );
        assert_eq!(engine.run::<Wrapper>("x".into()).await.unwrap(), "(x>b|x>c)");
        assert_eq!(engine.run::<SubFirst>("x".into()).await.unwrap(), "(x>b|x>c)d");
        assert_eq!(engine.run::<SubLast>("x".into()).await.unwrap(), "(x>>c|x>>b)");
    }
}

// ---------------------------------------------------------------------------------------------
// Parallelism: branches that can only finish together.

/// The barrier of `parties` shared by the branches of one request.
fn barrier(ctx: &Context, parties: usize) -> Arc<Barrier> {
    static BARRIERS: LazyLock<Mutex<HashMap<String, Arc<Barrier>>>> = LazyLock::new(Mutex::default);
    let mut barriers = BARRIERS.lock().unwrap();
    Arc::clone(
        barriers
            .entry(ctx.request_id().as_str().to_owned())
            .or_insert_with(|| Arc::new(Barrier::new(parties))),
    )
}

/// Waits for the other branches of the request at a barrier of `parties`; if they never come
/// (branches run one after the other), fails instead of hanging.
async fn meet(ctx: &Context, parties: usize) -> Result<(), NodeError> {
    let barrier = barrier(ctx, parties);
    tokio::time::timeout(PATIENCE, barrier.wait())
        .await
        .map(drop)
        .map_err(|_| NodeError::permanent("the sibling branches never reached the barrier"))
}

#[node]
async fn pair_left(ctx: Context, n: u32) -> Result<u32, NodeError> {
    meet(&ctx, 2).await?;
    Ok(n + 1)
}

#[node]
async fn pair_right(ctx: Context, n: u32) -> Result<u32, NodeError> {
    meet(&ctx, 2).await?;
    Ok(n + 2)
}

#[node]
async fn digits2(x: u32, y: u32) -> u32 {
    x * 10 + y
}

#[node]
async fn trio_a(ctx: Context, n: u32) -> Result<u32, NodeError> {
    meet(&ctx, 3).await?;
    Ok(n + 1)
}

#[node]
async fn trio_b(ctx: Context, n: u32) -> Result<u32, NodeError> {
    meet(&ctx, 3).await?;
    Ok(n + 2)
}

#[node]
async fn trio_c(ctx: Context, n: u32) -> Result<u32, NodeError> {
    meet(&ctx, 3).await?;
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
    Parallel = plus10 -> [pair_left, pair_right] => digits2;
    /// One branch is a chain: its last vertex meets the other branches.
    Parallel3 = plus10 -> [trio_a, plus10 as ten -> trio_b, trio_c] => digits3;
}

conformance! {
    run_ahead;
    /// Each branch waits for the others at a barrier: run one after the other, the first would
    /// time out. On Redis the branches are separate stream entries, run in parallel by the
    /// worker's slots (it has more than three).
    fn fan_out_branches_run_in_parallel(engine) {
        assert_eq!(engine.run::<Parallel>(0).await.unwrap(), 10 * 11 + 12);
        assert_eq!(
            engine.run::<Parallel3>(0).await.unwrap(),
            100 * 11 + 10 * 22 + 13
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Node errors.

#[node]
async fn fails_node_error(s: String) -> Result<String, NodeError> {
    Err(NodeError::new(format!("cannot handle {s}")))
}

#[node]
async fn fails_io(s: String) -> Result<String, std::io::Error> {
    Err(std::io::Error::other(format!(
        "disk full while writing {s}"
    )))
}

#[node]
async fn fails_io_alias(s: String) -> std::io::Result<String> {
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("no file {s}"),
    ))
}

#[node(retries = 3, backoff = "1ms")]
async fn fails_permanently(ctx: Context, s: String) -> Result<String, NodeError> {
    bump("fails_permanently", &ctx);
    Err(NodeError::permanent(format!("{s} is invalid")))
}

workflow! {
    NodeErrorFlow = start -> fails_node_error -> b;
    IoErrorFlow = start -> fails_io;
    IoAliasFlow = start -> fails_io_alias;
    PermanentFlow = start -> fails_permanently;
}

#[node]
async fn inner_fail(s: String) -> Result<String, NodeError> {
    Err(NodeError::new(format!("inner failure on {s}")))
}

workflow! {
    Inner = b -> inner_fail;
    Middle = c -> Inner as deep;
    OuterAliased = start -> Inner as sub -> d;
    OuterPlain = start -> Inner -> d;
    OuterNested = start -> Middle as mid -> d;
}

conformance! {
    run_ahead;
    fn a_node_error_fails_the_request_with_its_message(engine) {
        let id = RequestId::generate();
        let error = engine.run_as::<NodeErrorFlow>(id.clone(), "x".into()).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "request `{id}` of `node_error_flow` failed at vertex `fails_node_error` after \
                 1 attempt(s): cannot handle x>"
            )
        );
        assert_eq!(
            error.failure(),
            Some(&Failure::Error("cannot handle x>".into()))
        );
        match error {
            Error::Failed {
                flow,
                request_id,
                failure,
                ..
            } => {
                assert_eq!(flow, "node_error_flow");
                assert_eq!(request_id, id);
                assert_eq!(failure.vertex, "fails_node_error");
                assert_eq!(failure.attempts, 1);
                assert_eq!(failure.failure, Failure::Error("cannot handle x>".into()));
            }
            other => panic!("expected Error::Failed, got {other:?}"),
        }
    }

    fn an_io_error_fails_the_request_with_its_message(engine) {
        let (vertex, attempts, failure) = failed(engine.run::<IoErrorFlow>("x".into()).await);
        assert_eq!(vertex, "fails_io");
        assert_eq!(attempts, 1);
        assert_eq!(failure, Failure::Error("disk full while writing x>".into()));

        let (vertex, attempts, failure) = failed(engine.run::<IoAliasFlow>("y".into()).await);
        assert_eq!(vertex, "fails_io_alias");
        assert_eq!(attempts, 1);
        assert_eq!(failure, Failure::Error("no file y>".into()));
    }

    fn a_permanent_error_is_not_retried(engine) {
        let id = RequestId::generate();
        let (vertex, attempts, failure) =
            failed(engine.run_as::<PermanentFlow>(id.clone(), "x".into()).await);
        assert_eq!(vertex, "fails_permanently");
        assert_eq!(attempts, 1);
        assert_eq!(failure, Failure::Permanent("x> is invalid".into()));
        assert!(!failure.is_retryable());
        assert_eq!(count("fails_permanently", &id), 1);
    }

    fn a_failure_inside_a_sub_workflow_names_the_vertex_path(engine) {
        let id = RequestId::generate();
        let error = engine.run_as::<OuterAliased>(id.clone(), "x".into()).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "request `{id}` of `outer_aliased` failed at vertex `sub/inner_fail` after 1 \
                 attempt(s): inner failure on x>b"
            )
        );
        let (vertex, _, failure) = failed(engine.run::<OuterNested>("x".into()).await);
        assert_eq!(vertex, "mid/deep/inner_fail");
        assert_eq!(failure, Failure::Error("inner failure on x>cb".into()));

        // Without an alias the path segment is the vertex name as written in the DSL: the
        // workflow's type name, not its snake_case `NAME`.
        let (vertex, _, _) = failed(engine.run::<OuterPlain>("x".into()).await);
        assert_eq!(vertex, "Inner/inner_fail");
    }
}

// ---------------------------------------------------------------------------------------------
// Retries. On Redis a retry leaves the stream, waits its backoff in the delayed set, and is
// moved back by the promoter: another delivery, possibly to another worker.

#[node(retries = 2, backoff = "1ms")]
async fn flaky(ctx: Context, n: u32) -> Result<u32, NodeError> {
    bump("flaky", &ctx);
    if ctx.attempt() < 3 {
        return Err(NodeError::new(format!("attempt {} failed", ctx.attempt())));
    }
    // The output records which attempt produced it.
    Ok(n * 10 + ctx.attempt())
}

#[node(retries = 2, backoff = "1ms")]
async fn hopeless(n: u32, ctx: Context) -> Result<u32, NodeError> {
    bump("hopeless", &ctx);
    Err(NodeError::new(format!(
        "attempt {} of {n} failed",
        ctx.attempt()
    )))
}

#[node]
async fn after_hopeless(ctx: Context, n: u32) -> u32 {
    bump("after_hopeless", &ctx);
    n
}

workflow! {
    FlakyFlow = plus10 -> flaky;
    HopelessFlow = plus10 -> hopeless -> after_hopeless;
}

conformance! {
    run_ahead;
    fn a_node_that_fails_twice_succeeds_on_its_third_attempt(engine) {
        let id = RequestId::generate();
        assert_eq!(engine.run_as::<FlakyFlow>(id.clone(), 1).await.unwrap(), 113);
        assert_eq!(count("flaky", &id), 3);
    }

    fn a_node_that_always_fails_uses_all_its_attempts(engine) {
        let id = RequestId::generate();
        let (vertex, attempts, failure) =
            failed(engine.run_as::<HopelessFlow>(id.clone(), 1).await);
        assert_eq!(vertex, "hopeless");
        assert_eq!(attempts, 3);
        // The failure is the last attempt's.
        assert_eq!(failure, Failure::Error("attempt 3 of 11 failed".into()));
        assert_eq!(count("hopeless", &id), 3);
        assert_eq!(count("after_hopeless", &id), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Timeouts.

#[node(timeout = "50ms")]
async fn sleepy(ctx: Context, n: u32) -> u32 {
    let _guard = FlagOnDrop::new("sleepy_dropped", &ctx);
    tokio::time::sleep(PATIENCE).await;
    set_flag("sleepy_woke", ctx.request_id().as_str());
    n
}

#[node(timeout = "20ms", retries = 1, backoff = "1ms")]
async fn dozy(ctx: Context, n: u32) -> u32 {
    bump("dozy_starts", &ctx);
    let _guard = CountOnDrop::new("dozy_drops", &ctx);
    tokio::time::sleep(PATIENCE).await;
    n
}

workflow! {
    SleepyFlow = plus10 -> sleepy;
    DozyFlow = plus10 -> dozy;
}

conformance! {
    run_ahead;
    fn a_node_past_its_timeout_fails_and_its_future_is_dropped(engine) {
        let id = RequestId::generate();
        let (vertex, attempts, failure) =
            failed(engine.run_as::<SleepyFlow>(id.clone(), 1).await);
        assert_eq!(vertex, "sleepy");
        assert_eq!(attempts, 1);
        assert_eq!(failure, Failure::Timeout(Duration::from_millis(50)));
        assert!(failure.is_retryable());
        // How a failure is recorded (and stored by the Redis engine): the limit in milliseconds.
        let recorded = serde_json::to_value(&failure).unwrap();
        assert_eq!(
            recorded,
            serde_json::json!({"kind": "timeout", "detail": 50})
        );
        assert_eq!(
            serde_json::from_value::<Failure>(recorded).unwrap(),
            failure
        );
        // The attempt's future was dropped before the failure was reported, not left running.
        assert!(flag("sleepy_dropped", &id));
        assert!(!flag("sleepy_woke", &id));
    }

    fn a_timed_out_attempt_is_retried(engine) {
        let id = RequestId::generate();
        let (vertex, attempts, failure) =
            failed(engine.run_as::<DozyFlow>(id.clone(), 1).await);
        assert_eq!(vertex, "dozy");
        assert_eq!(attempts, 2);
        assert_eq!(failure, Failure::Timeout(Duration::from_millis(20)));
        assert_eq!(count("dozy_starts", &id), 2);
        assert_eq!(count("dozy_drops", &id), 2);
    }
}

// ---------------------------------------------------------------------------------------------
// Panics.

#[node]
async fn panics_formatted(n: u32) -> u32 {
    if n > 0 {
        panic!("node exploded on {n}");
    }
    n
}

#[node]
async fn panics_literal(n: u32) -> u32 {
    if n > 0 {
        panic!("static boom");
    }
    n
}

#[node]
async fn panics_with_a_number(n: u32) -> u32 {
    if n > 0 {
        std::panic::panic_any(n);
    }
    n
}

#[node(retries = 1, backoff = "1ms")]
async fn panics_once(ctx: Context, n: u32) -> u32 {
    bump("panics_once", &ctx);
    if ctx.attempt() == 1 {
        panic!("first attempt panics");
    }
    n + 100
}

#[node(retries = 1, backoff = "1ms")]
async fn panics_always(ctx: Context, n: u32) -> u32 {
    bump("panics_always", &ctx);
    panic!("attempt {} of {n} panics", ctx.attempt());
}

workflow! {
    PanicFormatted = plus10 -> panics_formatted;
    PanicLiteral = plus10 -> panics_literal;
    PanicNumber = plus10 -> panics_with_a_number;
    PanicOnce = plus10 -> panics_once;
    PanicAlways = plus10 -> panics_always;
}

conformance! {
    run_ahead;
    /// On Redis the panic happens inside the worker: the worker (and the process) must go on
    /// serving requests.
    fn a_panicking_node_fails_the_request_and_the_engine_lives_on(engine) {
        let (vertex, attempts, failure) = failed(engine.run::<PanicFormatted>(1).await);
        assert_eq!(vertex, "panics_formatted");
        assert_eq!(attempts, 1);
        assert_eq!(failure, Failure::Panic("node exploded on 11".into()));

        let (_, _, failure) = failed(engine.run::<PanicLiteral>(1).await);
        assert_eq!(failure, Failure::Panic("static boom".into()));

        let (_, _, failure) = failed(engine.run::<PanicNumber>(1).await);
        assert_eq!(failure, Failure::Panic("a non-string panic payload".into()));

        // The engine is fine: the same workflows run again.
        assert_eq!(engine.run::<JoinBc>("x".into()).await.unwrap(), "(x>b|x>c)");
        assert!(engine.run::<PanicFormatted>(2).await.is_err());
    }

    fn a_panicking_node_is_retried(engine) {
        let id = RequestId::generate();
        assert_eq!(engine.run_as::<PanicOnce>(id.clone(), 1).await.unwrap(), 111);
        assert_eq!(count("panics_once", &id), 2);

        let id = RequestId::generate();
        let (vertex, attempts, failure) =
            failed(engine.run_as::<PanicAlways>(id.clone(), 1).await);
        assert_eq!(vertex, "panics_always");
        assert_eq!(attempts, 2);
        assert_eq!(failure, Failure::Panic("attempt 2 of 11 panics".into()));
        assert_eq!(count("panics_always", &id), 2);
    }
}

// ---------------------------------------------------------------------------------------------
// A failing branch: the request fails, and the join after it never runs.

/// How long the long branch runs unless it is cancelled. Shorter than [`PATIENCE`], so that a
/// test can wait for it to end either way.
const LONG_BRANCH: Duration = Duration::from_secs(2);

#[node]
async fn long_branch(ctx: Context, n: u32) -> u32 {
    // Set when the future returns (after seeing the cancellation) or is dropped (aborted).
    let _guard = FlagOnDrop::new("long_gone", &ctx);
    set_flag("long_started", ctx.request_id().as_str());
    tokio::select! {
        () = ctx.cancelled() => n,
        () = tokio::time::sleep(LONG_BRANCH) => {
            set_flag("long_finished", ctx.request_id().as_str());
            n
        }
    }
}

#[node]
async fn fails_once_sibling_runs(ctx: Context, n: u32) -> Result<u32, NodeError> {
    // Fail only once the long sibling is running, so there is something to cancel.
    let id = ctx.request_id().clone();
    tokio::time::timeout(PATIENCE, async {
        while !flag("long_started", &id) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .map_err(|_| NodeError::permanent("the long branch never started"))?;
    Err(NodeError::permanent(format!("branch failed on {n}")))
}

#[node]
async fn never_joined(ctx: Context, x: u32, y: u32) -> u32 {
    set_flag("joined", ctx.request_id().as_str());
    x + y
}

workflow! {
    FailingBranch = plus10 -> [long_branch, fails_once_sibling_runs] => never_joined;
}

conformance! {
    run_ahead;
    /// A vertex that fails the request cancels its running siblings on both engines (on Redis,
    /// the failing worker publishes the cancellation as `stop` does; regression test for the
    /// sibling that ran to its end). The request keeps the first failure and the join never
    /// runs.
    fn a_failing_branch_fails_the_request_and_cancels_its_sibling(engine) {
        let id = RequestId::generate();
        let (vertex, attempts, failure) =
            failed(engine.run_as::<FailingBranch>(id.clone(), 1).await);
        assert_eq!(vertex, "fails_once_sibling_runs");
        assert_eq!(attempts, 1);
        assert_eq!(failure, Failure::Permanent("branch failed on 11".into()));
        assert!(
            eventually("long_gone", &id).await,
            "the long sibling neither ended nor was cancelled or dropped"
        );
        assert!(!flag("long_finished", &id), "the long sibling ran to its end");
        assert!(!flag("joined", &id), "the join ran after a branch failed");
        // Submitted (so recorded), the request reports the first failure, and the sweep
        // settles its sibling as cancelled and the join as skipped.
        let id = engine.submit::<FailingBranch>(&2).await.unwrap();
        let state = support::engines::final_state::<FailingBranch>(engine, &id).await;
        assert_eq!(state.status, RequestStatus::Failed);
        let recorded = state.failure.expect("the request's failure");
        assert_eq!(recorded.vertex, "fails_once_sibling_runs");
        assert_eq!(recorded.failure, Failure::Permanent("branch failed on 12".into()));
        let status = |name: &str| state.vertices.iter().find(|v| v.vertex == name).unwrap().status;
        assert_eq!(status("long_branch"), VertexStatus::Cancelled);
        assert_eq!(status("never_joined"), VertexStatus::Skipped);
        assert_eq!(status("plus10"), VertexStatus::Done);
    }
}

// ---------------------------------------------------------------------------------------------
// The context a node sees.

/// What a node saw of its context. `pub`, like every type a node takes or returns: `#[node]`
/// generates a `pub` type whose `Node` impl names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// The workflow input, unique to the test: it tells apart the two variants' records,
    /// which share the request id `req-1`.
    input: u32,
    flow: String,
    request_id: String,
    vertex: String,
    attempt: u32,
    key: String,
    cancelled: bool,
}

impl Seen {
    fn of(ctx: &Context, input: u32) -> Self {
        Self {
            input,
            flow: ctx.flow().to_owned(),
            request_id: ctx.request_id().as_str().to_owned(),
            vertex: ctx.vertex().to_owned(),
            attempt: ctx.attempt(),
            key: ctx.idempotency_key().to_owned(),
            cancelled: ctx.is_cancelled(),
        }
    }
}

#[node]
async fn probe_first(ctx: Context, n: u32) -> Vec<Seen> {
    vec![Seen::of(&ctx, n)]
}

/// What the failed attempts of `probe_retry` saw.
static FAILED_PROBES: LazyLock<Mutex<Vec<Seen>>> = LazyLock::new(Mutex::default);

#[node(retries = 1, backoff = "1ms")]
async fn probe_retry(mut seen: Vec<Seen>, ctx: Context) -> Result<Vec<Seen>, NodeError> {
    let input = seen[0].input;
    if ctx.attempt() == 1 {
        FAILED_PROBES.lock().unwrap().push(Seen::of(&ctx, input));
        return Err(NodeError::new("first attempt fails"));
    }
    seen.push(Seen::of(&ctx, input));
    Ok(seen)
}

workflow! {
    ProbeInner = probe_retry;
    ProbeFlow = probe_first -> ProbeInner as sub;
}

/// A workflow input no other test (or variant) uses.
fn unique_input() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

conformance! {
    run_ahead;
    fn context_reports_request_vertex_attempt_and_idempotency_key(engine) {
        let input = unique_input();
        let id = RequestId::parse("req-1").unwrap();
        let seen = engine.run_as::<ProbeFlow>(id, input).await.unwrap();
        let expected_first = Seen {
            input,
            flow: "probe_flow".into(),
            request_id: "req-1".into(),
            vertex: "probe_first".into(),
            attempt: 1,
            key: "probe_flow:req-1:probe_first".into(),
            cancelled: false,
        };
        let expected_retry = Seen {
            input,
            flow: "probe_flow".into(),
            request_id: "req-1".into(),
            vertex: "sub/probe_retry".into(),
            attempt: 2,
            key: "probe_flow:req-1:sub/probe_retry".into(),
            cancelled: false,
        };
        assert_eq!(seen, vec![expected_first, expected_retry.clone()]);

        // The failed first attempt saw the same context but for the attempt number: the
        // idempotency key is stable across retries (on Redis, across deliveries).
        let failed_attempts: Vec<Seen> = FAILED_PROBES
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.input == input)
            .cloned()
            .collect();
        assert_eq!(
            failed_attempts,
            vec![Seen {
                attempt: 1,
                ..expected_retry
            }]
        );

        // Another request: another id, other keys; a generated id is a valid one.
        let seen = engine.run::<ProbeFlow>(input).await.unwrap();
        let generated = &seen[0].request_id;
        assert_ne!(generated, "req-1");
        assert_eq!(
            RequestId::parse(generated).unwrap().as_str(),
            generated.as_str()
        );
        assert_eq!(seen[1].request_id, *generated);
        assert_eq!(
            seen[1].key,
            format!("probe_flow:{generated}:sub/probe_retry")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Many concurrent requests.

#[node]
async fn maybe_fail(n: u32) -> Result<u32, NodeError> {
    // Yield so that requests interleave.
    tokio::task::yield_now().await;
    if n % 7 == 0 {
        Err(NodeError::new(format!("{n} is a multiple of 7")))
    } else {
        Ok(n)
    }
}

workflow! {
    Sevens = plus10 -> [maybe_fail, plus10 as more] => digits2;
}

/// How many requests the concurrency cases run at once.
const MANY: u32 = 100;

/// Runs `count` requests at once, each from its own task, and checks every result.
async fn run_many<F, Fut>(count: u32, request: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = (u32, Result<String, Error>)> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        tasks.spawn(request(i));
    }
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.unwrap();
        assert_eq!(result.unwrap(), format!("(r{i}>b|r{i}>c)"), "request {i}");
        done += 1;
    }
    assert_eq!(done, count);
}

conformance! {
    run_ahead;
    fn many_concurrent_requests_all_complete_correctly(engine) {
        run_many(MANY, |i| {
            let engine = engine.clone();
            async move { (i, engine.run::<JoinBc>(format!("r{i}")).await) }
        })
        .await;
        run_many(MANY, |i| {
            let engine = engine.clone();
            async move {
                let output = engine.run::<ChainBranch>(format!("r{i}")).await;
                // `(r>bc|r>d)`: rewrite to the shape `run_many` checks.
                (i, output.map(|s| s.replace(">bc", ">b").replace(">d)", ">c)")))
            }
        })
        .await;
    }

    fn concurrent_requests_fail_independently(engine) {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..MANY {
            let engine = engine.clone();
            tasks.spawn(async move { (i, engine.run::<Sevens>(i).await) });
        }
        let mut done = 0;
        while let Some(joined) = tasks.join_next().await {
            let (i, result) = joined.unwrap();
            let n = i + 10;
            if n % 7 == 0 {
                let (vertex, attempts, failure) = failed(result);
                assert_eq!(vertex, "maybe_fail");
                assert_eq!(attempts, 1);
                assert_eq!(failure, Failure::Error(format!("{n} is a multiple of 7")));
            } else {
                assert_eq!(result.unwrap(), n * 10 + n + 10, "request {i}");
            }
            done += 1;
        }
        assert_eq!(done, MANY);
    }
}

conformance! {
    run_ahead;
    /// A request id names one submission: submitted again, it starts nothing, and the engine
    /// tells a retry (the same input) from another submission under the id (another input),
    /// which the HTTP service answers with `409 idempotency_conflict`.
    fn a_resubmitted_id_tells_a_retry_from_another_input(engine) {
        use goflow::__private::{Data as _, Submitted};
        let id = RequestId::generate();
        let input = "same".to_owned();
        assert!(engine.submit_as::<JoinBc>(id.clone(), &input).await.unwrap());
        assert!(!engine.submit_as::<JoinBc>(id.clone(), &input).await.unwrap());
        let encoded = |text: &str| text.to_owned().encode_with(engine.codec()).unwrap();
        assert_eq!(
            engine.submit_encoded(JoinBc::NAME, &id, encoded("same")).await.unwrap(),
            Submitted::Existed { same_input: true }
        );
        assert_eq!(
            engine.submit_encoded(JoinBc::NAME, &id, encoded("other")).await.unwrap(),
            Submitted::Existed { same_input: false }
        );
        // Whatever was asked since, the request is the first submission's, run once.
        match engine.wait::<JoinBc>(&id, PATIENCE).await.unwrap() {
            goflow::request::RequestOutcome::Completed(output) => assert_eq!(output, "(same>b|same>c)"),
            other => panic!("{other:?}"),
        }
        let fresh = RequestId::generate();
        assert_eq!(
            engine.submit_encoded(JoinBc::NAME, &fresh, encoded("new")).await.unwrap(),
            Submitted::Created
        );
    }
}
