//! A worker process killed mid-run (SIGKILL while it holds entries): 2,000 KYC requests, and
//! a 1,000-item for-each. Every request completes once, with each vertex's effect recorded
//! once, and nothing is left behind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use goflow::__private::BuildPlan;
use goflow::prelude::*;
use goflow::redis::RunAhead;
use goflow::request::{RequestOutcome, RequestStatus, VertexStatus};
use goflow::Engine;

use crate::processes::WorkerProcesses;
use crate::support::RedisServer;
use crate::support::{self, pending_by_consumer, raw, raw_client, vertex_index, wait_until};
use crate::{expected, fields, kyc, ready_key, short_lease, Kyc, LIMIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyc_flows_survive_a_worker_process_killed_mid_run() {
    kyc_flows_survive_a_killed_worker(RunAhead::Off).await;
}

/// The same with the workers running ahead (`RedisConfig::run_ahead`), whole diamonds in one
/// run: the runs the killed worker had not recorded run again, and still every request
/// completes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyc_flows_survive_a_worker_process_killed_mid_run_running_ahead() {
    kyc_flows_survive_a_killed_worker(RunAhead::Checked).await;
}

/// The same running ahead without reading the requests' status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyc_flows_survive_a_worker_process_killed_mid_run_running_ahead_unchecked() {
    kyc_flows_survive_a_killed_worker(RunAhead::Unchecked).await;
}

async fn kyc_flows_survive_a_killed_worker(run_ahead: RunAhead) {
    const REQUESTS: usize = 2000;
    let server = RedisServer::start();
    let mut config = support::config_at(&server.url(), "crash");
    config.lease = Duration::from_secs(1);
    config.run_ahead = run_ahead;
    let engine = kyc(config.clone()).connect().await.expect("connect");
    let client = raw_client(&config.url).await;
    let ready = ready_key::<Kyc>(&config);
    let tag = support::flow_tag(&config.prefix, Kyc::NAME);

    // All submitted before the workers start, so that most are still to go at the kill
    // however fast the workers are.
    let users: Vec<String> = (0..REQUESTS).map(|i| format!("user-{i:04}")).collect();
    let mut ids = Vec::with_capacity(REQUESTS);
    for user in &users {
        ids.push(engine.submit::<Kyc>(user).await.expect("submit"));
    }
    let mut workers = WorkerProcesses::spawn(3, &config);

    // Kill one worker while it holds entries: some done, most still to go.
    let done_stream = format!("{tag}:done");
    wait_until(
        "a quarter of the requests complete",
        Duration::from_secs(60),
        async || {
            raw::<u64>(&client, "XLEN", vec![done_stream.as_str().into()]).await
                >= (REQUESTS / 4) as u64
        },
    )
    .await;
    let (victim, lost) = workers.kill_first_holding::<Kyc>(&client, &config).await;

    // Every request completes with its own output.
    let deadline = Instant::now() + Duration::from_secs(90);
    for (id, user) in ids.iter().zip(&users) {
        let left = deadline.saturating_duration_since(Instant::now());
        match engine.wait::<Kyc>(id, left).await.expect("wait") {
            RequestOutcome::Completed(output) => assert_eq!(output, expected(user), "{id}"),
            other => panic!("request {id} ({user}) did not complete: {other:?}"),
        }
    }

    // Each vertex's effect was recorded once: every vertex is done, the join counted each
    // parent once, and each request completed once.
    let mut reattempted = 0;
    for id in &ids {
        let state = engine.status::<Kyc>(id).await.expect("state");
        assert_eq!(state.status, RequestStatus::Completed, "{state:?}");
        for vertex in &state.vertices {
            assert_eq!(vertex.status, VertexStatus::Done, "{id}: {vertex:?}");
            assert!(vertex.attempts >= 1, "{id}: {vertex:?}");
            assert!(vertex.last_failure.is_none(), "{id}: {vertex:?}");
            reattempted += usize::from(vertex.attempts > 1);
        }
        let arrivals: Vec<String> = (0..state.vertices.len())
            .map(|i| format!("n:{i}"))
            .collect();
        let counted = fields(&client, &config, Kyc::NAME, id, &arrivals).await;
        let join = vertex_index(&state, "verdict");
        for (i, count) in counted.iter().enumerate() {
            // Only joins count arrivals: a single-input vertex is enqueued by its one parent.
            let want = match i {
                i if i == join => Some("2".to_owned()),
                _ => None,
            };
            assert_eq!(*count, want, "{id}: arrivals at vertex {i}");
        }
    }
    let mut completions: HashMap<String, usize> = HashMap::new();
    for (_, entry) in support::stream_entries(&client, &done_stream).await {
        assert_eq!(entry.get("st").map(String::as_str), Some("completed"));
        *completions.entry(entry["r"].clone()).or_default() += 1;
    }
    assert_eq!(completions.len(), REQUESTS);
    assert!(
        completions.values().all(|&n| n == 1),
        "a request completed twice"
    );
    // Nothing was dead-lettered, and nothing is left in the stream or pending.
    assert_eq!(
        raw::<u64>(&client, "XLEN", vec![format!("{tag}:dead").into()]).await,
        0
    );
    assert_eq!(
        raw::<u64>(&client, "XLEN", vec![ready.as_str().into()]).await,
        0
    );
    let pending = pending_by_consumer(&client, &ready_key::<Kyc>(&config)).await;
    assert!(pending.values().all(|&n| n == 0), "{pending:?}");
    assert!(!pending.contains_key(&victim) || pending[&victim] == 0);
    // The survivors are still serving.
    for child in &mut workers.0[1..] {
        assert!(
            child.try_wait().unwrap().is_none(),
            "a surviving worker exited"
        );
    }
    println!(
        "crash: the killed worker held {lost} entries; {reattempted} vertices ran more than once"
    );
}

