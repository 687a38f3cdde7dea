//! The Redis engine under faults: a worker process killed mid-run, entries delivered twice, a
//! Redis restart that loses every key, failing nodes (retries through the delayed set,
//! permanent errors, timeouts, panics, dead letters), lost deliveries and leases, a vertex that
//! kills its workers beside innocent ones, Redis out of memory, and the consumers of workers
//! that are gone; and on a Redis Cluster, a worker process killed mid-run.
//!
//! One test binary, so that the tests share one `redis-server` (each test that kills or
//! restarts a server starts one of its own). The tests that kill workers run them as separate
//! processes: this test binary started again with only
//! [`processes::worker_process_entry`] selected and the environment variables of
//! [`processes`] set.
//!
//! This file holds what the modules share: the record of which node ran for which request,
//! the gates that hold a node at its start, the KYC workflow, and the helpers that start
//! engines and read a request's state.

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod consumers;
mod crash;
mod innocents;
mod leases;
mod overload;
mod processes;
mod redelivery;
mod restart;
mod retries;

use std::sync::Mutex;
use std::time::Duration;

use fred::prelude::{Client, Value};
use goflow::prelude::*;
use goflow::redis::{RedisConfig, RedisEngine, RedisEngineBuilder};
use goflow::request::{RequestFailure, RequestOutcome};
use goflow::{Engine, RequestId};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use support::{raw, raw_client, vertex_index, RedisServer};

/// How long any single wait of these tests may take before the test fails.
const LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Executions and gates, per request and node, in this process.

/// Which node started, for which request.
static RUNS: support::probe::Runs = support::probe::Runs::new();
/// Gates that are closed: the node waits at its start until the gate opens.
static CLOSED: Mutex<Vec<(String, &'static str)>> = Mutex::new(Vec::new());

fn record_run(ctx: &Context, node: &'static str) {
    RUNS.record(ctx, node);
}

fn runs(id: &RequestId, node: &str) -> usize {
    RUNS.count(id, node)
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

/// The last vertex of several small workflows (of [`retries`] and [`leases`]).
#[node]
async fn double(ctx: Context, n: u32) -> u32 {
    record_run(&ctx, "double");
    n * 2
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

fn ready_key<W: Workflow>(config: &RedisConfig) -> String {
    support::ready_stream::<W>(&config.prefix)
}

async fn completed<W: Workflow>(engine: &RedisEngine, id: &RequestId) -> W::Output
where
    W::Output: std::fmt::Debug,
{
    support::completed::<W>(engine, id, LIMIT).await
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

/// Asserts how many attempts each vertex of request `id` started, by path.
async fn assert_attempts<W: Workflow>(engine: &RedisEngine, id: &RequestId, want: &[(&str, u32)]) {
    let state = engine.status::<W>(id).await.expect("status");
    for (path, attempts) in want {
        let vertex = &state.vertices[vertex_index(&state, path)];
        assert_eq!(vertex.attempts, *attempts, "{path}: {state:?}");
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
