//! Both engines behind the one [`Engine`] interface, for suites that run every case on both:
//! the `conformance!` macro writes a case once, generic over the engine, and expands it into
//! an `embedded` and a `redis` test.

use std::future::Future;
use std::time::Duration;

use goflow::redis::{RedisEngine, RedisEngineBuilder};
use goflow::request::{RequestOutcome, RequestState};
use goflow::{EmbeddedEngine, Engine, RequestId, Workflow};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long one case may take before the test gives up on it: it only turns a hang into a
/// failure.
pub const CASE_PATIENCE: Duration = Duration::from_secs(120);

/// How long a case waits for one request to end.
pub const REQUEST_PATIENCE: Duration = Duration::from_secs(60);

/// Attempts one Redis worker runs at once: enough for the widest fan-out of the conformance
/// suite (3) to run in parallel, with room for a case's concurrent requests.
pub const WORKER_CONCURRENCY: usize = 4;

/// The final state of request `id` of `W`, which must end within [`REQUEST_PATIENCE`].
pub async fn final_state<W: Workflow>(engine: &impl Engine, id: &RequestId) -> RequestState {
    let outcome = engine
        .wait::<W>(id, REQUEST_PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("waiting for request `{id}` of `{}`: {e}", W::NAME));
    if let RequestOutcome::Pending(status) = outcome {
        panic!(
            "request `{id}` of `{}` still {status} after {REQUEST_PATIENCE:?}",
            W::NAME
        );
    }
    let state = engine.status::<W>(id).await.expect("status");
    assert!(state.status.is_final(), "{state:?}");
    state
}

/// Runs `case` on `engine`, failing the test if it takes longer than [`CASE_PATIENCE`].
pub async fn patiently(case: impl Future<Output = ()>) {
    tokio::time::timeout(CASE_PATIENCE, case)
        .await
        .unwrap_or_else(|_| panic!("the case did not end within {CASE_PATIENCE:?}"));
}

/// What a case can ask of either engine beyond the [`Engine`] interface: that everything a
/// request set going has come to rest, a positive signal to wait for instead of sleeping
/// before asserting that something did not happen.
pub trait Settle: Engine {
    /// Whether request `id` of workflow `flow`, which has ended, has nothing left in flight:
    /// on the embedded engine its executor has dropped every attempt by the time it ends; on
    /// Redis no entry of the flow is left in its ready stream, pending, or waiting in its
    /// delayed set, and its parked list is gone.
    fn settled(&self, flow: &str, id: &RequestId) -> impl Future<Output = bool> + Send;
}

impl Settle for EmbeddedEngine {
    async fn settled(&self, _flow: &str, _id: &RequestId) -> bool {
        true
    }
}

impl Settle for RedisEngine {
    async fn settled(&self, flow: &str, id: &RequestId) -> bool {
        let client = super::raw_client(&self.config().url).await;
        let tag = super::flow_tag(&self.config().prefix, flow);
        // Before a worker of the flow has started, its ready stream is not known: what it
        // holds cannot be told settled.
        let Some(ready) = super::ready_stream_named(&client, &self.config().prefix, flow).await
        else {
            return false;
        };
        let length: u64 = super::raw(&client, "XLEN", vec![ready.as_str().into()]).await;
        let pending = super::pending_by_consumer(&client, &ready).await;
        let delayed: u64 =
            super::raw(&client, "ZCARD", vec![format!("{tag}:delayed").into()]).await;
        let parked: u64 =
            super::raw(&client, "EXISTS", vec![format!("{tag}:parked:{id}").into()]).await;
        length == 0 && pending.values().all(|&n| n == 0) && delayed == 0 && parked == 0
    }
}

/// Waits until request `id` of `W` has [settled](Settle::settled).
pub async fn settled<W: Workflow>(engine: &impl Settle, id: &RequestId) {
    super::wait_until(
        &format!("request `{id}` of `{}` settles", W::NAME),
        REQUEST_PATIENCE,
        async || engine.settled(W::NAME, id).await,
    )
    .await;
}

