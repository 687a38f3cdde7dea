//! Failing nodes: retries waiting their backoff in the delayed set, a retried branch beside
//! one still running, permanent errors, timeouts and panics (after which the worker serves
//! on), and a vertex that exhausts its retries and is dead-lettered.

use std::time::Duration;

use goflow::prelude::*;
use goflow::redis::{RedisConfig, RedisEngine, RedisEngineBuilder};
use goflow::request::{Failure, RequestFailure, RequestStatus, VertexStatus};
use goflow::{Engine, RequestId};

use crate::support::{self, pending_by_consumer, raw, raw_client, vertex_index, wait_until};
use crate::{
    assert_attempts, close_gate, completed, double, failed, open_gate, pass_gate, ready_key,
    record_run, runs, Running, LIMIT,
};

/// Fails its first two attempts.
#[node(retries = 3, backoff = "50ms")]
async fn flaky(ctx: Context, n: u32) -> Result<u32, NodeError> {
    record_run(&ctx, "flaky");
    let count = runs(ctx.request_id(), "flaky");
    if count <= 2 {
        return Err(NodeError::new(format!("flaky attempt {count}")));
    }
    Ok(n + 1)
}

/// Refuses its input for good.
#[node(retries = 3, backoff = "10ms")]
async fn refuse(ctx: Context, n: u32) -> Result<u32, NodeError> {
    record_run(&ctx, "refuse");
    Err(NodeError::permanent(format!("{n} is not acceptable")))
}

/// Takes far longer than its timeout.
#[node(timeout = "100ms")]
async fn stall(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "stall");
    tokio::time::sleep(Duration::from_secs(60)).await;
    n
}

/// Panics on odd numbers.
#[node]
async fn explode(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "explode");
    assert!(n % 2 == 0, "boom on {n}");
    n / 2
}

/// Always fails, retryably.
#[node(retries = 1, backoff = "10ms")]
async fn unavailable(ctx: Context, n: u32) -> Result<u32, NodeError> {
    record_run(&ctx, "unavailable");
    Err(NodeError::new(format!("service unavailable for {n}")))
}

workflow! {
    /// Succeeds on its third attempt.
    pub(crate) Flaky = flaky -> double;
    /// Fails permanently.
    pub(crate) Refuse = refuse -> double;
    /// Times out.
    pub(crate) Stall = stall -> double;
    /// Panics on odd input.
    pub(crate) Explode = explode -> double;
    /// Fails after its retry.
    pub(crate) Unavailable = unavailable -> double;
}

/// Fails its first attempt, retryably.
#[node(retries = 2, backoff = "10ms")]
async fn flaky_once(ctx: Context, n: u32) -> Result<u32, NodeError> {
    record_run(&ctx, "flaky_once");
    if runs(ctx.request_id(), "flaky_once") == 1 {
        return Err(NodeError::new("flaky_once attempt 1"));
    }
    Ok(n + 1)
}

/// Waits at its gate.
#[node]
async fn gated_twin(ctx: Context, n: u32) -> u32 {
    pass_gate(&ctx, "gated_twin").await;
    n + 2
}

#[node]
async fn add(a: u32, b: u32) -> u32 {
    a + b
}

workflow! {
    /// A diamond whose one branch fails once while the other waits at its gate.
    pub(crate) RetryBeside = double -> [flaky_once, gated_twin] => add;
}

