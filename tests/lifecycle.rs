//! The life of a request, on both engines (each case once, run on each by `conformance!`): the
//! control table from every status, parking and resuming, stops while running, paused and
//! retrying, retries exhausted, timeouts, the sweep that settles every vertex once a request
//! ends, how attempts are counted, idempotent submission, racing pauses, and finish hooks.
//! The rules are the lifecycle core's; these cases check that both engines apply them alike.
//!
//! Nodes record what they do keyed by request id, and wait at gates keyed by request id, so
//! cases and their two variants (which run in parallel in this process) never see each
//! other's.

mod support;

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use goflow::prelude::*;
use goflow::redis::RedisEngineBuilder;
use goflow::request::{
    Control, Failure, Finished, RequestOutcome, RequestState, RequestStatus, VertexStatus,
};
use goflow::{EmbeddedEngine, Engine, Error, RequestId};
use support::engines::{conformance, final_state, settled, until};

// ---------------------------------------------------------------------------------------------
// Runs, gates and cancellations, per request and node.

/// Which node started, for which request.
static RUNS: support::probe::Runs = support::probe::Runs::new();
static CLOSED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);
static CANCELLED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static FINISHED: Mutex<Vec<(String, RequestStatus)>> = Mutex::new(Vec::new());

fn record_run(ctx: &Context, node: &'static str) {
    RUNS.record(ctx, node);
}

fn runs(id: &RequestId, node: &str) -> usize {
    RUNS.count(id, node)
}

/// A request id whose `hold` waits at its gate until [`open`] (or its cancellation).
fn gated_id() -> RequestId {
    let id = RequestId::generate();
    CLOSED.lock().unwrap().insert(id.as_str().to_owned());
    id
}

fn open(id: &RequestId) {
    CLOSED.lock().unwrap().remove(id.as_str());
}

fn cancelled(id: &RequestId) -> bool {
    CANCELLED.lock().unwrap().iter().any(|r| r == id.as_str())
}

/// Every vertex of an ended request is settled: none is left pending, queued, parked,
/// retrying or running, on either engine.
fn assert_settled(state: &RequestState) {
    assert!(state.status.is_final(), "{state:?}");
    assert!(state.finished_at_ms.is_some(), "{state:?}");
    for vertex in &state.vertices {
        assert!(
            vertex.status.is_final(),
            "`{}` is {} in an ended request: {state:?}",
            vertex.vertex,
            vertex.status
        );
        assert!(vertex.finished_at_ms.is_some(), "{state:?}");
    }
}

fn vertex<'a>(state: &'a RequestState, name: &str) -> &'a goflow::request::VertexState {
    state
        .vertices
        .iter()
        .find(|v| v.vertex == name)
        .unwrap_or_else(|| panic!("no vertex `{name}` in {state:?}"))
}

