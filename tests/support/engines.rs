//! The two engines behind one interface, for suites that run every case on both: the
//! `conformance!` macro writes a case once and expands it into an `embedded` and a `redis`
//! test.

use std::sync::Arc;

use goflow::redis::{EngineError, RedisEngine, RedisEngineBuilder, RequestOutcome};
use goflow::{Embedded, Error, MsgPack, RequestId, RequestState, Transition, Workflow};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use std::time::Duration;

/// How long one request may take on the Redis engine before the test gives up on it (instead
/// of `RedisEngine::run`'s hour-long waits).
pub const REQUEST_PATIENCE: Duration = Duration::from_secs(60);

/// Attempts one Redis worker runs at once: enough for the widest fan-out of the conformance
/// suite (3) to run in parallel.
pub const WORKER_CONCURRENCY: usize = 4;

/// An engine a case runs its requests on. Cheap to clone into tasks.
#[derive(Clone)]
pub enum Engine {
    Embedded(Arc<Embedded>),
    Redis(RedisEngine),
}

impl Engine {
    /// Runs one request of `W` to its end under a fresh request id.
    pub async fn run<W: Workflow>(&self, input: W::Input) -> Result<W::Output, Error> {
        match self {
            Engine::Embedded(engine) => engine.run::<W>(input).await,
            Engine::Redis(engine) => tokio::time::timeout(REQUEST_PATIENCE, engine.run::<W>(input))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "a request of `{}` did not end within {REQUEST_PATIENCE:?}",
                        W::NAME
                    )
                }),
        }
    }

    /// Runs one request of `W` to its end under `id`. On Redis: `submit_as`, then `wait`.
    pub async fn run_as<W: Workflow>(
        &self,
        id: RequestId,
        input: W::Input,
    ) -> Result<W::Output, Error> {
        let engine = match self {
            Engine::Embedded(engine) => return engine.run_as::<W>(id, input).await,
            Engine::Redis(engine) => engine,
        };
        let engine_error = |e: EngineError| Error::Engine {
            flow: W::NAME,
            message: e.to_string(),
        };
        let created = engine
            .submit_as::<W>(id.clone(), &input)
            .await
            .map_err(engine_error)?;
        assert!(created, "request `{id}` of `{}` existed already", W::NAME);
        match engine
            .wait::<W>(&id, REQUEST_PATIENCE)
            .await
            .map_err(engine_error)?
        {
            RequestOutcome::Completed(output) => Ok(output),
            RequestOutcome::Failed(failure) => Err(Error::Failed {
                flow: W::NAME,
                vertex: failure.vertex,
                attempts: failure.attempts,
                failure: failure.failure,
            }),
            RequestOutcome::Stopped => Err(Error::Stopped {
                flow: W::NAME,
                request_id: id,
            }),
            RequestOutcome::Pending(status) => panic!(
                "request `{id}` of `{}` still {status:?} after {REQUEST_PATIENCE:?}",
                W::NAME
            ),
        }
    }
    /// Starts a request of `W` in the background.
    pub async fn submit<W: Workflow>(&self, input: &W::Input) -> RequestId {
        match self {
            Engine::Embedded(engine) => engine.submit::<W>(input).await.expect("submit"),
            Engine::Redis(engine) => engine.submit::<W>(input).await.expect("submit"),
        }
    }

    /// The state of a submitted request of `W`.
    pub async fn status<W: Workflow>(&self, id: &RequestId) -> RequestState {
        match self {
            Engine::Embedded(engine) => engine.status(W::NAME, id),
            Engine::Redis(engine) => engine.status(W::NAME, id).await.expect("status"),
        }
        .unwrap_or_else(|| panic!("request `{id}` of `{}` is unknown", W::NAME))
    }

    /// Waits for a submitted request of `W` to end; its final state.
    pub async fn wait_state<W: Workflow>(&self, id: &RequestId) -> RequestState {
        let state = match self {
            Engine::Embedded(engine) => engine.wait_state(W::NAME, id, REQUEST_PATIENCE).await,
            Engine::Redis(engine) => engine
                .wait_state(W::NAME, id, REQUEST_PATIENCE)
                .await
                .expect("wait"),
        }
        .unwrap_or_else(|| panic!("request `{id}` of `{}` is unknown", W::NAME));
        assert!(
            state.status.is_final(),
            "request `{id}` of `{}` still {:?} after {REQUEST_PATIENCE:?}",
            W::NAME,
            state.status
        );
        state
    }

    /// Pauses, resumes or stops a submitted request of `W`.
    pub async fn control<W: Workflow>(&self, id: &RequestId, action: Control) -> Transition {
        match (self, action) {
            (Engine::Embedded(engine), Control::Pause) => engine.pause(W::NAME, id),
            (Engine::Embedded(engine), Control::Resume) => engine.resume(W::NAME, id),
            (Engine::Embedded(engine), Control::Stop) => engine.stop(W::NAME, id),
            (Engine::Redis(engine), Control::Pause) => {
                engine.pause(W::NAME, id).await.expect("pause")
            }
            (Engine::Redis(engine), Control::Resume) => {
                engine.resume(W::NAME, id).await.expect("resume")
            }
            (Engine::Redis(engine), Control::Stop) => engine.stop(W::NAME, id).await.expect("stop"),
        }
    }
}

