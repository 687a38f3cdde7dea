//! Retrying requests, every case on both engines (see `tests/support/engines.rs`): a retry runs
//! on from what failed or did not run, the outputs that completed kept (a completed branch, or
//! a for-each's completed items, never run again), the attempts of each vertex counting on and
//! the request's `retries` counting the retries; a retry from the start runs everything again;
//! a stopped request is retried too (its cancelled and parked vertices run); a bulk retry
//! retries what a selection picks; and a retry of a request that has not ended, or that
//! completed, is a conflict that says why.
//!
//! Nodes fail while their request is "broken" (a set of request ids the case controls) and are
//! held at a gate where a case needs the rest of the request to settle first, so that what ran
//! before the failure is known exactly.

mod support;

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use goflow::prelude::*;
use goflow::redis::RedisEngineBuilder;
use goflow::request::{
    Control, RequestOutcome, RequestQuery, RequestState, RequestStatus, Selection, VertexState,
    VertexStatus,
};
use goflow::{Engine, Error, RequestId};
use support::engines::{conformance, final_state, settled, until};

static RUNS: support::probe::Runs = support::probe::Runs::new();
/// Requests whose `flaky` and `picky` nodes fail, by id.
static BROKEN: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);
/// Requests whose gated nodes wait, by id.
static CLOSED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);
/// Which item each `picky` attempt ran for, by request id.
static ITEMS: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());

fn runs(id: &RequestId, node: &str) -> usize {
    RUNS.count(id, node)
}

fn is(set: &LazyLock<Mutex<HashSet<String>>>, ctx: &Context) -> bool {
    set.lock().unwrap().contains(ctx.request_id().as_str())
}

/// A new request id, broken and gated.
fn broken_id() -> RequestId {
    let id = RequestId::generate();
    BROKEN.lock().unwrap().insert(id.as_str().to_owned());
    CLOSED.lock().unwrap().insert(id.as_str().to_owned());
    id
}

fn mend(id: &RequestId) {
    BROKEN.lock().unwrap().remove(id.as_str());
}

fn open(id: &RequestId) {
    CLOSED.lock().unwrap().remove(id.as_str());
}

async fn gate(ctx: &Context) {
    while is(&CLOSED, ctx) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn vertex<'a>(state: &'a RequestState, name: &str) -> &'a VertexState {
    state
        .vertices
        .iter()
        .find(|v| v.vertex == name)
        .unwrap_or_else(|| panic!("no vertex `{name}` in {state:?}"))
}

#[node]
async fn split(ctx: Context, n: u32) -> u32 {
    RUNS.record(&ctx, "split");
    n
}

#[node]
async fn steady(ctx: Context, n: u32) -> u32 {
    RUNS.record(&ctx, "steady");
    n + 1
}

/// Fails for good while its request is broken, once its gate opens.
#[node]
async fn flaky(ctx: Context, n: u32) -> Result<u32, NodeError> {
    RUNS.record(&ctx, "flaky");
    gate(&ctx).await;
    if is(&BROKEN, &ctx) {
        return Err(NodeError::permanent("broken until mended"));
    }
    Ok(n * 10)
}

#[node]
async fn join(ctx: Context, a: u32, b: u32) -> u32 {
    RUNS.record(&ctx, "join");
    a + b
}

#[node]
async fn make_items(ctx: Context, n: u32) -> Vec<u32> {
    RUNS.record(&ctx, "make_items");
    (0..n).collect()
}

/// Item 2 fails for good while its request is broken, once its gate opens.
#[node]
async fn picky(ctx: Context, item: u32) -> Result<u32, NodeError> {
    ITEMS
        .lock()
        .unwrap()
        .push((ctx.request_id().as_str().to_owned(), item));
    if item == 2 {
        gate(&ctx).await;
        if is(&BROKEN, &ctx) {
            return Err(NodeError::permanent("item 2 is broken until mended"));
        }
    }
    Ok(item * 2)
}

#[node]
async fn total(ctx: Context, items: Vec<u32>) -> u32 {
    RUNS.record(&ctx, "total");
    items.iter().sum()
}

/// Runs until its gate opens.
#[node]
async fn hold(ctx: Context, n: u32) -> u32 {
    RUNS.record(&ctx, "hold");
    gate(&ctx).await;
    n
}

#[node]
async fn after(ctx: Context, n: u32) -> u32 {
    RUNS.record(&ctx, "after");
    n + 100
}

