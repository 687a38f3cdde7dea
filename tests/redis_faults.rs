//! The Redis engine under faults: a worker process killed mid-run, entries delivered twice, a
//! Redis restart that loses every key, and failing nodes (retries through the delayed set,
//! permanent errors, timeouts, panics, dead letters).
//!
//! The crash test runs its workers as separate processes: this test binary started again with
//! only [`worker_process_entry`] selected and the environment variables below set.

mod support;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fred::prelude::{Client, Value};
use goflow::__private::BuildPlan;
use goflow::prelude::*;
use goflow::redis::{RedisConfig, RedisEngine, RedisEngineBuilder};
use goflow::request::{Failure, RequestFailure, RequestOutcome, RequestStatus, VertexStatus};
use goflow::{Engine, RequestId};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use support::{pending_by_consumer, raw, raw_client, vertex_index, wait_until, RedisServer};

/// The server a worker process connects to.
const WORKER_URL: &str = "GOFLOW_TEST_WORKER_URL";
/// The key prefix a worker process uses.
const WORKER_PREFIX: &str = "GOFLOW_TEST_WORKER_PREFIX";
/// The lease (ms) a worker process uses.
const WORKER_LEASE_MS: &str = "GOFLOW_TEST_WORKER_LEASE_MS";

/// How long any single wait of these tests may take before the test fails.
const LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Executions and gates, per request and node, in this process.

/// How many times each node started, per request.
static RUNS: Mutex<Vec<(String, &'static str)>> = Mutex::new(Vec::new());
/// Gates that are closed: the node waits at its start until the gate opens.
static CLOSED: Mutex<Vec<(String, &'static str)>> = Mutex::new(Vec::new());

fn record_run(ctx: &Context, node: &'static str) {
    RUNS.lock()
        .unwrap()
        .push((ctx.request_id().as_str().to_owned(), node));
}

fn runs(id: &RequestId, node: &str) -> usize {
    RUNS.lock()
        .unwrap()
        .iter()
        .filter(|(r, n)| r == id.as_str() && *n == node)
        .count()
}

fn close_gate(id: &RequestId, node: &'static str) {
    CLOSED.lock().unwrap().push((id.as_str().to_owned(), node));
}

fn open_gate(id: &RequestId, node: &str) {
    CLOSED
        .lock()
        .unwrap()
        .retain(|(r, n)| !(r == id.as_str() && *n == node));
}

/// Waits while this node's gate is closed for the context's request.
async fn pass_gate(ctx: &Context, node: &str) {
    let closed = || {
        CLOSED
            .lock()
            .unwrap()
            .iter()
            .any(|(r, n)| r == ctx.request_id().as_str() && *n == node)
    };
    while closed() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// KYC, with a little async work in every node so that a kill lands mid-run.

/// A user's KYC image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Image {
    /// Whose it is.
    pub user: String,
    /// Where it is.
    pub url: String,
}

/// Faces found on an image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Detection {
    /// Whose image it was.
    pub user: String,
    /// How many faces.
    pub faces: u32,
}

/// How well an image matches the user's profile.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Match {
    /// Whose image it was.
    pub user: String,
    /// The score, 0 to 99.
    pub score: u32,
}

fn faces(user: &str) -> u32 {
    (user.len() % 3) as u32
}

fn score_of(user: &str) -> u32 {
    user.bytes().map(u32::from).sum::<u32>() % 100
}

/// The output a KYC request for `user` must have.
fn expected(user: &str) -> String {
    format!("{user}:{}:{}", faces(user), score_of(user))
}

#[node]
async fn get_image(ctx: Context, user: String) -> Image {
    record_run(&ctx, "get_image");
    tokio::time::sleep(Duration::from_millis(1)).await;
    Image {
        url: format!("s3://kyc/{user}.jpg"),
        user,
    }
}

#[node]
async fn detect(ctx: Context, image: Image) -> Detection {
    record_run(&ctx, "detect");
    pass_gate(&ctx, "detect").await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    Detection {
        faces: faces(&image.user),
        user: image.user,
    }
}

#[node]
async fn score(ctx: Context, image: Image) -> Match {
    record_run(&ctx, "score");
    pass_gate(&ctx, "score").await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    Match {
        score: score_of(&image.user),
        user: image.user,
    }
}