/// Both branches of a diamond ride on the entry of the vertex before them. The one that fails
/// lets go of the entry for its retry (which gets an entry of its own); the one still running
/// keeps it pending, and the join it hands on acknowledges it at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_branch_leaves_the_entry_to_the_branch_beside_it() {
    let (_server, config) = support::own_server("beside");
    let client = raw_client(&config.url).await;
    let ready = ready_key::<RetryBeside>(&config);
    let holding = Running::start(config, |c| {
        RedisEngine::builder(c).register::<RetryBeside>()
    })
    .await;
    let engine = &holding.engine;
    let id = RequestId::parse("beside-1").unwrap();
    close_gate(&id, "gated_twin");
    assert!(engine
        .submit_as::<RetryBeside>(id.clone(), &5)
        .await
        .unwrap());

    wait_until("flaky_once completes on its retry", LIMIT, async || {
        let state = engine.status::<RetryBeside>(&id).await.unwrap();
        state.vertices[vertex_index(&state, "flaky_once")].status == VertexStatus::Done
    })
    .await;
    let pending = pending_by_consumer(&client, &ready).await;
    assert_eq!(
        pending.values().sum::<u64>(),
        1,
        "the entry carrying gated_twin is pending: {pending:?}"
    );

    open_gate(&id, "gated_twin");
    assert_eq!(completed::<RetryBeside>(engine, &id).await, 10 + 1 + 10 + 2);
    let want = [
        ("double", 1),
        ("flaky_once", 2),
        ("gated_twin", 1),
        ("add", 1),
    ];
    assert_attempts::<RetryBeside>(engine, &id, &want).await;
    assert_eq!(
        raw::<u64>(&client, "XLEN", vec![ready.as_str().into()]).await,
        0
    );
    assert!(pending_by_consumer(&client, &ready).await.is_empty());
    holding.finish().await;
}