/// Fails for good while its request is broken (no gate).
#[node]
async fn fragile(ctx: Context, n: u32) -> Result<u32, NodeError> {
    RUNS.record(&ctx, "fragile");
    if is(&BROKEN, &ctx) {
        return Err(NodeError::permanent("broken until mended"));
    }
    Ok(n)
}

workflow! {
    pub Fork = split -> [steady, flaky] => join;
    pub Items = make_items -> each { picky } => total;
    pub Held = hold -> after;
    pub Fragile = fragile;
}

fn register_all(builder: RedisEngineBuilder) -> RedisEngineBuilder {
    builder
        .register::<Fork>()
        .register::<Items>()
        .register::<Held>()
        .register::<Fragile>()
}

/// A request of `Fork` that failed at `flaky` after `steady` completed.
async fn failed_fork(engine: &impl Engine) -> RequestId {
    let id = broken_id();
    assert!(engine.submit_as::<Fork>(id.clone(), &4).await.unwrap());
    until::<Fork>(engine, &id, "steady completes", |s| {
        vertex(s, "steady").status == VertexStatus::Done
    })
    .await;
    open(&id);
    let state = final_state::<Fork>(engine, &id).await;
    assert_eq!(state.status, RequestStatus::Failed, "{state:?}");
    assert_eq!(state.failure.as_ref().unwrap().vertex, "flaky");
    assert_eq!(vertex(&state, "flaky").status, VertexStatus::Failed);
    assert_eq!(vertex(&state, "join").status, VertexStatus::Skipped);
    id
}