// ---------------------------------------------------------------------------------------------
// A 1,000-item for-each with a worker process killed mid-run.

#[node]
async fn list_items(count: u32) -> Vec<u32> {
    (0..count).collect()
}

/// Slow enough that the sweep outlasts the kill by far: 1,000 items over 3 workers of 16 slots
/// take over 0.6 s.
#[node]
async fn check_item(x: u32) -> u64 {
    tokio::time::sleep(Duration::from_millis(30)).await;
    u64::from(x) * 3
}

/// Counts and sums the items, checking they arrive in item order.
#[node]
async fn tally(values: Vec<u64>) -> Result<(u64, u64), NodeError> {
    if let Some(i) = (0..values.len()).find(|&i| values[i] != i as u64 * 3) {
        return Err(NodeError::permanent(format!("item {i} out of order")));
    }
    Ok((values.len() as u64, values.iter().sum()))
}

workflow! {
    /// A for-each over many items, gathered in order.
    pub(crate) Sweep = list_items -> each { check_item } => tally;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1000_item_for_each_survives_a_worker_process_killed_mid_run() {
    const ITEMS: u32 = 1000;
    let (_server, config, engine, client) = short_lease::<Sweep>("crash-each").await;
    let ready = ready_key::<Sweep>(&config);
    let tag = support::flow_tag(&config.prefix, Sweep::NAME);

    let mut workers = WorkerProcesses::spawn(3, &config);
    let id = engine.submit::<Sweep>(&ITEMS).await.expect("submit");
    let items_done = async || {
        let state = engine.status::<Sweep>(&id).await.expect("status");
        state
            .vertices
            .iter()
            .filter(|v| v.vertex.starts_with("check_item[") && v.status == VertexStatus::Done)
            .count()
    };
    wait_until(
        "a tenth of the items are done",
        Duration::from_secs(60),
        async || items_done().await >= ITEMS as usize / 10,
    )
    .await;
    let (victim, lost) = workers.kill_first_holding::<Sweep>(&client, &config).await;

    // The request completes with every item, in order (`tally` checks the order).
    let expected_sum = 3 * u64::from(ITEMS) * u64::from(ITEMS - 1) / 2;
    match engine
        .wait::<Sweep>(&id, Duration::from_secs(90))
        .await
        .expect("wait")
    {
        RequestOutcome::Completed(output) => {
            assert_eq!(output, (u64::from(ITEMS), expected_sum));
        }
        other => panic!("the sweep did not complete: {other:?}"),
    }

    // Every item is done, and the gather ran once, after exactly one arrival per item.
    let state = engine.status::<Sweep>(&id).await.expect("state");
    assert_eq!(state.status, RequestStatus::Completed);
    let items: Vec<_> = state
        .vertices
        .iter()
        .filter(|v| v.vertex.starts_with("check_item["))
        .collect();
    assert_eq!(items.len(), ITEMS as usize);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item.vertex, format!("check_item[{i}]"));
        assert_eq!(item.status, VertexStatus::Done, "{item:?}");
        assert!(item.last_failure.is_none(), "{item:?}");
    }
    let reattempted = items.iter().filter(|v| v.attempts > 1).count();
    let gather = state.vertices.iter().find(|v| v.vertex == "tally").unwrap();
    assert_eq!(gather.status, VertexStatus::Done);
    assert_eq!(gather.attempts, 1, "{gather:?}");
    // The gather's fields are named by its vertex number in the plan (the state lists every
    // item before it).
    let tally_vertex = Sweep::local_plan()
        .vertices()
        .iter()
        .position(|v| &**v.path() == "tally")
        .unwrap();
    let counted = fields(
        &client,
        &config,
        Sweep::NAME,
        &id,
        &[format!("n:{tally_vertex}"), format!("c:{tally_vertex}")],
    )
    .await;
    let all = Some(ITEMS.to_string());
    assert_eq!(
        counted,
        [all.clone(), all],
        "arrivals and size of the gather"
    );
    // Nothing was dead-lettered, and nothing is left in the stream or pending.
    assert_eq!(
        raw::<u64>(&client, "XLEN", vec![format!("{tag}:dead").into()]).await,
        0
    );
    assert_eq!(
        raw::<u64>(&client, "XLEN", vec![ready.as_str().into()]).await,
        0
    );
    let pending = pending_by_consumer(&client, &ready_key::<Sweep>(&config)).await;
    assert!(pending.values().all(|&n| n == 0), "{pending:?}");
    assert!(!pending.contains_key(&victim) || pending[&victim] == 0);
    println!(
        "crash-each: the killed worker held {lost} entries; {reattempted} items ran more than once"
    );
}

