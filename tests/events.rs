//! The live events of requests, every case on both engines (see `tests/support/engines.rs`):
//! one request's events come in order (each vertex queued or parked, running, done; the
//! request's end last) and the stream closes after the end; a stream resumed after an event
//! (`Last-Event-ID`) goes on from the next one, repeating and losing none; a workflow's stream
//! follows all its requests; a retried request's events show it run on.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use goflow::prelude::*;
use goflow::redis::RedisEngineBuilder;
use goflow::request::{EventId, EventKind, EventStream, RequestEvent, RequestStatus, VertexStatus};
use goflow::{Engine as _, RequestId};
use support::engines::{conformance, final_state, until};

/// Requests whose `gate` waits, by id.
static CLOSED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);
/// Requests whose `fallible` fails, by id.
static BROKEN: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

/// A bound against hanging forever, never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(30);

fn closed_id() -> RequestId {
    let id = RequestId::generate();
    CLOSED.lock().unwrap().insert(id.as_str().to_owned());
    id
}

fn open(id: &RequestId) {
    CLOSED.lock().unwrap().remove(id.as_str());
}

#[node]
async fn gate(ctx: Context, n: u32) -> u32 {
    while CLOSED.lock().unwrap().contains(ctx.request_id().as_str()) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    n
}

#[node]
async fn left(n: u32) -> u32 {
    n + 1
}

#[node]
async fn right(n: u32) -> u32 {
    n + 2
}

#[node]
async fn both(a: u32, b: u32) -> u32 {
    a + b
}

#[node]
async fn fallible(ctx: Context, n: u32) -> Result<u32, NodeError> {
    if BROKEN.lock().unwrap().contains(ctx.request_id().as_str()) {
        return Err(NodeError::permanent("broken"));
    }
    Ok(n)
}

workflow! {
    pub Diamond = gate -> [left, right] => both;
    pub Fallible = gate -> fallible;
}

fn register_all(builder: RedisEngineBuilder) -> RedisEngineBuilder {
    builder.register::<Diamond>().register::<Fallible>()
}

/// Every event of `events` until it ends (failing if it does not within the patience).
async fn all(events: EventStream) -> Vec<RequestEvent> {
    tokio::time::timeout(PATIENCE, events.map(|e| e.expect("an event")).collect())
        .await
        .expect("the stream ended with its request")
}

/// The statuses each vertex went through, in order.
fn paths(events: &[RequestEvent]) -> HashMap<String, Vec<VertexStatus>> {
    let mut paths: HashMap<String, Vec<VertexStatus>> = HashMap::new();
    for event in events {
        if let EventKind::Vertex { vertex, status } = &event.kind {
            paths.entry(vertex.to_string()).or_default().push(*status);
        }
    }
    paths
}

/// Where a status comes in a vertex's life, for checking that events never go back.
fn rank(status: VertexStatus) -> u8 {
    match status {
        VertexStatus::Pending => 0,
        VertexStatus::Queued | VertexStatus::Parked => 1,
        VertexStatus::Running | VertexStatus::Retrying => 2,
        _ => 3,
    }
}

/// Checks one request's events: ids rising, each vertex's statuses never going back, the end
/// last and `end`.
fn check_order(events: &[RequestEvent], end: RequestStatus) {
    for pair in events.windows(2) {
        assert!(pair[0].id <= pair[1].id, "ids out of order: {events:#?}");
    }
    for (vertex, path) in paths(events) {
        for pair in path.windows(2) {
            assert!(
                rank(pair[0]) <= rank(pair[1]),
                "{vertex} went back: {path:?}"
            );
        }
    }
    let last = events.last().expect("events");
    assert_eq!(last.kind, EventKind::Request { status: end }, "{events:#?}");
    assert_eq!(
        events.iter().filter(|e| e.is_end()).count(),
        1,
        "{events:#?}"
    );
}