/// What [`Engine::control`] does to a request.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    Pause,
    Resume,
    Stop,
}

/// One case's engine, and for Redis the worker running its vertices.
pub struct Harness {
    pub engine: Engine,
    worker: Option<(CancellationToken, JoinHandle<Result<(), EngineError>>)>,
}

impl Harness {
    pub fn embedded() -> Self {
        Self {
            engine: Engine::Embedded(Arc::new(Embedded::new())),
            worker: None,
        }
    }

    /// A Redis engine with the suite's workflows registered by `register`, under a prefix of
    /// its own, and one in-process worker.
    pub async fn redis(
        test: &str,
        register: fn(RedisEngineBuilder<MsgPack>) -> RedisEngineBuilder<MsgPack>,
    ) -> Self {
        let builder = RedisEngine::builder(super::config(test));
        let engine = register(builder)
            .connect()
            .await
            .expect("connect to the test redis-server");
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(engine.worker(WORKER_CONCURRENCY).run(shutdown.clone()));
        Self {
            engine: Engine::Redis(engine),
            worker: Some((shutdown, worker)),
        }
    }

    /// Stops the worker (letting its running attempts finish) and checks that it ended well.
    pub async fn finish(self) {
        if let Some((shutdown, worker)) = self.worker {
            shutdown.cancel();
            tokio::time::timeout(REQUEST_PATIENCE, worker)
                .await
                .expect("the worker did not stop")
                .expect("the worker task panicked")
                .expect("the worker failed");
        }
    }
}

/// Writes each case once and runs it on both engines: `conformance! { fn name(engine) { .. } }`
/// becomes `mod name` with the tests `embedded` and `redis`, whose bodies get `engine: &Engine`.
/// The Redis variant registers the workflows with the test file's own `register_all`.
#[allow(unused_macros)]
macro_rules! conformance {
    ($(
        $(#[doc = $doc:literal])*
        fn $name:ident($engine:ident) $body:block
    )*) => {$(
        $(#[doc = $doc])*
        mod $name {
            use super::*;
            use $crate::support::engines::{Engine, Harness};

            async fn case($engine: &Engine) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                let harness = Harness::embedded();
                case(&harness.engine).await;
                harness.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                let harness = Harness::redis(stringify!($name), super::register_all).await;
                case(&harness.engine).await;
                harness.finish().await;
            }
        }
    )*};
}

#[allow(unused_imports)]
pub(crate) use conformance;