#[node]
async fn verdict(ctx: Context, detection: Detection, matched: Match) -> Result<String, NodeError> {
    record_run(&ctx, "verdict");
    tokio::time::sleep(Duration::from_millis(1)).await;
    if detection.user != matched.user {
        return Err(NodeError::permanent("inputs of different users"));
    }
    Ok(format!(
        "{}:{}:{}",
        detection.user, detection.faces, matched.score
    ))
}

workflow! {
    /// KYC: an image, face detection and matching in parallel, and a verdict joining both.
    pub Kyc = get_image -> [detect, score] => verdict;
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// An engine with `W` registered and a worker of it running in this process.
struct Running {
    engine: RedisEngine,
    shutdown: CancellationToken,
    worker: JoinHandle<Result<(), goflow::Error>>,
}

impl Running {
    async fn start(config: RedisConfig, register: fn(RedisConfig) -> RedisEngineBuilder) -> Self {
        let engine = register(config).connect().await.expect("connect");
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(engine.worker(16).run(shutdown.clone()));
        Self {
            engine,
            shutdown,
            worker,
        }
    }

    /// Stops the worker and checks that it ended cleanly.
    async fn finish(self) {
        self.shutdown.cancel();
        tokio::time::timeout(LIMIT, self.worker)
            .await
            .expect("the worker stops")
            .expect("the worker task did not panic")
            .expect("the worker ended without error");
    }
}

fn kyc(config: RedisConfig) -> RedisEngineBuilder {
    RedisEngine::builder(config).register::<Kyc>()
}

fn ready_key(config: &RedisConfig, flow: &str) -> String {
    format!("{}:ready", support::flow_tag(&config.prefix, flow))
}

/// Adds a ready-stream entry for `vertex` of request `id` by hand, as a redelivery would.
async fn add_entry(client: &Client, stream: &str, id: &RequestId, vertex: usize) -> String {
    raw(
        client,
        "XADD",
        vec![
            stream.into(),
            "*".into(),
            "r".into(),
            id.as_str().into(),
            "v".into(),
            vertex.to_string().into(),
            "tp".into(),
            "".into(),
        ],
    )
    .await
}

/// Waits until the stream entry `entry` has been handled (acknowledged entries are deleted).
async fn wait_handled(client: &Client, stream: &str, entry: &str) {
    wait_until(
        &format!("entry {entry} of {stream} is handled"),
        LIMIT,
        async || {
            let left: Value = raw(
                client,
                "XRANGE",
                vec![stream.into(), entry.into(), entry.into()],
            )
            .await;
            left.into_array().is_empty()
        },
    )
    .await;
}

async fn completed<W: Workflow>(engine: &RedisEngine, id: &RequestId) -> W::Output
where
    W::Output: std::fmt::Debug,
{
    support::completed::<W>(engine, id, LIMIT).await
}

/// Asserts how many attempts each vertex of request `id` started, by path.
async fn assert_attempts<W: Workflow>(engine: &RedisEngine, id: &RequestId, want: &[(&str, u32)]) {
    let state = engine.status::<W>(id).await.expect("status");
    for (path, attempts) in want {
        let vertex = &state.vertices[vertex_index(&state, path)];
        assert_eq!(vertex.attempts, *attempts, "{path}: {state:?}");
    }
}

/// Submits `input` to a worker process that the workflow kills, waits for it to die, and
/// starts another in its place, which takes the entry over after its lease.
async fn outlive_a_worker<W: Workflow>(
    engine: &RedisEngine,
    config: &RedisConfig,
    input: &W::Input,
) -> (WorkerProcesses, RequestId) {
    let mut workers = WorkerProcesses::spawn(1, config);
    let id = engine.submit::<W>(input).await.unwrap();
    wait_until("the worker dies", LIMIT, async || {
        workers.0[0].try_wait().unwrap().is_some()
    })
    .await;
    workers.0[0] = worker_process(config);
    (workers, id)
}

async fn failed<W: Workflow>(engine: &RedisEngine, id: &RequestId) -> RequestFailure
where
    W::Output: std::fmt::Debug,
{
    match engine.wait::<W>(id, LIMIT).await.expect("wait") {
        RequestOutcome::Failed(failure) => failure,
        other => panic!("request {id} did not fail: {other:?}"),
    }
}

/// A request's raw state fields (`HMGET`), for counters the reported state leaves out.
async fn fields(
    client: &Client,
    config: &RedisConfig,
    flow: &str,
    id: &RequestId,
    names: &[String],
) -> Vec<Option<String>> {
    let key = format!("{}:req:{id}", support::flow_tag(&config.prefix, flow));
    let mut args: Vec<Value> = vec![key.into()];
    args.extend(names.iter().map(|n| Value::from(n.as_str())));
    let reply: Value = raw(client, "HMGET", args).await;
    reply.into_array().iter().map(Value::as_string).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. A worker process killed mid-run.

/// Worker processes that are killed when dropped, so that a failing test leaves none behind.
struct WorkerProcesses(Vec<Child>);

impl WorkerProcesses {
    fn spawn(count: usize, config: &RedisConfig) -> Self {
        Self((0..count).map(|_| worker_process(config)).collect())
    }

    /// SIGKILLs the first worker once it holds entries of `flow` (read or handed off); returns
    /// its consumer name and how many entries it held when it died (asserted above zero).
    async fn kill_first_holding(
        &mut self,
        client: &Client,
        config: &RedisConfig,
        flow: &str,
    ) -> (String, u64) {
        let victim_tag = format!("-{}-", self.0[0].id());
        let held_by_victim = async || {
            pending_by_consumer(client, &ready_key(config, flow))
                .await
                .into_iter()
                .find(|(consumer, _)| consumer.contains(&victim_tag))
        };
        wait_until("the victim holds entries", LIMIT, async || {
            held_by_victim().await.is_some_and(|(_, held)| held > 0)
        })
        .await;
        self.0[0].kill().expect("SIGKILL the worker");
        self.0[0].wait().expect("reap the worker");
        let (victim, lost) = held_by_victim().await.expect("the victim's consumer");
        assert!(lost > 0, "the kill landed while the worker held entries");
        (victim, lost)
    }
}

/// Starts this test binary again as a worker process of `config`'s server and prefix.
fn worker_process(config: &RedisConfig) -> Child {
    Command::new(std::env::current_exe().expect("the test binary's path"))
        .args([
            "--exact",
            "worker_process_entry",
            "--nocapture",
            "--include-ignored",
        ])
        .env(WORKER_URL, &config.url)
        .env(WORKER_PREFIX, &config.prefix)
        .env(WORKER_LEASE_MS, config.lease.as_millis().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a worker process")
}

impl Drop for WorkerProcesses {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Not a test: the body of the worker processes of
/// [`kyc_flows_survive_a_worker_process_killed_mid_run`]. Runs a KYC worker until killed when
/// the environment says where; returns at once otherwise.
#[test]
#[ignore = "a worker process started by `kyc_flows_survive_a_worker_process_killed_mid_run`"]
fn worker_process_entry() {
    let (Ok(url), Ok(prefix)) = (std::env::var(WORKER_URL), std::env::var(WORKER_PREFIX)) else {
        return;
    };
    let lease = std::env::var(WORKER_LEASE_MS)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(1), Duration::from_millis);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        // Never outlive the test: a worker whose parent is gone exits.
        let parent = std::os::unix::process::parent_id();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if std::os::unix::process::parent_id() != parent {
                    std::process::exit(0);
                }
            }
        });
        let mut config = RedisConfig::new(url);
        config.prefix = prefix;
        config.lease = lease;
        config.retry_poll = Duration::from_millis(10);
        let engine = kyc(config)
            .register::<Poison>()
            .register::<Sweep>()
            .register::<CrashOnce>()
            .register::<CrashInDiamond>()
            .register::<StallThenHold>()
            .connect()
            .await
            .expect("worker connects");
        engine
            .worker(16)
            .run(CancellationToken::new())
            .await
            .expect("worker runs");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyc_flows_survive_a_worker_process_killed_mid_run() {
    const REQUESTS: usize = 2000;
    let server = RedisServer::start();
    let mut config = support::config_at(&server.url(), "crash");
    config.lease = Duration::from_secs(1);
    let engine = kyc(config.clone()).connect().await.expect("connect");
    let client = raw_client(&config.url).await;
    let ready = ready_key(&config, Kyc::NAME);
    let tag = support::flow_tag(&config.prefix, Kyc::NAME);

    let mut workers = WorkerProcesses::spawn(3, &config);
    let users: Vec<String> = (0..REQUESTS).map(|i| format!("user-{i:04}")).collect();
    let mut ids = Vec::with_capacity(REQUESTS);
    for user in &users {
        ids.push(engine.submit::<Kyc>(user).await.expect("submit"));
    }

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
    let (victim, lost) = workers
        .kill_first_holding(&client, &config, Kyc::NAME)
        .await;

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
    let pending = pending_by_consumer(&client, &ready_key(&config, Kyc::NAME)).await;
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
// 1b. A 1,000-item for-each with a worker process killed mid-run.

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
    pub Sweep = list_items -> each { check_item } => tally;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1000_item_for_each_survives_a_worker_process_killed_mid_run() {
    const ITEMS: u32 = 1000;
    let (_server, config, engine, client) = short_lease::<Sweep>("crash-each").await;
    let ready = ready_key(&config, Sweep::NAME);
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
    let (victim, lost) = workers
        .kill_first_holding(&client, &config, Sweep::NAME)
        .await;

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
    let pending = pending_by_consumer(&client, &ready_key(&config, Sweep::NAME)).await;
    assert!(pending.values().all(|&n| n == 0), "{pending:?}");
    assert!(!pending.contains_key(&victim) || pending[&victim] == 0);
    println!(
        "crash-each: the killed worker held {lost} entries; {reattempted} items ran more than once"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Redelivery: a join's parent delivered twice, and duplicates after completion.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_delivered_twice_while_running_fires_its_join_once() {
    let (_server, config) = support::own_server("dup-running");
    let client = raw_client(&config.url).await;
    let ready = ready_key(&config, Kyc::NAME);
    let running = Running::start(config, kyc).await;
    let engine = &running.engine;

    let id = RequestId::generate();
    close_gate(&id, "detect");
    assert!(engine
        .submit_as::<Kyc>(id.clone(), &"alice".into())
        .await
        .unwrap());
    wait_until("detect starts", LIMIT, async || runs(&id, "detect") == 1).await;
    let state = engine.status::<Kyc>(&id).await.unwrap();
    let detect_at = vertex_index(&state, "detect");
    assert_eq!(state.vertices[detect_at].status, VertexStatus::Running);

    // A second delivery of the running parent: it starts too (at least once).
    add_entry(&client, &ready, &id, detect_at).await;
    wait_until("the duplicate of detect starts", LIMIT, async || {
        runs(&id, "detect") == 2
    })
    .await;
    open_gate(&id, "detect");

    assert_eq!(completed::<Kyc>(engine, &id).await, expected("alice"));
    assert_eq!(runs(&id, "verdict"), 1, "the join ran once");
    assert_eq!(runs(&id, "score"), 1);
    let state = engine.status::<Kyc>(&id).await.unwrap();
    assert_eq!(state.vertices[detect_at].attempts, 2);
    let join = vertex_index(&state, "verdict");
    assert_eq!(state.vertices[join].attempts, 1);
    let arrivals = fields(
        &client,
        running.engine.config(),
        Kyc::NAME,
        &id,
        &[format!("n:{join}")],
    )
    .await;
    assert_eq!(
        arrivals,
        vec![Some("2".to_owned())],
        "each parent arrived once"
    );
    running.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_delivered_again_before_the_other_parent_finishes_does_not_fire_the_join() {
    let (_server, config) = support::own_server("dup-early");
    let client = raw_client(&config.url).await;
    let ready = ready_key(&config, Kyc::NAME);
    let running = Running::start(config, kyc).await;
    let engine = &running.engine;

    // `score` is held, so `verdict` lacks one input while `detect` is redelivered.
    let id = RequestId::generate();
    close_gate(&id, "score");
    engine
        .submit_as::<Kyc>(id.clone(), &"bob".into())
        .await
        .unwrap();
    let mut detect_at = 0;
    wait_until("detect is done", LIMIT, async || {
        let state = engine.status::<Kyc>(&id).await.unwrap();
        detect_at = vertex_index(&state, "detect");
        state.vertices[detect_at].status == VertexStatus::Done
    })
    .await;
    let entry = add_entry(&client, &ready, &id, detect_at).await;
    wait_handled(&client, &ready, &entry).await;

    let state = engine.status::<Kyc>(&id).await.unwrap();
    let join = vertex_index(&state, "verdict");
    assert_eq!(
        state.vertices[join].status,
        VertexStatus::Pending,
        "{state:?}"
    );
    assert_eq!(
        state.vertices[detect_at].attempts, 1,
        "a done vertex is not started again"
    );
    assert_eq!(runs(&id, "detect"), 1);
    assert_eq!(runs(&id, "verdict"), 0);

    open_gate(&id, "score");
    assert_eq!(completed::<Kyc>(engine, &id).await, expected("bob"));
    assert_eq!(runs(&id, "verdict"), 1);
    running.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_after_completion_change_nothing() {
    let (_server, config) = support::own_server("dup-after");
    let client = raw_client(&config.url).await;
    let ready = ready_key(&config, Kyc::NAME);
    let running = Running::start(config, kyc).await;
    let engine = &running.engine;

    let id = engine.submit::<Kyc>(&"carol".into()).await.unwrap();
    assert_eq!(completed::<Kyc>(engine, &id).await, expected("carol"));
    let before = engine.status::<Kyc>(&id).await.unwrap();

    // Every vertex again, the join's parents and the exit vertex included.
    for vertex in 0..before.vertices.len() {
        let entry = add_entry(&client, &ready, &id, vertex).await;
        wait_handled(&client, &ready, &entry).await;
    }

    let after = engine.status::<Kyc>(&id).await.unwrap();
    assert_eq!(after.status, RequestStatus::Completed);
    assert_eq!(after.output, before.output, "the output is unchanged");
    assert_eq!(after.finished_at_ms, before.finished_at_ms);
    for (a, b) in after.vertices.iter().zip(&before.vertices) {
        assert_eq!(
            (a.status, a.attempts),
            (b.status, b.attempts),
            "{}",
            a.vertex
        );
        assert_eq!(a.attempts, 1, "{}", a.vertex);
    }
    for node in ["get_image", "detect", "score", "verdict"] {
        assert_eq!(runs(&id, node), 1, "{node}");
    }
    assert_eq!(completed::<Kyc>(engine, &id).await, expected("carol"));
    running.finish().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Redis restarts and loses everything.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_flows_complete_after_redis_restarts_without_its_data() {
    let mut server = RedisServer::start();
    let config = support::config_at(&server.url(), "restart");
    let running = Running::start(config, kyc).await;
    let engine = &running.engine;
    assert_eq!(
        engine.run::<Kyc>("dave".into()).await.unwrap(),
        expected("dave")
    );

    server.restart();

    // The worker recreates its consumer group, the scripts are loaded again, and the client
    // reconnects: some submission completes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut tries = 0;
    loop {
        tries += 1;
        let attempt = tokio::time::timeout(Duration::from_secs(5), async {
            let id = engine.submit::<Kyc>(&"erin".into()).await?;
            engine.wait::<Kyc>(&id, Duration::from_secs(3)).await
        })
        .await;
        match attempt {
            Ok(Ok(RequestOutcome::Completed(output))) => {
                assert_eq!(output, expected("erin"));
                break;
            }
            other => assert!(
                Instant::now() < deadline,
                "no flow completed within 20 s of the restart ({tries} tries); last: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // And the engine is fully back: flows run end to end, waking their waiters.
    for i in 0..10 {
        let user = format!("frank-{i}");
        let output = tokio::time::timeout(LIMIT, engine.run::<Kyc>(user.clone()))
            .await
            .expect("a flow completes after the restart")
            .unwrap();
        assert_eq!(output, expected(&user));
    }

    // Stops still reach the worker: it subscribed again on its new connection.
    let client = raw_client(&server.url()).await;
    let channel = format!("{}:control", engine.config().prefix);
    wait_until("the worker listens for stops again", LIMIT, async || {
        let reply: Vec<Value> = raw(
            &client,
            "PUBSUB",
            vec!["NUMSUB".into(), channel.as_str().into()],
        )
        .await;
        reply.get(1).and_then(Value::as_u64) == Some(1)
    })
    .await;
    let id = RequestId::generate();
    close_gate(&id, "detect");
    engine
        .submit_as::<Kyc>(id.clone(), &"grace".into())
        .await
        .unwrap();
    wait_until("detect starts", LIMIT, async || runs(&id, "detect") == 1).await;
    assert_eq!(
        engine.stop::<Kyc>(&id).await.unwrap(),
        RequestStatus::Stopped
    );
    // Its gate still closed, `detect` ends only by being cancelled, which acknowledges it.
    let ready = ready_key(engine.config(), Kyc::NAME);
    wait_until("the stopped attempt is cancelled", LIMIT, async || {
        pending_by_consumer(&client, &ready)
            .await
            .values()
            .all(|&n| n == 0)
    })
    .await;
    open_gate(&id, "detect");
    running.finish().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Retries, permanent errors, timeouts, panics and dead letters.

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

#[node]
async fn double(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "double");
    n * 2
}

workflow! {
    /// Succeeds on its third attempt.
    pub Flaky = flaky -> double;
    /// Fails permanently.
    pub Refuse = refuse -> double;
    /// Times out.
    pub Stall = stall -> double;
    /// Panics on odd input.
    pub Explode = explode -> double;
    /// Fails after its retry.
    pub Unavailable = unavailable -> double;
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
    pub RetryBeside = double -> [flaky_once, gated_twin] => add;
}

/// Both branches of a diamond ride on the entry of the vertex before them. The one that fails
/// lets go of the entry for its retry (which gets an entry of its own); the one still running
/// keeps it pending, and the join it hands on acknowledges it at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_branch_leaves_the_entry_to_the_branch_beside_it() {
    let (_server, config) = support::own_server("beside");
    let client = raw_client(&config.url).await;
    let ready = ready_key(&config, RetryBeside::NAME);
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

// ---------------------------------------------------------------------------------------------
// Lost deliveries and leases.

/// A server of the test's own whose leases last 1 s, an engine of it with `W` registered, and a
/// plain client (the server stops when the first value is dropped).
async fn short_lease<W: Workflow>(test: &str) -> (RedisServer, RedisConfig, RedisEngine, Client) {
    let server = RedisServer::start();
    let mut config = support::config_at(&server.url(), test);
    config.lease = Duration::from_secs(1);
    let engine = RedisEngine::builder(config.clone())
        .register::<W>()
        .connect()
        .await
        .expect("connect");
    let client = raw_client(&config.url).await;
    (server, config, engine, client)
}

/// A path of its own in the temporary directory, for the files worker processes and the test
/// signal each other with.
fn scratch_path(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "goflow-{test}-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ))
}

/// Kills the worker process running it when given 666.
#[node]
async fn poison(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "poison");
    if n == 666 {
        std::process::exit(101);
    }
    n
}

/// Runs for more than two leases of the test that uses it.
#[node]
async fn linger(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "linger");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    n + 1
}

/// Kills the worker process running it the first time, when the file at `path` does not
/// exist yet (it creates it); returns the path after that.
#[node]
async fn crash_once(ctx: Context, path: String) -> String {
    record_run(&ctx, "crash_once");
    if !std::path::Path::new(&path).exists() {
        std::fs::write(&path, b"crashed").expect("write the marker");
        std::process::exit(101);
    }
    path
}

#[node]
async fn pass_on(ctx: Context, path: String) -> String {
    record_run(&ctx, "pass_on");
    path
}

#[node]
async fn finish(path: String) -> String {
    path + "!"
}

/// Hangs in its first attempt (until its worker dies); returns its input after that.
#[node]
async fn hang_first(ctx: Context, path: String) -> String {
    if ctx.attempt() == 1 {
        std::future::pending::<()>().await;
    }
    path
}

/// Joins two paths; its first attempt marks `<a>.joining` and waits for `<a>.go` first.
#[node]
async fn both(ctx: Context, a: String, b: String) -> String {
    if ctx.attempt() == 1 {
        std::fs::write(format!("{a}.joining"), b"").expect("mark");
        while !std::path::Path::new(&format!("{a}.go")).exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    format!("{a}+{b}")
}

/// Waits in its first attempt until the file `release` appears in `dir` (marking `started`
/// and, before returning, `returned`); later attempts return at once.
#[node]
async fn stall_first(ctx: Context, dir: String) -> String {
    let dir_path = std::path::Path::new(&dir);
    if ctx.attempt() == 1 {
        std::fs::write(dir_path.join("started"), b"").expect("mark");
        while !dir_path.join("release").exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::write(dir_path.join("returned"), b"").expect("mark");
    }
    dir
}

/// Hangs in its first attempt (marking `holding` in `dir`), until its worker is killed.
#[node]
async fn hold_first(ctx: Context, dir: String) -> String {
    if ctx.attempt() == 1 {
        std::fs::write(std::path::Path::new(&dir).join("holding"), b"").expect("mark");
        std::future::pending::<()>().await;
    }
    dir
}

workflow! {
    /// Kills its worker on 666.
    pub Poison = poison -> double;
    /// Outlives its lease.
    pub Linger = linger -> double;
    /// A chain whose middle vertex kills its worker once, after the entry was moved on to it.
    pub CrashOnce = pass_on -> crash_once -> finish;
    /// A diamond whose branches run together: one kills its worker once, the other hangs
    /// in its first attempt.
    pub CrashInDiamond = pass_on -> [crash_once, hang_first] => both;
    /// A chain whose first vertex stalls and whose second hangs, each in its first attempt.
    pub StallThenHold = stall_first -> hold_first -> finish;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vertex_that_kills_every_worker_is_failed_as_lost_and_dead_lettered() {
    let (_server, config, engine, client) = short_lease::<Poison>("poison").await;
    let mut workers = WorkerProcesses::spawn(1, &config);

    // Each delivery kills its worker; a new worker takes the entry over after its lease.
    let id = engine.submit::<Poison>(&666).await.unwrap();
    let mut deaths = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = engine.status::<Poison>(&id).await.unwrap();
        if state.status.is_final() {
            break;
        }
        if workers.0[0].try_wait().unwrap().is_some() {
            deaths += 1;
            workers.0[0] = worker_process(&config);
        }
        assert!(
            Instant::now() < deadline && deaths <= 10,
            "the request did not fail within 60 s ({deaths} worker deaths): {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // `max_lost_deliveries` is 3: the fifth delivery fails the vertex instead of running it.
    let want = RequestFailure::new("poison", 5, Failure::Lost(4));
    assert_eq!(failed::<Poison>(&engine, &id).await, want);
    assert!((1..=4).contains(&deaths), "{deaths} worker deaths");
    let dead = format!("{}:dead", support::flow_tag(&config.prefix, Poison::NAME));
    let letters = support::stream_entries(&client, &dead).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].1["r"], id.as_str());
    let recorded: RequestFailure = serde_json::from_str(&letters[0].1["failure"]).unwrap();
    assert_eq!(recorded, want);

    // The last worker serves other requests.
    let output = tokio::time::timeout(LIMIT, engine.run::<Poison>(21))
        .await
        .expect("a harmless request completes")
        .unwrap();
    assert_eq!(output, 42);
}

/// A completion moves its entry on to the next vertex of a chain instead of adding one. When
/// the worker dies running that vertex, the worker that reclaims the entry runs the vertex it
/// carries (as a lost delivery), not the one it was added for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_moved_on_to_the_next_vertex_is_reclaimed_for_that_vertex() {
    let (_server, config, engine, client) = short_lease::<CrashOnce>("moved").await;
    let marker = scratch_path("moved");
    let path = marker.to_string_lossy().into_owned();
    // The worker dies in `crash_once`.
    let (_workers, id) = outlive_a_worker::<CrashOnce>(&engine, &config, &path).await;
    assert_eq!(
        completed::<CrashOnce>(&engine, &id).await,
        format!("{path}!")
    );
    let _ = std::fs::remove_file(&marker);

    let want = [("pass_on", 1), ("crash_once", 2), ("finish", 1)];
    assert_attempts::<CrashOnce>(&engine, &id, &want).await;
    // One entry carried the whole chain, and nothing is left of it.
    assert_one_entry_carried_it_all(&client, &ready_key(&config, CrashOnce::NAME)).await;
}

/// Asserts that `stream` got one entry in all, which is gone (acknowledged and deleted).
async fn assert_one_entry_carried_it_all(client: &Client, stream: &str) {
    assert_eq!(raw::<u64>(client, "XLEN", vec![stream.into()]).await, 0);
    assert!(
        pending_by_consumer(client, stream).await.is_empty(),
        "{stream}"
    );
    let info: Vec<fred::prelude::Value> =
        raw(client, "XINFO", vec!["STREAM".into(), stream.into()]).await;
    let entries_added = info
        .chunks(2)
        .find(|pair| pair[0].as_str().as_deref() == Some("entries-added"))
        .and_then(|pair| pair[1].as_u64());
    assert_eq!(entries_added, Some(1), "one entry carried the request");
}

/// A completion hands both branches of a diamond to its worker on its own entry, which then
/// carries the two at once. When the worker dies running them, the worker that reclaims the
/// entry runs both (as lost deliveries) at once, having reclaimed it once, and the join fires
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_carrying_both_branches_is_reclaimed_for_both() {
    let (_server, config, engine, client) = short_lease::<CrashInDiamond>("branches").await;
    let marker = scratch_path("branches");
    let path = marker.to_string_lossy().into_owned();
    let (_workers, id) = outlive_a_worker::<CrashInDiamond>(&engine, &config, &path).await;
    // The join runs on the entry too: reclaimed once, it was delivered twice in all (a
    // branch left behind would have kept it unrenewed, to be reclaimed again).
    let joining = format!("{path}.joining");
    wait_until("the join runs", LIMIT, async || {
        std::path::Path::new(&joining).exists()
    })
    .await;
    let ready = ready_key(&config, CrashInDiamond::NAME);
    let pending: Vec<Vec<fred::prelude::Value>> = raw(
        &client,
        "XPENDING",
        vec![
            ready.as_str().into(),
            "workers".into(),
            "-".into(),
            "+".into(),
            "10".into(),
        ],
    )
    .await;
    let deliveries: Vec<u64> = pending.iter().filter_map(|e| e.get(3)?.as_u64()).collect();
    assert_eq!(deliveries, vec![2], "{pending:?}");
    std::fs::write(format!("{path}.go"), b"").unwrap();
    assert_eq!(
        completed::<CrashInDiamond>(&engine, &id).await,
        format!("{path}+{path}")
    );
    for file in [marker.clone(), joining.into(), format!("{path}.go").into()] {
        let _ = std::fs::remove_file(file);
    }

    let want = [
        ("pass_on", 1),
        ("crash_once", 2),
        ("hang_first", 2),
        ("both", 1),
    ];
    assert_attempts::<CrashInDiamond>(&engine, &id, &want).await;
    assert_one_entry_carried_it_all(&client, &ready_key(&config, CrashInDiamond::NAME)).await;
}

/// A worker that stalls past its lease (stopped by SIGSTOP) loses its entry to another, which
/// runs the vertex and moves the entry on to the next one. When the stalled worker wakes and
/// finishes the first vertex too, its completion is a duplicate and must leave the entry
/// pending: the next vertex lives on it. Then the second worker dies, and the entry is
/// reclaimed for the vertex it carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_duplicate_leaves_a_moved_entry_pending() {
    let (_server, config, engine, client) = short_lease::<StallThenHold>("late").await;
    let ready = ready_key(&config, StallThenHold::NAME);
    let dir = scratch_path("late");
    std::fs::create_dir_all(&dir).unwrap();
    let marked = |name: &str| dir.join(name).exists();
    let signal = |sig: &str, child: &Child| {
        let status = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig}");
    };

    // Worker A starts `stall_first` and is stopped in it.
    let mut workers = WorkerProcesses::spawn(1, &config);
    let id = engine
        .submit::<StallThenHold>(&dir.to_string_lossy().into_owned())
        .await
        .unwrap();
    wait_until("A runs stall_first", LIMIT, async || marked("started")).await;
    signal("-STOP", &workers.0[0]);

    // Worker B reclaims the entry after its lease, runs `stall_first` again, and moves the
    // entry on to `hold_first`, which hangs.
    workers.0.push(worker_process(&config));
    wait_until("B runs hold_first", LIMIT, async || marked("holding")).await;

    // A wakes and finishes `stall_first`: a duplicate, which must not acknowledge the entry.
    std::fs::write(dir.join("release"), b"").unwrap();
    signal("-CONT", &workers.0[0]);
    wait_until("A's stall_first returns", LIMIT, async || {
        marked("returned")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pending = pending_by_consumer(&client, &ready).await;
    assert_eq!(
        pending.values().sum::<u64>(),
        1,
        "the moved entry is pending: {pending:?}"
    );

    // B dies; A reclaims the entry for `hold_first` (its second attempt returns).
    workers.0[1].kill().unwrap();
    let output = completed::<StallThenHold>(&engine, &id).await;
    assert_eq!(output, format!("{}!", dir.to_string_lossy()));
    let want = [("stall_first", 2), ("hold_first", 2), ("finish", 1)];
    assert_attempts::<StallThenHold>(&engine, &id, &want).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_longer_than_the_lease_keeps_it_and_runs_once() {
    let (_server, mut config) = support::own_server("lease");
    config.lease = Duration::from_secs(1);
    let linger_flow = |config| RedisEngine::builder(config).register::<Linger>();
    // Two workers: the idle one would claim the entry if the busy one did not renew it.
    let first = Running::start(config.clone(), linger_flow).await;
    let second = Running::start(config, linger_flow).await;
    let engine = &first.engine;

    let id = engine.submit::<Linger>(&4).await.unwrap();
    assert_eq!(completed::<Linger>(engine, &id).await, 10);
    assert_eq!(runs(&id, "linger"), 1);
    let state = engine.status::<Linger>(&id).await.unwrap();
    assert!(state.vertices.iter().all(|v| v.attempts == 1), "{state:?}");
    second.finish().await;
    first.finish().await;
}