conformance! {
    /// Followed from before its first vertex ran, a request's events show every vertex queued,
    /// running and done, in that order, and end with `completed`, after which the stream ends.
    fn a_request_s_events_come_in_order_and_end_with_it(engine) {
        let id = closed_id();
        engine.submit_as::<Diamond>(id.clone(), &1).await.unwrap();
        let events = engine.request_events::<Diamond>(&id, None).await.unwrap();
        open(&id);
        let events = all(events).await;
        assert!(events.iter().all(|e| e.request_id == id));
        check_order(&events, RequestStatus::Completed);
        let paths = paths(&events);
        // Each ran, and is done (on Redis, a vertex that a completion hands to its own worker
        // goes from pending straight to running).
        for vertex in ["left", "right", "both"] {
            let path = &paths[vertex];
            assert!(path.contains(&VertexStatus::Running), "{vertex}: {events:#?}");
            assert_eq!(path.last(), Some(&VertexStatus::Done), "{vertex}: {events:#?}");
        }
        assert_eq!(paths["gate"].last(), Some(&VertexStatus::Done));
        // Followed after it ended: how it stands, then the end, at once.
        let again = all(engine.request_events::<Diamond>(&id, None).await.unwrap()).await;
        check_order(&again, RequestStatus::Completed);
        assert_eq!(paths_done(&again), 4, "{again:#?}");
    }

    /// A stream resumed after an event goes on from the next one: together the two parts are
    /// the whole, with nothing repeated.
    fn a_resumed_stream_goes_on_after_the_event(engine) {
        let id = closed_id();
        engine.submit_as::<Diamond>(id.clone(), &2).await.unwrap();
        until::<Diamond>(engine, &id, "gate runs", |s| s.vertices[0].status == VertexStatus::Running).await;
        let mut first = engine.request_events::<Diamond>(&id, None).await.unwrap();
        let mut head = Vec::new();
        // How it stands: gate running, the request running.
        while let Some(event) = tokio::time::timeout(PATIENCE, first.next()).await.unwrap() {
            let event = event.unwrap();
            let done = event.kind == EventKind::Request { status: RequestStatus::Running };
            head.push(event);
            if done {
                break;
            }
        }
        open(&id);
        // Some of what comes next, then a disconnect.
        let event = tokio::time::timeout(PATIENCE, first.next()).await.unwrap().unwrap().unwrap();
        head.push(event);
        drop(first);
        let resumed_after: EventId = head.last().unwrap().id;
        let tail = all(engine.request_events::<Diamond>(&id, Some(resumed_after)).await.unwrap()).await;
        assert!(tail.iter().all(|e| e.id > resumed_after), "{tail:#?}");
        let whole: Vec<RequestEvent> = head.into_iter().chain(tail).collect();
        check_order(&whole, RequestStatus::Completed);
        let mut seen = HashSet::new();
        for event in whole.iter().skip_while(|e| e.id <= resumed_after) {
            assert!(seen.insert((event.id, format!("{:?}", event.kind))), "repeated: {event:?}");
        }
        assert_eq!(paths_done(&whole), 4, "{whole:#?}");
        final_state::<Diamond>(engine, &id).await;
    }

    /// Resumed after an event once its request has ended, a request's stream gives what
    /// followed that event, up to the end, and closes.
    fn a_stream_resumed_after_the_end_gives_what_followed(engine) {
        let mut flow = engine.flow_events::<Diamond>(None).await.unwrap();
        let id = RequestId::generate();
        engine.submit_as::<Diamond>(id.clone(), &5).await.unwrap();
        let mut live = Vec::new();
        while !live.last().is_some_and(RequestEvent::is_end) {
            let event = tokio::time::timeout(PATIENCE, flow.next()).await.unwrap().unwrap().unwrap();
            if event.request_id == id {
                live.push(event);
            }
        }
        final_state::<Diamond>(engine, &id).await;
        let after = live[1].id;
        let resumed = all(engine.request_events::<Diamond>(&id, Some(after)).await.unwrap()).await;
        let kinds = |events: &[RequestEvent]| events.iter().map(|e| e.kind.clone()).collect::<Vec<_>>();
        assert_eq!(kinds(&resumed), kinds(&live[2..]), "{resumed:#?}");
    }

    /// A workflow's stream follows every request of it, from now on.
    fn a_workflow_s_stream_follows_all_its_requests(engine) {
        let mut events = engine.flow_events::<Diamond>(None).await.unwrap();
        let mut ids = HashSet::new();
        for n in 0..3 {
            let id = RequestId::generate();
            engine.submit_as::<Diamond>(id.clone(), &n).await.unwrap();
            ids.insert(id);
        }
        let mut ended = HashSet::new();
        while ended.len() < ids.len() {
            let event = tokio::time::timeout(PATIENCE, events.next()).await.unwrap().unwrap().unwrap();
            assert!(ids.contains(&event.request_id), "another request: {event:?}");
            if event.is_end() {
                assert_eq!(event.kind, EventKind::Request { status: RequestStatus::Completed });
                ended.insert(event.request_id);
            }
        }
    }

    /// A failed request's events end with `failed`; retried, it runs on, and its events show
    /// the failed vertex queued again, then done, and `completed`.
    fn a_retried_request_s_events_show_it_run_on(engine) {
        let id = RequestId::generate();
        BROKEN.lock().unwrap().insert(id.as_str().to_owned());
        engine.submit_as::<Fallible>(id.clone(), &3).await.unwrap();
        let failed = all(engine.request_events::<Fallible>(&id, None).await.unwrap()).await;
        check_order(&failed, RequestStatus::Failed);
        assert_eq!(paths(&failed)["fallible"].last(), Some(&VertexStatus::Failed));
        let resume_after = failed.last().unwrap().id;
        let events = engine.flow_events::<Fallible>(None).await.unwrap();
        BROKEN.lock().unwrap().remove(id.as_str());
        engine.retry::<Fallible>(&id).await.unwrap();
        let mut after: Vec<RequestEvent> = Vec::new();
        let mut events = events.filter(|e| std::future::ready(e.as_ref().is_ok_and(|e| e.request_id == id)));
        while !after.last().is_some_and(RequestEvent::is_end) {
            after.push(tokio::time::timeout(PATIENCE, events.next()).await.unwrap().unwrap().unwrap());
        }
        assert!(after.iter().all(|e| e.id > resume_after));
        assert_eq!(after.last().unwrap().kind, EventKind::Request { status: RequestStatus::Completed });
        assert!(after.contains_kind(&EventKind::Request { status: RequestStatus::Running }), "{after:#?}");
        let fallible = &paths(&after)["fallible"];
        assert_eq!(fallible.first(), Some(&VertexStatus::Queued), "{after:#?}");
        assert_eq!(fallible.last(), Some(&VertexStatus::Done), "{after:#?}");
        assert!(!paths(&after).contains_key("gate"), "gate ran again: {after:#?}");
    }
}

