//! Behaviour of the embedded engine, through the public API only: scheduling (fan-out, fan-in,
//! sub-workflows), failures (errors, retries, timeouts, panics, cancellation), the `Context`
//! a node sees, codecs, and many concurrent requests.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use goflow::prelude::*;
use goflow::{Embedded, Error, Failure, RequestId};
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

/// Counts its drops.
struct CountOnDrop(&'static AtomicU32);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
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

/// Destructures an `Error::Failed`, panicking with the error otherwise.
fn failed<T: std::fmt::Debug>(result: Result<T, Error>) -> (String, u32, Failure) {
    match result {
        Err(Error::Failed {
            vertex,
            attempts,
            failure,
            ..
        }) => (vertex, attempts, failure),
        other => panic!("expected Error::Failed, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes: fan-out, fan-in order, chains in groups, braced bodies, aliases, sub-workflows.

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

#[tokio::test]
async fn fan_in_passes_outputs_in_the_declared_order() {
    assert_eq!(JoinBc::run_local("x".into()).await.unwrap(), "(x>b|x>c)");
    assert_eq!(JoinCb::run_local("x".into()).await.unwrap(), "(x>c|x>b)");
}

#[tokio::test]
async fn three_way_join_keeps_the_order() {
    assert_eq!(Join3::run_local("x".into()).await.unwrap(), "(x>b|x>c|x>d)");
    assert_eq!(
        Join3Reversed::run_local("x".into()).await.unwrap(),
        "(x>d|x>c|x>b)"
    );
}

#[tokio::test]
async fn join_of_a_chain_branch_takes_the_chain_output() {
    assert_eq!(
        ChainBranch::run_local("x".into()).await.unwrap(),
        "(x>bc|x>d)"
    );
    assert_eq!(
        ChainBranchLast::run_local("x".into()).await.unwrap(),
        "(x>d|x>bc)"
    );
}

#[tokio::test]
async fn braced_body_declares_a_diamond() {
    assert_eq!(Braced::run_local("x".into()).await.unwrap(), "(x>b|x>c)");
    assert_eq!(
        BracedSwapped::run_local("x".into()).await.unwrap(),
        "(x>c|x>b)"
    );
    assert_eq!(
        BracedSplit::run_local("x".into()).await.unwrap(),
        "(x>b|x>c)d"
    );
}

#[tokio::test]
async fn aliases_are_separate_vertices_running_the_same_node() {
    // ((1 + 1) * 2 + 1) * 2
    assert_eq!(Arith::run_local(1).await.unwrap(), 10);
    assert_eq!(Arith::run_local(3).await.unwrap(), 18);
    assert_eq!(Arith::run_local(-1).await.unwrap(), 2);
}

#[tokio::test]
async fn a_join_node_as_entry_takes_the_tuple_input() {
    assert_eq!(
        EntryJoin::run_local(("p".into(), "q".into()))
            .await
            .unwrap(),
        "(p|q)d"
    );
    assert_eq!(
        JoinIntoSub::run_local("x".into()).await.unwrap(),
        "(x>b|x>c)d"
    );
}

#[tokio::test]
async fn sub_workflows_are_inlined_and_may_repeat() {
    assert_eq!(
        TwoSubs::run_local("x".into()).await.unwrap(),
        "((x>>b|x>>c)|(x>>c|x>>b))"
    );
    assert_eq!(Wrapper::run_local("x".into()).await.unwrap(), "(x>b|x>c)");
    assert_eq!(SubFirst::run_local("x".into()).await.unwrap(), "(x>b|x>c)d");
    assert_eq!(SubLast::run_local("x".into()).await.unwrap(), "(x>>c|x>>b)");

    let engine = Embedded::new();
    let plan = engine.plan::<TwoSubs>();
    let paths: Vec<&str> = plan.vertices().iter().map(|v| &**v.path()).collect();
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
    // The plan is built once per engine and workflow.
    assert!(Arc::ptr_eq(&plan, &engine.plan::<TwoSubs>()));
}

// ---------------------------------------------------------------------------------------------
// Parallelism: branches that can only finish together.

static PAIR_BARRIER: LazyLock<Barrier> = LazyLock::new(|| Barrier::new(2));
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
async fn pair_left(n: u32) -> Result<u32, NodeError> {
    meet(&PAIR_BARRIER).await?;
    Ok(n + 1)
}

#[node]
async fn pair_right(n: u32) -> Result<u32, NodeError> {
    meet(&PAIR_BARRIER).await?;
    Ok(n + 2)
}

#[node]
async fn digits2(x: u32, y: u32) -> u32 {
    x * 10 + y
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
    Parallel = plus10 -> [pair_left, pair_right] => digits2;
    /// One branch is a chain: its last vertex meets the other branches.
    Parallel3 = plus10 -> [trio_a, plus10 as ten -> trio_b, trio_c] => digits3;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_branches_run_in_parallel() {
    // Each branch waits for the other at a barrier of 2: run one after the other, the first
    // would time out.
    assert_eq!(Parallel::run_local(0).await.unwrap(), 10 * 11 + 12);
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

static PERMANENT_CALLS: AtomicU32 = AtomicU32::new(0);

#[node(retries = 3, backoff = "1ms")]
async fn fails_permanently(s: String) -> Result<String, NodeError> {
    PERMANENT_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(NodeError::permanent(format!("{s} is invalid")))
}

workflow! {
    NodeErrorFlow = start -> fails_node_error -> b;
    IoErrorFlow = start -> fails_io;
    IoAliasFlow = start -> fails_io_alias;
    PermanentFlow = start -> fails_permanently;
}

#[tokio::test]
async fn a_node_error_fails_the_request_with_its_message() {
    let error = NodeErrorFlow::run_local("x".into()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "workflow `node_error_flow` failed at vertex `fails_node_error` after 1 attempt(s): cannot handle x>"
    );
    assert_eq!(
        error.failure(),
        Some(&Failure::Error("cannot handle x>".into()))
    );
    match error {
        Error::Failed {
            flow,
            vertex,
            attempts,
            failure,
        } => {
            assert_eq!(flow, "node_error_flow");
            assert_eq!(vertex, "fails_node_error");
            assert_eq!(attempts, 1);
            assert_eq!(failure, Failure::Error("cannot handle x>".into()));
        }
        other => panic!("expected Error::Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn an_io_error_fails_the_request_with_its_message() {
    let (vertex, attempts, failure) = failed(IoErrorFlow::run_local("x".into()).await);
    assert_eq!(vertex, "fails_io");
    assert_eq!(attempts, 1);
    assert_eq!(failure, Failure::Error("disk full while writing x>".into()));

    let (vertex, _, failure) = failed(IoAliasFlow::run_local("y".into()).await);
    assert_eq!(vertex, "fails_io_alias");
    assert_eq!(failure, Failure::Error("no file y>".into()));
}

#[tokio::test]
async fn a_permanent_error_is_not_retried() {
    let (vertex, attempts, failure) = failed(PermanentFlow::run_local("x".into()).await);
    assert_eq!(vertex, "fails_permanently");
    assert_eq!(attempts, 1);
    assert_eq!(failure, Failure::Permanent("x> is invalid".into()));
    assert!(!failure.is_retryable());
    assert_eq!(PERMANENT_CALLS.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// Retries.

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[node(retries = 2, backoff = "1ms")]
async fn flaky(ctx: Context, n: u32) -> Result<u32, NodeError> {
    FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    if ctx.attempt() < 3 {
        return Err(NodeError::new(format!("attempt {} failed", ctx.attempt())));
    }
    // The output records which attempt produced it.
    Ok(n * 10 + ctx.attempt())
}

static HOPELESS_CALLS: AtomicU32 = AtomicU32::new(0);

#[node(retries = 2, backoff = "1ms")]
async fn hopeless(n: u32, ctx: Context) -> Result<u32, NodeError> {
    HOPELESS_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(NodeError::new(format!(
        "attempt {} of {n} failed",
        ctx.attempt()
    )))
}

workflow! {
    FlakyFlow = plus10 -> flaky;
    HopelessFlow = plus10 -> hopeless -> plus10 as after;
}

#[tokio::test]
async fn a_node_that_fails_twice_succeeds_on_its_third_attempt() {
    assert_eq!(FlakyFlow::run_local(1).await.unwrap(), 113);
    assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_node_that_always_fails_uses_all_its_attempts() {
    let (vertex, attempts, failure) = failed(HopelessFlow::run_local(1).await);
    assert_eq!(vertex, "hopeless");
    assert_eq!(attempts, 3);
    // The failure is the last attempt's.
    assert_eq!(failure, Failure::Error("attempt 3 of 11 failed".into()));
    assert_eq!(HOPELESS_CALLS.load(Ordering::SeqCst), 3);
}

// ---------------------------------------------------------------------------------------------
// Timeouts.

static SLEEPY_DROPPED: AtomicBool = AtomicBool::new(false);
static SLEEPY_WOKE: AtomicBool = AtomicBool::new(false);

#[node(timeout = "50ms")]
async fn sleepy(n: u32) -> u32 {
    let _guard = SetOnDrop(&SLEEPY_DROPPED);
    tokio::time::sleep(Duration::from_secs(10)).await;
    SLEEPY_WOKE.store(true, Ordering::SeqCst);
    n
}

static DOZY_STARTS: AtomicU32 = AtomicU32::new(0);
static DOZY_DROPS: AtomicU32 = AtomicU32::new(0);

#[node(timeout = "20ms", retries = 1, backoff = "1ms")]
async fn dozy(n: u32) -> u32 {
    DOZY_STARTS.fetch_add(1, Ordering::SeqCst);
    let _guard = CountOnDrop(&DOZY_DROPS);
    tokio::time::sleep(Duration::from_secs(10)).await;
    n
}

workflow! {
    SleepyFlow = plus10 -> sleepy;
    DozyFlow = plus10 -> dozy;
}

#[tokio::test]
async fn a_node_past_its_timeout_fails_and_its_future_is_dropped() {
    let (vertex, attempts, failure) = failed(SleepyFlow::run_local(1).await);
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
    assert!(SLEEPY_DROPPED.load(Ordering::SeqCst));
    assert!(!SLEEPY_WOKE.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_timed_out_attempt_is_retried() {
    let (vertex, attempts, failure) = failed(DozyFlow::run_local(1).await);
    assert_eq!(vertex, "dozy");
    assert_eq!(attempts, 2);
    assert_eq!(failure, Failure::Timeout(Duration::from_millis(20)));
    assert_eq!(DOZY_STARTS.load(Ordering::SeqCst), 2);
    assert_eq!(DOZY_DROPS.load(Ordering::SeqCst), 2);
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

static PANICS_ONCE_CALLS: AtomicU32 = AtomicU32::new(0);

#[node(retries = 1, backoff = "1ms")]
async fn panics_once(ctx: Context, n: u32) -> u32 {
    PANICS_ONCE_CALLS.fetch_add(1, Ordering::SeqCst);
    if ctx.attempt() == 1 {
        panic!("first attempt panics");
    }
    n + 100
}

static PANICS_ALWAYS_CALLS: AtomicU32 = AtomicU32::new(0);

#[node(retries = 1, backoff = "1ms")]
async fn panics_always(ctx: Context, n: u32) -> u32 {
    PANICS_ALWAYS_CALLS.fetch_add(1, Ordering::SeqCst);
    panic!("attempt {} of {n} panics", ctx.attempt());
}

workflow! {
    PanicFormatted = plus10 -> panics_formatted;
    PanicLiteral = plus10 -> panics_literal;
    PanicNumber = plus10 -> panics_with_a_number;
    PanicOnce = plus10 -> panics_once;
    PanicAlways = plus10 -> panics_always;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_node_fails_the_request_and_the_process_lives_on() {
    let (vertex, attempts, failure) = failed(PanicFormatted::run_local(1).await);
    assert_eq!(vertex, "panics_formatted");
    assert_eq!(attempts, 1);
    assert_eq!(failure, Failure::Panic("node exploded on 11".into()));

    let (_, _, failure) = failed(PanicLiteral::run_local(1).await);
    assert_eq!(failure, Failure::Panic("static boom".into()));

    let (_, _, failure) = failed(PanicNumber::run_local(1).await);
    assert_eq!(failure, Failure::Panic("a non-string panic payload".into()));

    // The runtime and the process are fine: the same workflows run again.
    assert_eq!(JoinBc::run_local("x".into()).await.unwrap(), "(x>b|x>c)");
    assert!(PanicFormatted::run_local(2).await.is_err());
}

#[tokio::test]
async fn a_panicking_node_is_retried() {
    assert_eq!(PanicOnce::run_local(1).await.unwrap(), 111);
    assert_eq!(PANICS_ONCE_CALLS.load(Ordering::SeqCst), 2);

    let (vertex, attempts, failure) = failed(PanicAlways::run_local(1).await);
    assert_eq!(vertex, "panics_always");
    assert_eq!(attempts, 2);
    assert_eq!(failure, Failure::Panic("attempt 2 of 11 panics".into()));
    assert_eq!(PANICS_ALWAYS_CALLS.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------------------------
// Cancellation of siblings when a branch fails.

static LONG_STARTED: LazyLock<Notify> = LazyLock::new(Notify::new);
static LONG_GONE: AtomicBool = AtomicBool::new(false);
static LONG_FINISHED: AtomicBool = AtomicBool::new(false);
static AFTER_FAILURE_RAN: AtomicBool = AtomicBool::new(false);

#[node]
async fn long_branch(ctx: Context, n: u32) -> u32 {
    // Set when the future returns (after seeing the cancellation) or is dropped (aborted).
    let _guard = SetOnDrop(&LONG_GONE);
    LONG_STARTED.notify_one();
    tokio::select! {
        () = ctx.cancelled() => n,
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            LONG_FINISHED.store(true, Ordering::SeqCst);
            n
        }
    }
}

#[node]
async fn fails_once_sibling_runs(n: u32) -> Result<u32, NodeError> {
    // Fail only once the long sibling is running, so there is something to cancel.
    tokio::time::timeout(PATIENCE, LONG_STARTED.notified())
        .await
        .map_err(|_| NodeError::permanent("the long branch never started"))?;
    Err(NodeError::permanent(format!("branch failed on {n}")))
}

#[node]
async fn never_joined(x: u32, y: u32) -> u32 {
    AFTER_FAILURE_RAN.store(true, Ordering::SeqCst);
    x + y
}

workflow! {
    CancelSibling = plus10 -> [long_branch, fails_once_sibling_runs] => never_joined;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_branch_cancels_its_running_sibling() {
    let (vertex, attempts, failure) = failed(CancelSibling::run_local(1).await);
    assert_eq!(vertex, "fails_once_sibling_runs");
    assert_eq!(attempts, 1);
    assert_eq!(failure, Failure::Permanent("branch failed on 11".into()));
    assert!(
        eventually(&LONG_GONE).await,
        "the long sibling was neither cancelled nor dropped"
    );
    assert!(!LONG_FINISHED.load(Ordering::SeqCst));
    assert!(!AFTER_FAILURE_RAN.load(Ordering::SeqCst));
}

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
// The context a node sees.

/// What a node saw of its context. `pub`, like every type a node takes or returns: `#[node]`
/// generates a `pub` type whose `Node` impl names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    flow: String,
    request_id: String,
    vertex: String,
    attempt: u32,
    key: String,
    cancelled: bool,
}

impl Seen {
    fn of(ctx: &Context) -> Self {
        Self {
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
async fn probe_first(ctx: Context, _n: u32) -> Vec<Seen> {
    vec![Seen::of(&ctx)]
}

/// What the failed attempts of `probe_retry` saw (each records its request id).
static FAILED_PROBES: LazyLock<Mutex<Vec<Seen>>> = LazyLock::new(Mutex::default);

#[node(retries = 1, backoff = "1ms")]
async fn probe_retry(mut seen: Vec<Seen>, ctx: Context) -> Result<Vec<Seen>, NodeError> {
    if ctx.attempt() == 1 {
        FAILED_PROBES.lock().unwrap().push(Seen::of(&ctx));
        return Err(NodeError::new("first attempt fails"));
    }
    seen.push(Seen::of(&ctx));
    Ok(seen)
}

workflow! {
    ProbeInner = probe_retry;
    ProbeFlow = probe_first -> ProbeInner as sub;
}

#[tokio::test]
async fn context_reports_request_vertex_attempt_and_idempotency_key() {
    let engine = Embedded::new();
    let id = RequestId::parse("req-1").unwrap();
    let seen = engine.run_as::<ProbeFlow>(id, 7).await.unwrap();
    let expected_first = Seen {
        flow: "probe_flow".into(),
        request_id: "req-1".into(),
        vertex: "probe_first".into(),
        attempt: 1,
        key: "probe_flow:req-1:probe_first".into(),
        cancelled: false,
    };
    let expected_retry = Seen {
        flow: "probe_flow".into(),
        request_id: "req-1".into(),
        vertex: "sub/probe_retry".into(),
        attempt: 2,
        key: "probe_flow:req-1:sub/probe_retry".into(),
        cancelled: false,
    };
    assert_eq!(seen, vec![expected_first, expected_retry.clone()]);

    // The failed first attempt saw the same context but for the attempt number: the
    // idempotency key is stable across retries.
    let failed_attempts: Vec<Seen> = FAILED_PROBES
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.request_id == "req-1")
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
    let seen = engine.run::<ProbeFlow>(7).await.unwrap();
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

// ---------------------------------------------------------------------------------------------
// Sub-workflow vertex paths in failures.

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

#[tokio::test]
async fn a_failure_inside_a_sub_workflow_names_the_vertex_path() {
    let error = OuterAliased::run_local("x".into()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "workflow `outer_aliased` failed at vertex `sub/inner_fail` after 1 attempt(s): inner failure on x>b"
    );
    let (vertex, _, failure) = failed(OuterNested::run_local("x".into()).await);
    assert_eq!(vertex, "mid/deep/inner_fail");
    assert_eq!(failure, Failure::Error("inner failure on x>cb".into()));

    // Without an alias the path segment is the vertex name as written in the DSL: the
    // workflow's type name, not its snake_case `NAME`.
    let (vertex, _, _) = failed(OuterPlain::run_local("x".into()).await);
    assert_eq!(vertex, "Inner/inner_fail");
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
    let json = Embedded::with_codec(goflow::Json);
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
        Embedded::new().run::<OrderFlow>(order).await.unwrap(),
        "3 lines, id 42"
    );
}

#[tokio::test]
async fn a_codec_failure_is_reported_and_not_retried() {
    // MessagePack carries the grid...
    assert_eq!(GridFlow::run_local(3).await.unwrap(), 3);
    // ...JSON cannot encode it: the vertex fails at once, although it allows retries.
    let json = Embedded::with_codec(goflow::Json);
    let (vertex, attempts, failure) = failed(json.run::<GridFlow>(3).await);
    assert_eq!(vertex, "make_grid");
    assert_eq!(attempts, 1);
    match failure {
        Failure::Codec(message) => assert!(message.contains("json encoding failed"), "{message}"),
        other => panic!("expected a codec failure, got {other:?}"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_all_complete_correctly() {
    let engine = Arc::new(Embedded::new());
    run_many(200, |i| {
        let engine = Arc::clone(&engine);
        async move { (i, engine.run::<JoinBc>(format!("r{i}")).await) }
    })
    .await;
    run_many(200, |i| async move {
        (
            i,
            ChainBranch::run_local(format!("r{i}")).await.map(|s| {
                // `(r>bc|r>d)`: rewrite to the shape `run_many` checks.
                s.replace(">bc", ">b").replace(">d)", ">c)")
            }),
        )
    })
    .await;
    let json = Arc::new(Embedded::with_codec(goflow::Json));
    run_many(200, |i| {
        let json = Arc::clone(&json);
        async move { (i, json.run::<JoinBc>(format!("r{i}")).await) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_fail_independently() {
    let engine = Arc::new(Embedded::new());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let engine = Arc::clone(&engine);
        tasks.spawn(async move { (i, engine.run::<Sevens>(i).await) });
    }
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
    }
}