fn failing(config: RedisConfig) -> RedisEngineBuilder {
    RedisEngine::builder(config)
        .register::<Flaky>()
        .register::<Refuse>()
        .register::<Stall>()
        .register::<Explode>()
        .register::<Unavailable>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_wait_their_backoff_in_the_delayed_set() {
    // This worker never moves due retries back (its poll is an hour away), so the first retry
    // stays in the delayed set for the test to look at.
    let (_server, mut config) = support::own_server("retry");
    config.retry_poll = Duration::from_secs(3600);
    let client = raw_client(&config.url).await;
    let delayed = format!("{}:delayed", support::flow_tag(&config.prefix, Flaky::NAME));
    let holding = Running::start(config.clone(), failing).await;
    let engine = &holding.engine;

    let id = engine.submit::<Flaky>(&20).await.unwrap();
    let mut state = None;
    wait_until("flaky is retrying", LIMIT, async || {
        let s = engine.status::<Flaky>(&id).await.unwrap();
        let retrying = s.vertices[0].status == VertexStatus::Retrying;
        state = Some(s);
        retrying
    })
    .await;
    let state = state.unwrap();
    assert_eq!(state.status, RequestStatus::Running);
    let vertex = &state.vertices[vertex_index(&state, "flaky")];
    assert_eq!(vertex.attempts, 1);
    assert_eq!(
        vertex.last_failure,
        Some(Failure::Error("flaky attempt 1".into()))
    );

    // It waits in the delayed set, due 25 to 50 ms (the 50 ms backoff less jitter) after it
    // failed.
    let members: Vec<String> = raw(
        &client,
        "ZRANGE",
        vec![
            delayed.as_str().into(),
            "0".into(),
            "-1".into(),
            "WITHSCORES".into(),
        ],
    )
    .await;
    let index = vertex_index(&state, "flaky");
    assert_eq!(members.len(), 2, "{members:?}");
    // `request vertex traceparent`: the retry keeps the request's trace.
    assert!(
        members[0].starts_with(&format!("{id} {index} 00-")),
        "{members:?}"
    );
    let due: u64 = members[1].parse().unwrap();
    let started = vertex.started_at_ms.unwrap();
    assert!(due >= started + 25, "due {due}, attempt started {started}");
    assert!(
        due <= state.updated_at_ms + 50,
        "due {due}, failed {}",
        state.updated_at_ms
    );
    assert_eq!(runs(&id, "flaky"), 1);

    // A worker that promotes due retries takes it from there.
    config.retry_poll = Duration::from_millis(10);
    let promoting = Running::start(config, failing).await;
    assert_eq!(completed::<Flaky>(engine, &id).await, 42);
    let state = engine.status::<Flaky>(&id).await.unwrap();
    assert_eq!(state.vertices[index].attempts, 3);
    assert_eq!(state.vertices[index].status, VertexStatus::Done);
    assert_eq!(runs(&id, "flaky"), 3);
    assert_eq!(runs(&id, "double"), 1);
    assert_eq!(
        raw::<u64>(&client, "ZCARD", vec![delayed.as_str().into()]).await,
        0
    );
    promoting.finish().await;
    holding.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_timeouts_and_panics_fail_the_request_and_the_worker_serves_on() {
    let (_server, config) = support::own_server("failures");
    let running = Running::start(config, failing).await;
    let engine = &running.engine;

    // A permanent error is not retried, whatever the node's retries.
    let id = engine.submit::<Refuse>(&7).await.unwrap();
    let failure = failed::<Refuse>(engine, &id).await;
    assert_eq!(
        failure,
        RequestFailure::new(
            "refuse",
            1,
            Failure::Permanent("7 is not acceptable".into())
        )
    );
    assert_eq!(runs(&id, "refuse"), 1);
    assert_eq!(runs(&id, "double"), 0);

    // A timeout cancels the attempt.
    let id = engine.submit::<Stall>(&1).await.unwrap();
    let failure = failed::<Stall>(engine, &id).await;
    assert_eq!(
        failure.failure,
        Failure::Timeout(Duration::from_millis(100))
    );
    assert_eq!((failure.vertex.as_str(), failure.attempts), ("stall", 1));
    assert_eq!(runs(&id, "double"), 0);

    // A panic is caught and recorded...
    let id = engine.submit::<Explode>(&3).await.unwrap();
    let failure = failed::<Explode>(engine, &id).await;
    match &failure.failure {
        Failure::Panic(message) => assert!(message.contains("boom on 3"), "{message}"),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(failure.attempts, 1);
    let state = engine.status::<Explode>(&id).await.unwrap();
    assert_eq!(state.status, RequestStatus::Failed);
    assert_eq!(state.failure.as_ref(), Some(&failure));

    // ...and the worker serves on.
    assert!(!running.worker.is_finished());
    assert_eq!(engine.run::<Explode>(8).await.unwrap(), 8);
    assert_eq!(engine.run::<Flaky>(1).await.unwrap(), 4);
    running.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_vertex_is_dead_lettered_with_its_failure() {
    let (_server, config) = support::own_server("dead");
    let client = raw_client(&config.url).await;
    let dead = format!(
        "{}:dead",
        support::flow_tag(&config.prefix, Unavailable::NAME)
    );
    let running = Running::start(config, failing).await;
    let engine = &running.engine;

    let id = engine.submit::<Unavailable>(&5).await.unwrap();
    let failure = failed::<Unavailable>(engine, &id).await;
    let want = RequestFailure::new(
        "unavailable",
        2,
        Failure::Error("service unavailable for 5".into()),
    );
    assert_eq!(failure, want, "the request's failure says why");
    assert_eq!(runs(&id, "unavailable"), 2);
    assert_eq!(runs(&id, "double"), 0);

    let state = engine.status::<Unavailable>(&id).await.unwrap();
    let index = vertex_index(&state, "unavailable");
    assert_eq!(state.status, RequestStatus::Failed);
    assert_eq!(state.vertices[index].status, VertexStatus::Failed);
    assert_eq!(state.vertices[index].attempts, 2);
    assert_eq!(state.failure.as_ref(), Some(&want));

    let letters = support::stream_entries(&client, &dead).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0].1;
    assert_eq!(letter["r"], id.as_str());
    assert_eq!(letter["v"], index.to_string());
    let recorded: RequestFailure = serde_json::from_str(&letter["failure"]).unwrap();
    assert_eq!(recorded, want);
    running.finish().await;
}