conformance! {
    /// A failed request retried after its cause is fixed runs only the vertex that failed and
    /// what follows it: the completed branch is not run again, the failed vertex's attempts
    /// count on, and the request completes under the same id with `retries` 1. It is listed
    /// and counted as completed then, and a second retry is a conflict that says why.
    fn a_retry_runs_on_from_the_failed_vertex(engine) {
        let id = failed_fork(engine).await;
        assert_eq!(engine.status::<Fork>(&id).await.unwrap().retries, 0);
        mend(&id);
        assert_eq!(engine.retry::<Fork>(&id).await.unwrap(), RequestStatus::Running);
        let state = final_state::<Fork>(engine, &id).await;
        assert_eq!(state.status, RequestStatus::Completed, "{state:?}");
        assert!(state.failure.is_none(), "{state:?}");
        assert_eq!(state.retries, 1);
        assert_eq!(
            engine.wait::<Fork>(&id, Duration::from_secs(1)).await.unwrap(),
            RequestOutcome::Completed(5 + 40)
        );
        assert_eq!((runs(&id, "split"), runs(&id, "steady")), (1, 1), "completed vertices ran again");
        assert_eq!((runs(&id, "flaky"), runs(&id, "join")), (2, 1));
        assert_eq!(vertex(&state, "flaky").attempts, 2, "{state:?}");
        assert_eq!(vertex(&state, "flaky").status, VertexStatus::Done);
        assert_eq!(vertex(&state, "steady").attempts, 1);

        let page = engine
            .list::<Fork>(&RequestQuery::new().status(RequestStatus::Completed))
            .await
            .unwrap();
        assert!(page.requests.iter().any(|r| r.request_id == id), "{page:?}");
        let failed = engine
            .list::<Fork>(&RequestQuery::new().status(RequestStatus::Failed))
            .await
            .unwrap();
        assert!(!failed.requests.iter().any(|r| r.request_id == id), "{failed:?}");

        let again = engine.retry::<Fork>(&id).await;
        let Err(error @ Error::Conflict { status: RequestStatus::Completed, action: Control::Retry, .. }) = again else {
            panic!("{again:?}");
        };
        assert!(error.to_string().contains("a completed request is not retried"), "{error}");
    }

    /// A retry of a request that has not ended is a conflict that says a request is retried
    /// once it has failed or been stopped; nothing changes.
    fn a_request_under_way_is_not_retried(engine) {
        let id = broken_id();
        mend(&id);
        engine.submit_as::<Held>(id.clone(), &1).await.unwrap();
        until::<Held>(engine, &id, "hold runs", |s| vertex(s, "hold").status == VertexStatus::Running).await;
        for action in [Control::Retry, Control::RetryFromStart] {
            let result = engine.control(Held::NAME, &id, action).await;
            let Err(error @ Error::Conflict { status: RequestStatus::Running, .. }) = result else {
                panic!("{result:?}");
            };
            assert!(error.to_string().contains("only a failed or stopped request is retried"), "{error}");
        }
        open(&id);
        let state = final_state::<Held>(engine, &id).await;
        assert_eq!((state.status, state.retries), (RequestStatus::Completed, 0));
        assert_eq!(runs(&id, "hold"), 1);
    }

    /// A for-each whose item 2 failed, retried: item 2 alone runs again, not its siblings nor
    /// the source, and the gather gets every item.
    fn a_retry_runs_the_failed_item_alone(engine) {
        let id = broken_id();
        assert!(engine.submit_as::<Items>(id.clone(), &5).await.unwrap());
        until::<Items>(engine, &id, "every item but 2 completes", |s| {
            s.vertices.iter().filter(|v| v.vertex.starts_with("picky[") && v.status == VertexStatus::Done).count() == 4
        })
        .await;
        open(&id);
        let state = final_state::<Items>(engine, &id).await;
        assert_eq!(state.status, RequestStatus::Failed, "{state:?}");
        assert_eq!(state.failure.as_ref().unwrap().vertex, "picky[2]");
        mend(&id);
        assert_eq!(engine.retry::<Items>(&id).await.unwrap(), RequestStatus::Running);
        let state = final_state::<Items>(engine, &id).await;
        assert_eq!(state.status, RequestStatus::Completed, "{state:?}");
        assert_eq!(
            engine.wait::<Items>(&id, Duration::from_secs(1)).await.unwrap(),
            RequestOutcome::Completed(2 * (1 + 2 + 3 + 4))
        );
        let items: Vec<u32> = ITEMS
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| r == id.as_str())
            .map(|(_, item)| *item)
            .collect();
        let mut sorted = items.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2, 2, 3, 4], "the item runs: {items:?}");
        assert_eq!((runs(&id, "make_items"), runs(&id, "total")), (1, 1));
        assert_eq!(vertex(&state, "picky[2]").attempts, 2);
        assert_eq!(vertex(&state, "picky[3]").attempts, 1);
    }

    /// A retry from the start runs every vertex again from the input, the attempts counting on.
    fn a_retry_from_the_start_runs_everything_again(engine) {
        let id = failed_fork(engine).await;
        // Nothing of the failed run is under way any more (on Redis a retry from the start
        // waits for that: see `a_retry_from_the_start_waits_for_the_last_run`).
        settled::<Fork>(engine, &id).await;
        mend(&id);
        assert_eq!(engine.retry_from_start::<Fork>(&id).await.unwrap(), RequestStatus::Running);
        let state = final_state::<Fork>(engine, &id).await;
        assert_eq!((state.status, state.retries), (RequestStatus::Completed, 1), "{state:?}");
        for node in ["split", "steady", "flaky"] {
            assert_eq!(runs(&id, node), 2, "{node}");
            assert_eq!(vertex(&state, node).attempts, 2, "{node}: {state:?}");
        }
        assert_eq!(runs(&id, "join"), 1);
    }

    /// A request stopped while a vertex runs is retried: the cancelled vertex runs again and
    /// the request completes; one stopped while paused runs its parked vertex on retry.
    fn a_stopped_request_is_retried(engine) {
        let id = broken_id();
        mend(&id);
        engine.submit_as::<Held>(id.clone(), &1).await.unwrap();
        until::<Held>(engine, &id, "hold runs", |s| vertex(s, "hold").status == VertexStatus::Running).await;
        assert_eq!(engine.stop::<Held>(&id).await.unwrap(), RequestStatus::Stopped);
        // At once: the cancelled attempt may still be ending (on Redis, its worker requeues
        // it then, as the request runs again).
        assert_eq!(engine.retry::<Held>(&id).await.unwrap(), RequestStatus::Running);
        support::wait_until("hold runs again", Duration::from_secs(60), async || runs(&id, "hold") == 2).await;
        open(&id);
        let state = final_state::<Held>(engine, &id).await;
        assert_eq!((state.status, state.retries), (RequestStatus::Completed, 1), "{state:?}");
        assert_eq!((runs(&id, "hold"), runs(&id, "after")), (2, 1));
        assert_eq!(vertex(&state, "hold").attempts, 2);

        let paused = broken_id();
        mend(&paused);
        engine.submit_as::<Held>(paused.clone(), &2).await.unwrap();
        until::<Held>(engine, &paused, "hold runs", |s| vertex(s, "hold").status == VertexStatus::Running).await;
        assert_eq!(engine.pause::<Held>(&paused).await.unwrap(), RequestStatus::Paused);
        open(&paused);
        until::<Held>(engine, &paused, "after is parked", |s| vertex(s, "after").status == VertexStatus::Parked).await;
        assert_eq!(engine.stop::<Held>(&paused).await.unwrap(), RequestStatus::Stopped);
        assert_eq!(engine.retry::<Held>(&paused).await.unwrap(), RequestStatus::Running);
        let state = final_state::<Held>(engine, &paused).await;
        assert_eq!(state.status, RequestStatus::Completed, "{state:?}");
        assert_eq!((runs(&paused, "hold"), runs(&paused, "after")), (1, 1));
    }

    /// A bulk retry retries every failed request a selection picks, each once: all complete,
    /// each node run twice (the failure, and the retry), and a second bulk retry finds none.
    fn failed_requests_are_retried_in_bulk(engine) {
        let mut ids = Vec::new();
        for n in 0..30 {
            let id = broken_id();
            open(&id);
            engine.submit_as::<Fragile>(id.clone(), &n).await.unwrap();
            ids.push(id);
        }
        for id in &ids {
            assert_eq!(final_state::<Fragile>(engine, id).await.status, RequestStatus::Failed);
            mend(id);
        }
        let failed = Selection::matching(RequestQuery::new().status(RequestStatus::Failed));
        let outcome = engine.control_all::<Fragile>(&failed, Control::Retry).await.unwrap();
        assert_eq!((outcome.matched, outcome.applied), (30, 30), "{outcome:?}");
        assert!(outcome.skipped.is_empty(), "{outcome:?}");
        for (n, id) in ids.iter().enumerate() {
            let state = final_state::<Fragile>(engine, id).await;
            assert_eq!((state.status, state.retries), (RequestStatus::Completed, 1), "{state:?}");
            assert_eq!(
                engine.wait::<Fragile>(id, Duration::from_secs(1)).await.unwrap(),
                RequestOutcome::Completed(n as u32)
            );
            assert_eq!(runs(id, "fragile"), 2);
        }
        let again = engine.control_all::<Fragile>(&failed, Control::Retry).await.unwrap();
        assert_eq!((again.matched, again.applied), (0, 0), "{again:?}");
    }
}

