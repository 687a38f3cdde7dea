//! Submitted requests on the embedded engine: state, waiting, pause, resume and stop, with the
//! same semantics as the Redis engine.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use goflow::prelude::*;
use goflow::{Embedded, RequestId, RequestOutcome, RequestStatus, Transition, VertexStatus};
use tokio::sync::Notify;

static GATE: Notify = Notify::const_new();
static AFTER_RUNS: AtomicU32 = AtomicU32::new(0);

#[node]
async fn gate(x: u32) -> u32 {
    GATE.notified().await;
    x
}

#[node]
async fn after(x: u32) -> u32 {
    AFTER_RUNS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[node]
async fn forever(ctx: Context, x: u32) -> u32 {
    ctx.cancelled().await;
    x
}

workflow! {
    pub Gated = gate -> after;
    pub Endless = forever -> after as never;
}

async fn until(
    engine: &Embedded,
    flow: &str,
    id: &RequestId,
    check: impl Fn(&goflow::RequestState) -> bool,
) {
    for _ in 0..500 {
        if engine.status(flow, id).is_some_and(|s| check(&s)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("state never reached: {:?}", engine.status(flow, id));
}

#[tokio::test]
async fn pause_parks_successors_and_resume_runs_them_once() {
    let engine = Embedded::new();
    let id = engine.submit::<Gated>(&1).await.unwrap();
    until(&engine, "gated", &id, |s| {
        s.vertices[0].status == VertexStatus::Running
    })
    .await;
    assert_eq!(
        engine.pause("gated", &id),
        Transition::Done(RequestStatus::Paused)
    );
    GATE.notify_one();
    until(&engine, "gated", &id, |s| {
        s.vertices[1].status == VertexStatus::Parked
    })
    .await;
    assert_eq!(
        AFTER_RUNS.load(Ordering::SeqCst),
        0,
        "parked vertices do not run"
    );
    assert_eq!(
        engine.pause("gated", &id),
        Transition::Conflict(RequestStatus::Paused)
    );

    assert_eq!(
        engine.resume("gated", &id),
        Transition::Done(RequestStatus::Running)
    );
    match engine
        .wait::<Gated>(&id, Duration::from_secs(5))
        .await
        .unwrap()
    {
        Some(RequestOutcome::Completed(out)) => assert_eq!(out, 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(AFTER_RUNS.load(Ordering::SeqCst), 1);
    let state = engine.status("gated", &id).unwrap();
    assert_eq!(state.status, RequestStatus::Completed);
    assert!(state
        .vertices
        .iter()
        .all(|v| v.status == VertexStatus::Done && v.attempts == 1));
    assert!(state.finished_at_ms.is_some());
    assert_eq!(
        engine.resume("gated", &id),
        Transition::Conflict(RequestStatus::Completed)
    );
}

#[tokio::test]
async fn stop_cancels_running_vertices_and_nothing_after_runs() {
    let engine = Embedded::new();
    let id = engine.submit::<Endless>(&7).await.unwrap();
    until(&engine, "endless", &id, |s| {
        s.status == RequestStatus::Running
    })
    .await;
    assert_eq!(
        engine.stop("endless", &id),
        Transition::Done(RequestStatus::Stopped)
    );
    match engine
        .wait::<Endless>(&id, Duration::from_secs(5))
        .await
        .unwrap()
    {
        Some(RequestOutcome::Stopped) => {}
        other => panic!("{other:?}"),
    }
    let state = engine.status("endless", &id).unwrap();
    assert_eq!(state.vertices[1].status, VertexStatus::Pending);
    assert_eq!(
        engine.stop("endless", &id),
        Transition::Conflict(RequestStatus::Stopped)
    );
}

#[tokio::test]
async fn a_request_id_runs_once_and_unknown_ids_are_missing() {
    let engine = Embedded::new();
    let id = RequestId::parse("order-1").unwrap();
    assert!(engine.submit_as::<Endless>(id.clone(), &1).await.unwrap());
    assert!(!engine.submit_as::<Endless>(id.clone(), &2).await.unwrap());
    assert_eq!(
        engine.stop("endless", &id),
        Transition::Done(RequestStatus::Stopped)
    );
    let unknown = RequestId::parse("nope").unwrap();
    assert_eq!(engine.pause("endless", &unknown), Transition::Missing);
    assert!(engine.status("endless", &unknown).is_none());
    assert!(engine
        .wait::<Endless>(&unknown, Duration::from_millis(10))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn finished_requests_expire_after_the_retention() {
    let engine = Arc::new(Embedded::new().with_retention(Duration::from_millis(50)));
    let id = engine.submit::<Endless>(&1).await.unwrap();
    engine.stop("endless", &id);
    let _ = engine.wait::<Endless>(&id, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Eviction happens on the next submission.
    let other = engine.submit::<Endless>(&2).await.unwrap();
    assert!(engine.status("endless", &id).is_none());
    engine.stop("endless", &other);
}