/// The status a control that does not apply reports, panicking on anything else.
fn conflict(result: Result<RequestStatus, Error>, action: Control) -> RequestStatus {
    match result {
        Err(Error::Conflict {
            action: asked,
            status,
            ..
        }) => {
            assert_eq!(asked, action);
            status
        }
        other => panic!("expected a conflict to {action}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Workflows.

/// Records that its attempt ended before its gate opened: it saw its cancellation, or its
/// future was dropped (the engine cancels an attempt either way).
struct EndedEarly(Option<String>);

impl Drop for EndedEarly {
    fn drop(&mut self) {
        if let Some(id) = self.0.take() {
            CANCELLED.lock().unwrap().push(id);
        }
    }
}

/// Waits at its request's gate, giving up when its request is cancelled.
#[node]
async fn hold(ctx: Context, n: u32) -> Result<u32, NodeError> {
    record_run(&ctx, "hold");
    let mut early = EndedEarly(Some(ctx.request_id().as_str().to_owned()));
    let gate = async {
        while CLOSED.lock().unwrap().contains(ctx.request_id().as_str()) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::select! {
        () = gate => {
            early.0 = None;
            Ok(n * 2)
        }
        () = ctx.cancelled() => Err(NodeError::permanent("cancelled")),
    }
}

/// The notifications `release_me` waits for, by request.
static NOTIFIED: LazyLock<
    Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Notify>>>,
> = LazyLock::new(Mutex::default);

/// Waits until the test notifies it: it ends the moment it is released, to race with what
/// the test does next.
#[node]
async fn release_me(ctx: Context, n: u32) -> u32 {
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    NOTIFIED.lock().unwrap().insert(
        ctx.request_id().as_str().to_owned(),
        std::sync::Arc::clone(&notify),
    );
    notify.notified().await;
    n
}

#[node]
async fn after(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "after");
    n + 1
}

#[node(retries = 2, backoff = "1ms")]
async fn hopeless(ctx: Context, n: u32) -> Result<u32, NodeError> {
    record_run(&ctx, "hopeless");
    Err(NodeError::new(format!(
        "attempt {} of {n} failed",
        ctx.attempt()
    )))
}

/// Fails its first attempt, then waits seconds for its retry: long enough to be caught
/// `retrying`.
#[node(retries = 1, backoff = "3s")]
async fn slow_retry(ctx: Context, n: u32) -> Result<u32, NodeError> {
    record_run(&ctx, "slow_retry");
    if ctx.attempt() == 1 {
        return Err(NodeError::new("the first attempt fails"));
    }
    Ok(n)
}

#[node(timeout = "30ms", retries = 1, backoff = "1ms")]
async fn sleepy(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "sleepy");
    tokio::time::sleep(Duration::from_secs(30)).await;
    n
}

#[node]
async fn split(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "split");
    n
}

#[node]
async fn left(ctx: Context, n: u32) -> u64 {
    record_run(&ctx, "left");
    u64::from(n) * 10
}

#[node]
async fn right(ctx: Context, n: u32) -> u64 {
    record_run(&ctx, "right");
    u64::from(n) + 1
}

#[node]
async fn join(ctx: Context, a: u64, b: u64) -> u64 {
    record_run(&ctx, "join");
    a + b
}

#[node]
async fn tail(ctx: Context, n: u64) -> u64 {
    record_run(&ctx, "tail");
    n * 3
}

fn diamond(n: u32) -> u64 {
    (u64::from(n) * 10 + u64::from(n) + 1) * 3
}

workflow! {
    pub Gated = hold -> after;
    pub Released = release_me -> after;
    pub Hopeless = hopeless -> after;
    pub SlowRetry = slow_retry -> after;
    pub Sleepy = sleepy -> after;
    pub Diamond = split -> [left, right] => join -> tail;
}

fn register_all(builder: RedisEngineBuilder) -> RedisEngineBuilder {
    builder
        .register::<Gated>()
        .register::<Released>()
        .register::<Hopeless>()
        .register::<SlowRetry>()
        .register::<Sleepy>()
        .register::<Diamond>()
}

// ---------------------------------------------------------------------------------------------
// Pause, resume and stop from every status.

conformance! {
    run_ahead;
    /// The control table, from every status a request can be held in: running, paused,
    /// stopped, completed, failed; and a request that does not exist.
    fn the_control_table_from_every_status(engine) {
        let id = gated_id();
        assert!(engine.submit_as::<Gated>(id.clone(), &1).await.unwrap());
        let state = until::<Gated>(engine, &id, "hold runs", |s| vertex(s, "hold").status == VertexStatus::Running).await;
        assert_eq!(state.status, RequestStatus::Running);
        assert_eq!(conflict(engine.resume::<Gated>(&id).await, Control::Resume), RequestStatus::Running);
        assert_eq!(engine.pause::<Gated>(&id).await.unwrap(), RequestStatus::Paused);
        assert_eq!(conflict(engine.pause::<Gated>(&id).await, Control::Pause), RequestStatus::Paused);
        assert_eq!(engine.resume::<Gated>(&id).await.unwrap(), RequestStatus::Running);
        for action in Control::ALL.iter().filter(|a| a.is_retry()) {
            let result = engine.control(Gated::NAME, &id, *action).await;
            assert_eq!(conflict(result, *action), RequestStatus::Running);
        }
        assert_eq!(engine.stop::<Gated>(&id).await.unwrap(), RequestStatus::Stopped);
        for action in Control::ALL.iter().filter(|a| !a.is_retry()) {
            let result = engine.control(Gated::NAME, &id, *action).await;
            assert_eq!(conflict(result, *action), RequestStatus::Stopped);
        }

        let completed = engine.submit::<Gated>(&2).await.unwrap();
        final_state::<Gated>(engine, &completed).await;
        let failed = engine.submit::<Hopeless>(&3).await.unwrap();
        final_state::<Hopeless>(engine, &failed).await;
        for action in Control::ALL {
            let result = engine.control(Gated::NAME, &completed, *action).await;
            assert_eq!(conflict(result, *action), RequestStatus::Completed);
        }
        // Only a retry applies to a failed (or stopped) request: `tests/retry.rs`.
        for action in Control::ALL.iter().filter(|a| !a.is_retry()) {
            let result = engine.control(Hopeless::NAME, &failed, *action).await;
            assert_eq!(conflict(result, *action), RequestStatus::Failed);
        }

        let unknown = RequestId::generate();
        for action in Control::ALL {
            let result = engine.control(Gated::NAME, &unknown, *action).await;
            assert!(matches!(result, Err(Error::UnknownRequest { .. })), "{result:?}");
        }
        assert!(matches!(engine.status::<Gated>(&unknown).await, Err(Error::UnknownRequest { .. })));
        assert!(matches!(
            engine.wait::<Gated>(&unknown, Duration::from_millis(10)).await,
            Err(Error::UnknownRequest { .. })
        ));
        assert!(matches!(engine.stop::<Gated>(&unknown).await, Err(Error::UnknownRequest { .. })));
    }

    /// A request paused as soon as it is submitted (still queued, or with its first vertex
    /// already running) is paused: nothing new starts until it is resumed (on Redis, an entry
    /// no worker has read yet is taken back and parked), and then it completes, each vertex
    /// run once.
    fn a_request_paused_at_once_waits_and_then_completes(engine) {
        let id = gated_id();
        engine.submit_as::<Gated>(id.clone(), &4).await.unwrap();
        assert_eq!(engine.pause::<Gated>(&id).await.unwrap(), RequestStatus::Paused);
        open(&id);
        let state = until::<Gated>(engine, &id, "what is ready is parked", |s| {
            s.vertices.iter().any(|v| v.status == VertexStatus::Parked)
        })
        .await;
        assert_eq!(state.status, RequestStatus::Paused);
        assert_eq!(runs(&id, "after"), 0);
        match engine.wait::<Gated>(&id, Duration::from_millis(50)).await.unwrap() {
            RequestOutcome::Pending(RequestStatus::Paused) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(engine.resume::<Gated>(&id).await.unwrap(), RequestStatus::Running);
        let state = final_state::<Gated>(engine, &id).await;
        assert_eq!(state.status, RequestStatus::Completed);
        assert_settled(&state);
        assert_eq!((runs(&id, "hold"), runs(&id, "after")), (1, 1));
    }

    /// Paused while a vertex runs, that vertex finishes and what it makes ready is parked;
    /// resumed, the parked vertex runs once.
    fn pause_parks_what_becomes_ready_and_resume_runs_it_once(engine) {
        let id = gated_id();
        engine.submit_as::<Gated>(id.clone(), &4).await.unwrap();
        until::<Gated>(engine, &id, "hold runs", |s| vertex(s, "hold").status == VertexStatus::Running).await;
        assert_eq!(engine.pause::<Gated>(&id).await.unwrap(), RequestStatus::Paused);
        open(&id);
        let state = until::<Gated>(engine, &id, "after is parked", |s| vertex(s, "after").status == VertexStatus::Parked).await;
        assert_eq!(state.status, RequestStatus::Paused);
        assert_eq!(vertex(&state, "hold").status, VertexStatus::Done);
        assert_eq!(vertex(&state, "after").attempts, 0);
        assert_eq!(runs(&id, "after"), 0, "a parked vertex does not run");

        assert_eq!(engine.resume::<Gated>(&id).await.unwrap(), RequestStatus::Running);
        match engine.wait::<Gated>(&id, support::engines::REQUEST_PATIENCE).await.unwrap() {
            RequestOutcome::Completed(output) => assert_eq!(output, 9),
            other => panic!("{other:?}"),
        }
        let state = final_state::<Gated>(engine, &id).await;
        assert_settled(&state);
        for v in &state.vertices {
            assert_eq!((v.status, v.attempts), (VertexStatus::Done, 1), "{state:?}");
        }
        assert_eq!((runs(&id, "hold"), runs(&id, "after")), (1, 1));
    }

    /// Stopped while a vertex runs: the attempt is cancelled, the request ends at once, the
    /// running vertex is `cancelled` and the one after it, which never got its input,
    /// `skipped`; nothing runs after the stop.
    fn stop_cancels_the_running_vertex_and_skips_what_follows(engine) {
        let id = gated_id();
        engine.submit_as::<Gated>(id.clone(), &2).await.unwrap();
        until::<Gated>(engine, &id, "hold runs", |s| vertex(s, "hold").status == VertexStatus::Running).await;
        assert_eq!(engine.stop::<Gated>(&id).await.unwrap(), RequestStatus::Stopped);
        match engine.wait::<Gated>(&id, support::engines::REQUEST_PATIENCE).await.unwrap() {
            RequestOutcome::Stopped => {}
            other => panic!("{other:?}"),
        }
        let state = final_state::<Gated>(engine, &id).await;
        assert_settled(&state);
        assert_eq!(state.status, RequestStatus::Stopped);
        let hold = vertex(&state, "hold");
        assert_eq!((hold.status, hold.attempts), (VertexStatus::Cancelled, 1));
        assert_eq!(vertex(&state, "after").status, VertexStatus::Skipped);
        // The gate stays closed: `hold` ends only by being cancelled.
        support::wait_until("hold is cancelled", support::engines::REQUEST_PATIENCE, async || cancelled(&id)).await;
        settled::<Gated>(engine, &id).await;
        assert_eq!((runs(&id, "hold"), runs(&id, "after")), (1, 0));
        // The cancelled attempt reporting in later does not move its end past the request's.
        let later = engine.status::<Gated>(&id).await.unwrap();
        assert_eq!(later.finished_at_ms, state.finished_at_ms);
        for v in &later.vertices {
            assert_eq!(v.finished_at_ms, state.finished_at_ms, "{later:?}");
        }
        open(&id);
    }

    /// A stop that answers `stopped` while the vertex before it completes (released at the
    /// same moment) leaves nothing after it `done`: what the completion made ready is
    /// cancelled, and the request stays stopped and settled.
    fn a_stop_racing_a_completion_leaves_nothing_done_after_it(engine) {
        let mut ids = Vec::new();
        for n in 0..200 {
            let id = engine.submit::<Released>(&n).await.unwrap();
            until::<Released>(engine, &id, "release_me runs", |s| vertex(s, "release_me").status == VertexStatus::Running).await;
            support::wait_until("release_me waits", support::engines::REQUEST_PATIENCE, async || NOTIFIED.lock().unwrap().contains_key(id.as_str())).await;
            let notify = NOTIFIED.lock().unwrap()[id.as_str()].clone();
            notify.notify_one();
            match engine.stop::<Released>(&id).await {
                Ok(RequestStatus::Stopped) => ids.push(id),
                // The whole request completed first: nothing to check.
                Err(Error::Conflict { status: RequestStatus::Completed, .. }) => {}
                other => panic!("{other:?}"),
            }
        }
        for id in &ids {
            let state = final_state::<Released>(engine, id).await;
            assert_eq!(state.status, RequestStatus::Stopped, "{state:?}");
            assert_settled(&state);
            assert_ne!(vertex(&state, "after").status, VertexStatus::Done, "{state:?}");
            settled::<Released>(engine, id).await;
            let later = engine.status::<Released>(id).await.unwrap();
            assert_ne!(vertex(&later, "after").status, VertexStatus::Done, "{later:?}");
        }
    }

    /// Stopped while paused with a parked vertex: the parked vertex is dropped (`cancelled`)
    /// and never runs.
    fn stopping_a_paused_request_drops_its_parked_vertices(engine) {
        let id = gated_id();
        engine.submit_as::<Gated>(id.clone(), &3).await.unwrap();
        until::<Gated>(engine, &id, "hold runs", |s| vertex(s, "hold").status == VertexStatus::Running).await;
        engine.pause::<Gated>(&id).await.unwrap();
        open(&id);
        until::<Gated>(engine, &id, "after is parked", |s| vertex(s, "after").status == VertexStatus::Parked).await;
        assert_eq!(engine.stop::<Gated>(&id).await.unwrap(), RequestStatus::Stopped);
        assert_eq!(conflict(engine.resume::<Gated>(&id).await, Control::Resume), RequestStatus::Stopped);
        let state = final_state::<Gated>(engine, &id).await;
        assert_settled(&state);
        assert_eq!(vertex(&state, "hold").status, VertexStatus::Done);
        let parked = vertex(&state, "after");
        assert_eq!((parked.status, parked.attempts), (VertexStatus::Cancelled, 0));
        settled::<Gated>(engine, &id).await;
        assert_eq!(runs(&id, "after"), 0);
    }

    /// Stopped while a vertex waits for its retry: the retry never runs, and the vertex is
    /// `cancelled` with the one attempt it made (not left `retrying`).
    fn stop_while_retrying_cancels_the_retry(engine) {
        let id = engine.submit::<SlowRetry>(&5).await.unwrap();
        let state = until::<SlowRetry>(engine, &id, "slow_retry waits for its retry", |s| {
            vertex(s, "slow_retry").status == VertexStatus::Retrying
        })
        .await;
        let retrying = vertex(&state, "slow_retry");
        assert_eq!(retrying.attempts, 1);
        assert_eq!(retrying.last_failure, Some(Failure::Error("the first attempt fails".into())));
        assert_eq!(engine.stop::<SlowRetry>(&id).await.unwrap(), RequestStatus::Stopped);
        let state = final_state::<SlowRetry>(engine, &id).await;
        assert_settled(&state);
        let stopped = vertex(&state, "slow_retry");
        assert_eq!((stopped.status, stopped.attempts), (VertexStatus::Cancelled, 1));
        assert_eq!(vertex(&state, "after").status, VertexStatus::Skipped);
        // On Redis the retry waits in the delayed set until due, and is dropped when it is
        // delivered: settled once it has been.
        settled::<SlowRetry>(engine, &id).await;
        assert_eq!(runs(&id, "slow_retry"), 1, "the retry ran after the stop");
    }
}

// ---------------------------------------------------------------------------------------------
// Failures: retries exhausted, timeouts; the sweep and the attempt counts.

conformance! {
    run_ahead;
    /// A vertex that fails every attempt fails the request after its retries, with every
    /// attempt counted; what follows it is `skipped`.
    fn retries_exhausted_fail_the_request_and_skip_what_follows(engine) {
        let id = engine.submit::<Hopeless>(&7).await.unwrap();
        match engine.wait::<Hopeless>(&id, support::engines::REQUEST_PATIENCE).await.unwrap() {
            RequestOutcome::Failed(failure) => {
                assert_eq!(failure.vertex, "hopeless");
                assert_eq!(failure.attempts, 3);
                assert_eq!(failure.failure, Failure::Error("attempt 3 of 7 failed".into()));
            }
            other => panic!("{other:?}"),
        }
        let state = final_state::<Hopeless>(engine, &id).await;
        assert_settled(&state);
        assert_eq!(state.status, RequestStatus::Failed);
        let failed = vertex(&state, "hopeless");
        assert_eq!((failed.status, failed.attempts), (VertexStatus::Failed, 3));
        assert_eq!(failed.last_failure, Some(Failure::Error("attempt 3 of 7 failed".into())));
        assert_eq!(vertex(&state, "after").status, VertexStatus::Skipped);
        assert_eq!(state.failure.as_ref().map(|f| f.attempts), Some(3));
        assert_eq!(runs(&id, "hopeless"), 3);
        assert_eq!(runs(&id, "after"), 0);
    }

    /// An attempt past its timeout is cancelled and counts as a failed attempt; retried once,
    /// the vertex fails with the timeout after two attempts.
    fn timeouts_count_as_failed_attempts(engine) {
        let id = engine.submit::<Sleepy>(&1).await.unwrap();
        let state = final_state::<Sleepy>(engine, &id).await;
        assert_settled(&state);
        let failure = state.failure.clone().expect("a failure");
        assert_eq!(failure.failure, Failure::Timeout(Duration::from_millis(30)));
        assert_eq!(failure.attempts, 2);
        let sleepy = vertex(&state, "sleepy");
        assert_eq!((sleepy.status, sleepy.attempts), (VertexStatus::Failed, 2));
        assert_eq!(vertex(&state, "after").status, VertexStatus::Skipped);
        assert_eq!(runs(&id, "sleepy"), 2);
    }

    /// A running attempt counts: while `hold` runs its state shows attempt 1, started, on a
    /// worker, and the request running.
    fn a_running_attempt_counts(engine) {
        let id = gated_id();
        engine.submit_as::<Gated>(id.clone(), &1).await.unwrap();
        let state = until::<Gated>(engine, &id, "hold runs", |s| vertex(s, "hold").status == VertexStatus::Running).await;
        let hold = vertex(&state, "hold");
        assert_eq!(hold.attempts, 1);
        assert!(hold.started_at_ms.is_some() && hold.worker.is_some(), "{state:?}");
        assert_eq!(state.status, RequestStatus::Running);
        assert_eq!(vertex(&state, "after").status, VertexStatus::Pending);
        open(&id);
        let state = final_state::<Gated>(engine, &id).await;
        assert_settled(&state);
        assert!(state.vertices.iter().all(|v| v.attempts == 1), "{state:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Submitting, racing pauses, finish hooks.

conformance! {
    run_ahead;
    /// Submitting twice under one id creates one request, running and after it has ended.
    fn submitting_an_id_twice_runs_the_flow_once(engine) {
        let id = RequestId::generate();
        assert!(engine.submit_as::<Diamond>(id.clone(), &10).await.unwrap());
        assert!(!engine.submit_as::<Diamond>(id.clone(), &20).await.unwrap());
        let state = final_state::<Diamond>(engine, &id).await;
        assert_eq!(state.status, RequestStatus::Completed);
        assert!(!engine.submit_as::<Diamond>(id.clone(), &30).await.unwrap());
        settled::<Diamond>(engine, &id).await;
        for node in ["split", "left", "right", "join", "tail"] {
            assert_eq!(runs(&id, node), 1, "{node}");
        }
        match engine.wait::<Diamond>(&id, support::engines::REQUEST_PATIENCE).await.unwrap() {
            RequestOutcome::Completed(output) => assert_eq!(output, diamond(10)),
            other => panic!("{other:?}"),
        }
    }

    /// Each request is paused and resumed over and over while its vertices run, so pauses land
    /// before, during and after every vertex: every request completes, and every vertex runs
    /// exactly once.
    fn pauses_and_resumes_racing_with_running_vertices_lose_and_repeat_nothing(engine) {
        const REQUESTS: u32 = 100;
        let mut controllers = tokio::task::JoinSet::new();
        for n in 0..REQUESTS {
            let engine = engine.clone();
            controllers.spawn(async move {
                let id = engine.submit::<Diamond>(&n).await.unwrap();
                let mut pauses = 0u32;
                for _ in 0..2000 {
                    match engine.pause::<Diamond>(&id).await {
                        Ok(RequestStatus::Paused) => pauses += 1,
                        Err(Error::Conflict { status: RequestStatus::Completed, .. }) => return (n, id, pauses),
                        other => panic!("pausing {id}: {other:?}"),
                    }
                    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..3000))).await;
                    match engine.resume::<Diamond>(&id).await {
                        Ok(RequestStatus::Running) => {}
                        // The exit vertex was running when the request was paused.
                        Err(Error::Conflict { status: RequestStatus::Completed, .. }) => return (n, id, pauses),
                        other => panic!("resuming {id}: {other:?}"),
                    }
                    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..3000))).await;
                }
                (n, id, pauses)
            });
        }
        let mut ids = Vec::new();
        let mut paused = 0;
        while let Some(done) = controllers.join_next().await {
            let (n, id, pauses) = done.expect("a controller panicked");
            paused += usize::from(pauses > 0);
            ids.push((n, id));
        }
        assert!(paused >= ids.len() / 2, "only {paused} requests were paused");
        for (n, id) in &ids {
            let state = final_state::<Diamond>(engine, id).await;
            assert_eq!(state.status, RequestStatus::Completed, "{state:?}");
            match engine.wait::<Diamond>(id, support::engines::REQUEST_PATIENCE).await.unwrap() {
                RequestOutcome::Completed(output) => assert_eq!(output, diamond(*n)),
                other => panic!("{other:?}"),
            }
            for v in &state.vertices {
                assert_eq!((v.status, v.attempts), (VertexStatus::Done, 1), "{state:?}");
            }
            for node in ["split", "left", "right", "join", "tail"] {
                assert_eq!(runs(id, node), 1, "{id}: {node}");
            }
        }
    }
}