/// Polls the state of request `id` of `W` until `check` holds.
pub async fn until<W: Workflow>(
    engine: &impl Engine,
    id: &RequestId,
    what: &str,
    check: impl Fn(&RequestState) -> bool,
) -> RequestState {
    let mut last = None;
    super::wait_until(what, REQUEST_PATIENCE, async || {
        let state = engine.status::<W>(id).await.expect("status");
        let done = check(&state);
        last = Some(state);
        done
    })
    .await;
    last.expect("a state")
}

/// A Redis engine with the suite's workflows registered by `register`, under a prefix of its
/// own, and one in-process worker.
pub struct RedisHarness {
    pub engine: RedisEngine,
    worker: Option<(CancellationToken, JoinHandle<Result<(), goflow::Error>>)>,
}

impl RedisHarness {
    pub async fn start(test: &str, register: fn(RedisEngineBuilder) -> RedisEngineBuilder) -> Self {
        Self::start_with(test, register, WORKER_CONCURRENCY).await
    }

    /// [`start`](Self::start) with a worker running up to `concurrency` attempts at once.
    pub async fn start_with(
        test: &str,
        register: fn(RedisEngineBuilder) -> RedisEngineBuilder,
        concurrency: usize,
    ) -> Self {
        let nodes = vec![super::shared_url()];
        Self::start_at(super::config(test), &nodes, register, concurrency).await
    }

    /// [`start`](Self::start) with the workers running ahead (`RunAhead::Checked`).
    pub async fn running_ahead(
        test: &str,
        register: fn(RedisEngineBuilder) -> RedisEngineBuilder,
    ) -> Self {
        let nodes = vec![super::shared_url()];
        let mut config = super::config(test);
        config.run_ahead = goflow::redis::RunAhead::Checked;
        Self::start_at(config, &nodes, register, WORKER_CONCURRENCY).await
    }

    /// [`start`](Self::start) on the Redis Cluster shared by the tests of this binary.
    pub async fn on_cluster(
        test: &str,
        register: fn(RedisEngineBuilder) -> RedisEngineBuilder,
    ) -> Self {
        let nodes = super::cluster::shared().node_urls();
        Self::start_at(
            super::cluster_config(test),
            &nodes,
            register,
            WORKER_CONCURRENCY,
        )
        .await
    }

    /// [`start`](Self::start) with settings `config`, on the servers `nodes` (one, or each
    /// node of a cluster, where pub/sub subscriptions are counted per node).
    async fn start_at(
        config: goflow::redis::RedisConfig,
        nodes: &[String],
        register: fn(RedisEngineBuilder) -> RedisEngineBuilder,
        concurrency: usize,
    ) -> Self {
        let builder = RedisEngine::builder(config);
        let engine = register(builder)
            .connect()
            .await
            .expect("connect to the test redis-server");
        let mut node_clients = Vec::new();
        for node in nodes {
            node_clients.push(super::raw_client(node).await);
        }
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(engine.worker(concurrency).run(shutdown.clone()));
        // Ready once its consumer groups exist (the hooks' ones first) and it listens for the
        // ends of requests (which reach it over pub/sub): a case may stop a request at once.
        let client = super::raw_client(&engine.config().url).await;
        let prefix = engine.config().prefix.clone();
        let flows: Vec<&str> = engine.flows().collect();
        super::wait_until("the worker is ready", REQUEST_PATIENCE, async || {
            for flow in &flows {
                let Some(ready) = super::ready_stream_named(&client, &prefix, flow).await else {
                    return false;
                };
                let groups: fred::prelude::Value =
                    super::raw_or_nil(&client, "XINFO", vec!["GROUPS".into(), ready.into()]).await;
                if groups.into_array().is_empty() {
                    return false;
                }
            }
            let channel = format!("{prefix}:control");
            let mut subscribers = 0;
            for node in &node_clients {
                let reply: Vec<fred::prelude::Value> = super::raw(
                    node,
                    "PUBSUB",
                    vec!["NUMSUB".into(), channel.as_str().into()],
                )
                .await;
                subscribers += reply
                    .get(1)
                    .and_then(fred::prelude::Value::as_u64)
                    .unwrap_or(0);
            }
            subscribers >= 1
        })
        .await;
        for node in node_clients {
            let _ = fred::prelude::ClientLike::quit(&node).await;
        }
        Self {
            engine,
            worker: Some((shutdown, worker)),
        }
    }