// ---------------------------------------------------------------------------------------------
// A bulk retry of 500 failed requests with a worker process killed while it runs them.

#[node]
async fn prepare(user: String) -> String {
    user
}

#[node]
async fn steady_side(user: String) -> String {
    format!("{user}/steady")
}

/// Fails for good on its first attempt ever, and succeeds on any later one: the attempts of a
/// retried request count on, so its retry succeeds (in whichever worker process runs it).
#[node]
async fn first_fails(ctx: Context, user: String) -> Result<String, NodeError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    if ctx.attempt() == 1 {
        return Err(NodeError::permanent("the first attempt fails"));
    }
    Ok(format!("{user}/mended"))
}

#[node]
async fn settle_both(steady: String, mended: String) -> String {
    format!("{steady}+{mended}")
}

workflow! {
    /// A diamond whose one branch fails the first time.
    pub(crate) Mending = prepare -> [steady_side, first_fails] => settle_both;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_retry_survives_a_worker_process_killed_mid_run() {
    use goflow::request::{Control, RequestQuery, Selection};
    const REQUESTS: usize = 500;
    let (_server, config, engine, client) = short_lease::<Mending>("crash-retry").await;
    let ready = ready_key::<Mending>(&config);
    let tag = support::flow_tag(&config.prefix, Mending::NAME);
    let mut workers = WorkerProcesses::spawn(3, &config);
    let users: Vec<String> = (0..REQUESTS).map(|i| format!("user-{i:03}")).collect();
    let mut ids = Vec::with_capacity(REQUESTS);
    for user in &users {
        ids.push(engine.submit::<Mending>(user).await.expect("submit"));
    }
    // Every request fails at `first_fails`; note whose `steady_side` had completed by then
    // (the others' was cancelled, and reruns).
    let mut steady_done = Vec::with_capacity(REQUESTS);
    for id in &ids {
        match engine.wait::<Mending>(id, LIMIT).await.expect("wait") {
            RequestOutcome::Failed(failure) => assert_eq!(failure.vertex, "first_fails"),
            other => panic!("request {id} did not fail: {other:?}"),
        }
        let state = engine.status::<Mending>(id).await.expect("state");
        let steady = &state.vertices[vertex_index(&state, "steady_side")];
        steady_done.push(steady.status == VertexStatus::Done);
    }

    // The bulk retry, and a worker killed while it holds retried entries.
    let failed = Selection::matching(RequestQuery::new().status(RequestStatus::Failed));
    let (outcome, (victim, lost)) = tokio::join!(
        engine.control_all::<Mending>(&failed, Control::Retry),
        workers.kill_first_holding::<Mending>(&client, &config),
    );
    let outcome = outcome.expect("the bulk retry");
    assert_eq!(
        (outcome.matched, outcome.applied),
        (REQUESTS, REQUESTS),
        "{outcome:?}"
    );

    // Every request completes, once, with its own output; what had completed did not run again.
    let deadline = Instant::now() + Duration::from_secs(90);
    for (id, user) in ids.iter().zip(&users) {
        let left = deadline.saturating_duration_since(Instant::now());
        match engine.wait::<Mending>(id, left).await.expect("wait") {
            RequestOutcome::Completed(output) => {
                assert_eq!(output, format!("{user}/steady+{user}/mended"), "{id}");
            }
            other => panic!("request {id} ({user}) did not complete: {other:?}"),
        }
    }
    let mut reattempted = 0;
    for (id, steady_was_done) in ids.iter().zip(&steady_done) {
        let state = engine.status::<Mending>(id).await.expect("state");
        assert_eq!((state.status, state.retries), (RequestStatus::Completed, 1));
        for vertex in &state.vertices {
            assert_eq!(vertex.status, VertexStatus::Done, "{id}: {vertex:?}");
        }
        let attempts = |name: &str| state.vertices[vertex_index(&state, name)].attempts;
        assert_eq!(attempts("prepare"), 1, "{id}: {state:?}");
        if *steady_was_done {
            assert_eq!(
                attempts("steady_side"),
                1,
                "{id}: a completed vertex ran again"
            );
        }
        assert!(attempts("first_fails") >= 2, "{id}: {state:?}");
        reattempted += usize::from(attempts("first_fails") > 2);
        // The join counted each parent once.
        let join = vertex_index(&state, "settle_both");
        let counted = fields(&client, &config, Mending::NAME, id, &[format!("n:{join}")]).await;
        assert_eq!(counted, [Some("2".to_owned())], "{id}");
    }
    // Each request ended twice: failed, then completed after its retry.
    let mut ends: HashMap<String, Vec<String>> = HashMap::new();
    for (_, entry) in support::stream_entries(&client, &format!("{tag}:done")).await {
        ends.entry(entry["r"].clone())
            .or_default()
            .push(entry["st"].clone());
    }
    assert_eq!(ends.len(), REQUESTS);
    for (id, statuses) in &ends {
        assert_eq!(statuses, &["failed", "completed"], "{id}");
    }
    // One dead letter per first failure, and nothing left in the stream or pending.
    assert_eq!(
        raw::<u64>(&client, "XLEN", vec![format!("{tag}:dead").into()]).await,
        REQUESTS as u64
    );
    assert_eq!(
        raw::<u64>(&client, "XLEN", vec![ready.as_str().into()]).await,
        0
    );
    let pending = pending_by_consumer(&client, &ready).await;
    assert!(pending.values().all(|&n| n == 0), "{pending:?}");
    let kept = steady_done.iter().filter(|done| **done).count();
    println!(
        "crash-retry: the killed worker ({victim}) held {lost} entries; {kept} completed \
         branches kept; {reattempted} retried vertices ran more than once more"
    );
}