/// On Redis, a retry from the start waits while an instance of the last run is still under way
/// (its entry or attempt would run on inputs the retry forgets): it answers `StillEnding`,
/// naming the instance, and changes nothing; once the instance is settled it retries. The
/// instance is made to look under way by writing its status field, as a worker that has not
/// yet dropped its entry leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_from_the_start_waits_for_the_last_run() {
    let harness = support::engines::RedisHarness::start("retry_waits", register_all).await;
    let engine = &harness.engine;
    let id = failed_fork(engine).await;
    settled::<Fork>(engine, &id).await;
    let client = support::raw_client(&engine.config().url).await;
    let hash = format!(
        "{}:req:{id}",
        support::flow_tag(&engine.config().prefix, Fork::NAME)
    );
    let state = engine.status::<Fork>(&id).await.unwrap();
    let field = format!("s:{}", support::vertex_index(&state, "join"));
    let set = |status: &'static str| {
        let (client, hash, field) = (client.clone(), hash.clone(), field.clone());
        async move {
            let _: u64 = support::raw(
                &client,
                "HSET",
                vec![hash.into(), field.into(), status.into()],
            )
            .await;
        }
    };
    set("queued").await;
    let result = engine.retry_from_start::<Fork>(&id).await;
    let Err(error @ Error::StillEnding { .. }) = result else {
        panic!("{result:?}");
    };
    assert!(
        error
            .to_string()
            .contains("`join` of its last run is still under way"),
        "{error}"
    );
    assert_eq!(
        engine.status::<Fork>(&id).await.unwrap().status,
        RequestStatus::Failed
    );
    // What a worker's start script does to the entry of an ended request: it cancels it.
    set("cancelled").await;
    mend(&id);
    assert_eq!(
        engine.retry_from_start::<Fork>(&id).await.unwrap(),
        RequestStatus::Running
    );
    let state = final_state::<Fork>(engine, &id).await;
    assert_eq!((state.status, state.retries), (RequestStatus::Completed, 1));
    assert_eq!(runs(&id, "split"), 2);
    harness.finish().await;
}