fn hooked_embedded() -> EmbeddedEngine {
    EmbeddedEngine::builder()
        .on_finish::<Diamond, _, _>(record_finish)
        .on_finish::<Hopeless, _, _>(record_finish)
        .build()
}

fn hooked_redis(builder: RedisEngineBuilder) -> RedisEngineBuilder {
    register_all(builder)
        .on_finish::<Diamond, _, _>(record_finish)
        .on_finish::<Hopeless, _, _>(record_finish)
}

async fn record_finish(finished: Finished) {
    FINISHED
        .lock()
        .unwrap()
        .push((finished.request_id.as_str().to_owned(), finished.status));
}

fn finishes(id: &RequestId) -> Vec<RequestStatus> {
    FINISHED
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| r == id.as_str())
        .map(|(_, s)| *s)
        .collect()
}

conformance! {
    run_ahead;
    engines(embedded = hooked_embedded, redis = hooked_redis);

    /// A finish hook runs once per request that ends, run or submitted, completed or failed.
    fn finish_hooks_run_once_per_request(engine) {
        let submitted = engine.submit::<Diamond>(&1).await.unwrap();
        let failed = engine.submit::<Hopeless>(&2).await.unwrap();
        let ran = RequestId::generate();
        assert_eq!(engine.run_as::<Diamond>(ran.clone(), 3).await.unwrap(), diamond(3));
        final_state::<Diamond>(engine, &submitted).await;
        final_state::<Hopeless>(engine, &failed).await;
        for (id, status) in [
            (&submitted, RequestStatus::Completed),
            (&failed, RequestStatus::Failed),
            (&ran, RequestStatus::Completed),
        ] {
            support::wait_until("the hook runs", support::engines::REQUEST_PATIENCE, async || {
                !finishes(id).is_empty()
            })
            .await;
            // Give a second call of the hook the time a first one took.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(finishes(id), [status], "{id}");
        }
    }
}