/// How many vertices' last event says `done`.
fn paths_done(events: &[RequestEvent]) -> usize {
    paths(events)
        .values()
        .filter(|path| path.last() == Some(&VertexStatus::Done))
        .count()
}

trait ContainsKind {
    fn contains_kind(&self, kind: &EventKind) -> bool;
}

impl ContainsKind for Vec<RequestEvent> {
    fn contains_kind(&self, kind: &EventKind) -> bool {
        self.iter().any(|e| &e.kind == kind)
    }
}

/// With its events off (`RedisConfig::events`), the Redis engine runs requests as before but
/// writes no events stream, and following events says why instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_engine_with_its_events_off_writes_none() {
    let mut config = support::config("events_off");
    config.events = false;
    let engine = register_all(goflow::redis::RedisEngine::builder(config))
        .connect()
        .await
        .expect("connect");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(engine.worker(4).run(shutdown.clone()));
    let id = RequestId::generate();
    engine.submit_as::<Diamond>(id.clone(), &7).await.unwrap();
    let state = final_state::<Diamond>(&engine, &id).await;
    assert_eq!(state.status, RequestStatus::Completed);
    for result in [
        engine.request_events::<Diamond>(&id, None).await.map(drop),
        engine.flow_events::<Diamond>(None).await.map(drop),
    ] {
        let error = result.expect_err("no events to follow");
        let source = std::error::Error::source(&error).expect("why");
        assert!(source.is::<goflow::redis::EventsOff>(), "{error}: {source}");
        assert!(source.to_string().contains("events are off"), "{source}");
    }
    let client = support::raw_client(&engine.config().url).await;
    let key = format!(
        "{}:events",
        support::flow_tag(&engine.config().prefix, Diamond::NAME)
    );
    let exists: u64 = support::raw(&client, "EXISTS", vec![key.into()]).await;
    assert_eq!(exists, 0);
    shutdown.cancel();
    worker.await.unwrap().unwrap();
}
