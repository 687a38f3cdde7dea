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

/// A Redis engine with the suite's workflows registered by `register`, under a prefix of its
/// own, and one in-process worker.
pub struct RedisHarness {
    pub engine: RedisEngine,
    worker: Option<(CancellationToken, JoinHandle<Result<(), goflow::Error>>)>,
}

impl RedisHarness {
    pub async fn start(test: &str, register: fn(RedisEngineBuilder) -> RedisEngineBuilder) -> Self {
        let builder = RedisEngine::builder(super::config(test));
        let engine = register(builder)
            .connect()
            .await
            .expect("connect to the test redis-server");
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(engine.worker(WORKER_CONCURRENCY).run(shutdown.clone()));
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
/// becomes `mod name` with the tests `embedded` and `redis`, whose bodies get
/// `engine: &impl Engine`. The Redis variant registers the workflows with the test file's own
/// `register_all`.
#[allow(unused_macros)]
macro_rules! conformance {
    ($(
        $(#[doc = $doc:literal])*
        fn $name:ident($engine:ident) $body:block
    )*) => {$(
        $(#[doc = $doc])*
        mod $name {
            use super::*;
            use $crate::support::engines::{embedded_engine, patiently, RedisHarness};

            async fn case($engine: &impl goflow::Engine) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                patiently(case(&embedded_engine())).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                let harness = RedisHarness::start(stringify!($name), super::register_all).await;
                patiently(case(&harness.engine)).await;
                harness.finish().await;
            }
        }
    )*};
}

#[allow(unused_imports)]
pub(crate) use conformance;