/// Calls `Engine` through a generic function, as a user's code written once for both engines
/// would: the same signatures on both (a compile-time check as much as a run-time one).
async fn submit_then_wait<E: Engine>(engine: &E) -> Result<RequestOutcome<u64>, Error> {
    let id = engine.submit::<Diamond>(&2).await?;
    engine
        .wait::<Diamond>(&id, support::engines::REQUEST_PATIENCE)
        .await
}

conformance! {
    run_ahead;
    fn code_generic_over_the_engine_runs_on_both(engine) {
        match submit_then_wait(engine).await.unwrap() {
            RequestOutcome::Completed(output) => assert_eq!(output, diamond(2)),
            other => panic!("{other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Limits.

/// `n` items, for a for-each.
#[node]
async fn make_items(n: u32) -> Vec<u32> {
    (0..n).collect()
}

#[node]
async fn item(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "item");
    n
}

#[node]
async fn total(items: Vec<u32>) -> u32 {
    items.into_iter().sum()
}

/// An output of `n` bytes (as a string), retried if it fails: a limit is not retried.
#[node(retries = 3, backoff = "1ms")]
async fn blob(ctx: Context, n: u32) -> String {
    record_run(&ctx, "blob");
    "x".repeat(n as usize)
}

workflow! {
    pub Items = make_items -> each { item } => total;
    pub Blob = blob;
}

/// The limits the `limits` cases run under: small, so that a test can cross them.
const SMALL: goflow::request::Limits = goflow::request::Limits::DEFAULT
    .with_max_items(50)
    .with_max_output_bytes(1_000);

fn limited_embedded() -> EmbeddedEngine {
    EmbeddedEngine::builder().limits(SMALL).build()
}

fn limited_redis(builder: RedisEngineBuilder) -> RedisEngineBuilder {
    builder.limits(SMALL).register::<Items>().register::<Blob>()
}

conformance! {
    run_ahead;
    engines(embedded = limited_embedded, redis = limited_redis);

    /// A for-each over more items than the limit fails its source vertex (no item starts),
    /// and one within it runs; the failure is not retried.
    fn a_for_each_over_the_item_limit_fails_its_source(engine) {
        assert_eq!(engine.run::<Items>(50).await.unwrap(), (0..50).sum::<u32>());
        let id = engine.submit::<Items>(&51).await.unwrap();
        let state = final_state::<Items>(engine, &id).await;
        assert_settled(&state);
        let failure = state.failure.clone().expect("a failure");
        assert_eq!(failure.vertex, "make_items");
        assert_eq!(
            failure.failure,
            Failure::Limit("a for-each over 51 items, more than the limit of 50 (Limits::max_items)".into())
        );
        assert_eq!(runs(&id, "item"), 0);
        assert_eq!(vertex(&state, "total").status, VertexStatus::Skipped);
    }

    /// An output larger than the limit fails its vertex at once, whatever its retries, and
    /// is not stored.
    fn an_output_over_the_byte_limit_fails_its_vertex(engine) {
        // A string of n bytes encodes in n + a few (MessagePack's header).
        assert_eq!(engine.run::<Blob>(900).await.unwrap().len(), 900);
        let id = engine.submit::<Blob>(&1_000).await.unwrap();
        let state = final_state::<Blob>(engine, &id).await;
        let failure = state.failure.clone().expect("a failure");
        assert_eq!(failure.attempts, 1);
        let Failure::Limit(detail) = &failure.failure else {
            panic!("{failure:?}");
        };
        assert!(detail.contains("more than the limit of 1000"), "{detail}");
        assert_eq!(runs(&id, "blob"), 1);
        assert!(state.output.is_none());
    }
}