    /// Stops the worker (letting its running attempts finish) and checks that it ended well.
    pub async fn finish(mut self) {
        if let Some((shutdown, worker)) = self.worker.take() {
            shutdown.cancel();
            tokio::time::timeout(REQUEST_PATIENCE, worker)
                .await
                .expect("the worker did not stop")
                .expect("the worker task panicked")
                .expect("the worker failed");
        }
    }
}

/// The embedded engine a case runs on.
pub fn embedded_engine() -> EmbeddedEngine {
    EmbeddedEngine::new()
}

/// Writes each case once and runs it on both engines: `conformance! { fn name(engine) { .. } }`
/// becomes `mod name` with the tests `embedded`, `redis` and `redis_cluster` (the Redis engine
/// on a local Redis Cluster of 3 primaries, shared by the binary's tests), whose bodies get
/// `engine: &impl Settle` (an [`Engine`] that can also tell when a request has settled).
/// The Redis variant registers the workflows with the test file's own `register_all`; a
/// leading `engines(embedded = f, redis = g);` names other functions (`f() -> EmbeddedEngine`,
/// `g(RedisEngineBuilder) -> RedisEngineBuilder`), for a suite whose engines need more than
/// the workflows registered (finish hooks, say). A leading `run_ahead;` adds the test
/// `redis_run_ahead`: the Redis engine with its workers running ahead (`RunAhead::Checked`),
/// for the cases whose
/// promises hold with it (not those of a pause, which parks only from a worker's next record
/// on).
#[allow(unused_macros)]
macro_rules! conformance {
    (@ahead yes, $name:ident, $redis:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn redis_run_ahead() {
            let harness = RedisHarness::running_ahead(stringify!($name), $redis).await;
            patiently(case(&harness.engine)).await;
            harness.finish().await;
        }
    };
    (@ahead no, $name:ident, $redis:path) => {};
    (@cases $ahead:ident, $embedded:path, $redis:path; $(
        $(#[doc = $doc:literal])*
        fn $name:ident($engine:ident) $body:block
    )*) => {$(
        $(#[doc = $doc])*
        mod $name {
            use super::*;
            #[allow(unused_imports)]
            use $crate::support::engines::{patiently, RedisHarness};

            async fn case($engine: &impl $crate::support::engines::Settle) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                patiently(case(&$embedded())).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                let harness = RedisHarness::start(stringify!($name), $redis).await;
                patiently(case(&harness.engine)).await;
                harness.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_cluster() {
                let harness = RedisHarness::on_cluster(stringify!($name), $redis).await;
                patiently(case(&harness.engine)).await;
                harness.finish().await;
            }

            $crate::support::engines::conformance!(@ahead $ahead, $name, $redis);
        }
    )*};
    (engines(embedded = $embedded:path, redis = $redis:path); $($cases:tt)*) => {
        $crate::support::engines::conformance! { @cases no, $embedded, $redis; $($cases)* }
    };
    (run_ahead; engines(embedded = $embedded:path, redis = $redis:path); $($cases:tt)*) => {
        $crate::support::engines::conformance! { @cases yes, $embedded, $redis; $($cases)* }
    };
    (run_ahead; $($cases:tt)*) => {
        $crate::support::engines::conformance! {
            @cases yes, $crate::support::engines::embedded_engine, super::register_all;
            $($cases)*
        }
    };
    ($($cases:tt)*) => {
        $crate::support::engines::conformance! {
            @cases no, $crate::support::engines::embedded_engine, super::register_all;
            $($cases)*
        }
    };
}

#[allow(unused_imports)]
pub(crate) use conformance;
