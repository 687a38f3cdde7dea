//! The embedded engine: runs workflows in this process on tokio, with the same plan, attempt
//! runner, lifecycle rules and join counting as the Redis engine, and no I/O.
//!
//! Two ways to run a request:
//! - [`Engine::run`]: run it and await its output, nothing recorded (the fast path, for tests
//!   and for code that only needs the result); [`RunLocal::run_local`] does the same on a
//!   default engine;
//! - [`Engine::submit`]: start it in the background and follow it by id with
//!   [`status`](Engine::status), [`wait`](Engine::wait), [`pause`](Engine::pause),
//!   [`resume`](Engine::resume) and [`stop`](Engine::stop), as with the Redis engine.
//!   Finished requests are kept for [`EmbeddedEngineBuilder::retention`] (default 24 h, at
//!   most [`EmbeddedEngineBuilder::retain_at_most`] of them).
//!
//! The embedded engine runs one version of each workflow: the one compiled into this process.
//!
//! Its parts: `registry` keeps the submitted requests by workflow and id; `tracked` is one
//! submitted request's state, moved by the lifecycle core's decisions; `executor` runs a
//! request's vertices.

mod events;
mod executor;
mod registry;
mod tracked;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use self::registry::Registry;
use self::tracked::Tracked;
use crate::codec::{Codec, MsgPack};
use crate::engine::{self, Engine, EventFeed, Hook, Registered, Registrations, Submitted};
use crate::error::Error;
use crate::events::EventId;
use crate::lifecycle::{Control, RequestStatus};
use crate::node::Data as _;
use crate::plan::Plan;
use crate::request::Limits;
use crate::request::{
    DeadLetterId, DeadLetterPage, Finished, Migrated, RequestData, RequestOutcome, RequestPage,
    RequestQuery, RequestState, StatusCounts, VersionInfo, VersionState, WorkerInfo, Workers,
};
use crate::request_id::RequestId;
use crate::sync::lock;
use crate::workflow::Workflow;

pub(crate) use self::executor::execute;

/// How long finished requests are kept by default, on both engines: a day, so that an
/// operator can still find yesterday's failures.
pub(crate) const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How many finished requests the embedded engine keeps by default (the oldest go first).
const DEFAULT_RETAINED: usize = 100_000;

/// Runs workflows in this process. Cheap to clone: clones share their requests.
///
/// ```
/// # use goflow_runtime::EmbeddedEngine;
/// # use std::time::Duration;
/// let engine = EmbeddedEngine::new();
/// let engine = EmbeddedEngine::builder().retention(Duration::from_secs(600)).build();
/// // engine.run::<Kyc>(input).await, or engine.submit::<Kyc>(&input).await and so on
/// # drop(engine);
/// ```
pub struct EmbeddedEngine<C: Codec = MsgPack> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    codec: C,
    limits: Limits,
    /// The plans of the workflows this engine runs, by name: those registered, and any run
    /// through a typed call.
    plans: Mutex<HashMap<&'static str, Arc<Plan>>>,
    requests: Arc<Registry>,
    hooks: Arc<HashMap<&'static str, Hook>>,
}

impl<C: Codec> Clone for EmbeddedEngine<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Codec> std::fmt::Debug for EmbeddedEngine<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plans = lock(&self.inner.plans);
        let mut flows: Vec<&str> = plans.keys().copied().collect();
        flows.sort_unstable();
        f.debug_struct("EmbeddedEngine")
            .field("codec", &C::NAME)
            .field("flows", &flows)
            .field("requests", &self.inner.requests)
            .finish()
    }
}

impl EmbeddedEngine<MsgPack> {
    /// An engine with the default settings and codec.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts configuring an engine with the default codec.
    pub fn builder() -> EmbeddedEngineBuilder<MsgPack> {
        EmbeddedEngineBuilder::new(MsgPack)
    }
}

impl Default for EmbeddedEngine<MsgPack> {
    fn default() -> Self {
        Self::new()
    }
}

/// Configures an [`EmbeddedEngine`]: its codec, how long it keeps finished requests, the
/// workflows it serves by name, and finish hooks. The Redis engine's builder takes the same
/// calls where they apply.
pub struct EmbeddedEngineBuilder<C: Codec = MsgPack> {
    registered: Registrations<C>,
    retention: Duration,
    retained: usize,
}

impl<C: Codec> std::fmt::Debug for EmbeddedEngineBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedEngineBuilder")
            .field("codec", &C::NAME)
            .field("retention", &self.retention)
            .field("retained", &self.retained)
            .field("flows", &self.registered.names())
            .finish_non_exhaustive()
    }
}

impl<C: Codec> EmbeddedEngineBuilder<C> {
    /// A builder for an engine passing payloads through `codec`.
    pub fn new(codec: C) -> Self {
        Self {
            registered: Registrations::new(codec),
            retention: DEFAULT_RETENTION,
            retained: DEFAULT_RETAINED,
        }
    }

    /// Keeps finished requests' state for `retention` after they end (default 24 h).
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Keeps at most `count` finished requests (default 100,000); beyond that the oldest
    /// finished go first, whatever the retention. Running requests are always kept.
    #[must_use]
    pub fn retain_at_most(mut self, count: usize) -> Self {
        self.retained = count;
        self
    }

    /// Bounds what one request may grow to (default [`Limits::DEFAULT`]: 10,000 items per
    /// for-each, 1 MiB per vertex output).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.registered.limits = limits;
        self
    }

    /// Registers workflow `W`, so that requests of it can be submitted by name (as the HTTP
    /// service does). Typed calls (`submit::<W>`, `run::<W>`) register it by themselves.
    #[must_use]
    pub fn register<W: Workflow>(mut self) -> Self {
        self.registered.register::<W>();
        self
    }

    /// Runs `hook` once when a request of `W` ends (completed, failed or stopped), in a task
    /// of its own, after its state is final.
    #[must_use]
    pub fn on_finish<W, F, Fut>(self, hook: F) -> Self
    where
        W: Workflow,
        F: Fn(Finished) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.register::<W>().hook(W::NAME, engine::hook(hook))
    }

    /// Registers `hook` for the workflow named `flow` (registered already).
    pub(crate) fn hook(mut self, flow: &'static str, hook: Hook) -> Self {
        self.registered.hook(flow, hook);
        self
    }

    /// The engine.
    pub fn build(self) -> EmbeddedEngine<C> {
        let Registered {
            codec,
            limits,
            plans,
            hooks,
        } = self.registered.build();
        EmbeddedEngine {
            inner: Arc::new(Inner {
                codec,
                limits,
                plans: Mutex::new(plans),
                requests: Arc::new(Registry::new(self.retention, self.retained)),
                hooks: Arc::new(hooks),
            }),
        }
    }
}

impl<C: Codec> EmbeddedEngine<C> {
    /// The plan of workflow `W`, built on first use.
    fn plan<W: Workflow>(&self) -> Arc<Plan> {
        let mut plans = lock(&self.inner.plans);
        Arc::clone(plans.entry(W::NAME).or_insert_with(|| {
            let codec = self.inner.codec.clone();
            Arc::new(Plan::with_limits::<W, C>(codec, self.inner.limits))
        }))
    }

    /// The plan of the workflow named `flow`, if this engine knows it.
    fn plan_named(&self, flow: &str) -> Result<Arc<Plan>, Error> {
        lock(&self.inner.plans)
            .get(flow)
            .cloned()
            .ok_or_else(|| Error::UnknownFlow {
                flow: flow.to_owned(),
            })
    }

    /// The tracked request `id` of workflow `flow`.
    fn tracked(&self, flow: &str, id: &RequestId) -> Result<Arc<Tracked>, Error> {
        let plan = self.plan_named(flow)?;
        self.inner
            .requests
            .get(plan.flow(), id)
            .ok_or_else(|| Error::UnknownRequest {
                flow: plan.flow(),
                request_id: id.clone(),
            })
    }
}

// What the service does at shutdown.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
impl<C: Codec> EmbeddedEngine<C> {
    /// Takes no new submissions from now on (they fail with [`Error::Engine`], from
    /// [`ShuttingDown`], and so does `ready`), and lets those in flight go on. What a service
    /// does when it shuts down.
    pub(crate) fn close(&self) {
        self.inner.requests.close();
    }

    /// How many submitted requests have not ended yet (or their finish hooks not returned).
    pub(crate) fn in_flight(&self) -> usize {
        self.inner.requests.active()
    }

    /// Waits until every submitted request has ended and its finish hook has returned.
    pub(crate) async fn drained(&self) {
        self.inner.requests.drained().await;
    }
}

/// The embedded engine is shutting down: it takes no new requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShuttingDown;

impl std::fmt::Display for ShuttingDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the service is shutting down: it takes no new requests (those in flight may finish)",
        )
    }
}

impl std::error::Error for ShuttingDown {}

impl<C: Codec> engine::sealed::Sealed for EmbeddedEngine<C> {}

impl<C: Codec> Engine for EmbeddedEngine<C> {
    type Codec = C;

    fn codec(&self) -> &C {
        &self.inner.codec
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }

    /// Runs the request in this task (its branches in tasks of their own), recording
    /// nothing: the fast path.
    async fn run_as<W: Workflow>(
        &self,
        request_id: RequestId,
        input: W::Input,
    ) -> Result<W::Output, Error> {
        let codec = &self.inner.codec;
        let input = input.encode_with(codec).map_err(Error::codec(W::NAME))?;
        let hooks = Arc::clone(&self.inner.hooks);
        let output = execute(self.plan::<W>(), request_id, input, hooks).await?;
        W::Output::decode_with(codec, &output).map_err(Error::codec(W::NAME))
    }

    fn know<W: Workflow>(&self) {
        self.plan::<W>();
    }

    async fn wait<W: Workflow>(
        &self,
        id: &RequestId,
        timeout: Duration,
    ) -> Result<RequestOutcome<W::Output>, Error> {
        self.know::<W>();
        let state = self.wait_state(W::NAME, id, timeout).await?;
        engine::decode_outcome::<W, C>(&self.inner.codec, state.outcome())
    }

    async fn submit_encoded(
        &self,
        flow: &str,
        id: &RequestId,
        input: Bytes,
    ) -> Result<Submitted, Error> {
        let plan = self.plan_named(flow)?;
        self.inner.requests.sweep_on_a_timer();
        let created = self.inner.requests.create(&plan, id, &input);
        let tracked = match created.map_err(Error::engine)? {
            Ok(tracked) => tracked,
            Err(existed) => return Ok(existed),
        };
        // Counted once, by the call that created the request; its end is counted when it
        // finishes.
        crate::metrics::flow_started(&plan);
        let restart = executor::fresh(&plan, input);
        executor::spawn_tracked(
            plan,
            id.clone(),
            restart,
            tracked,
            Arc::clone(&self.inner.requests),
            Arc::clone(&self.inner.hooks),
        );
        Ok(Submitted::Created)
    }

    async fn state(&self, flow: &str, id: &RequestId) -> Result<RequestState, Error> {
        Ok(self.tracked(flow, id)?.snapshot())
    }

    async fn wait_state(
        &self,
        flow: &str,
        id: &RequestId,
        timeout: Duration,
    ) -> Result<RequestState, Error> {
        let tracked = self.tracked(flow, id)?;
        tracked.wait_final(timeout).await;
        Ok(tracked.snapshot())
    }

    async fn control(
        &self,
        flow: &str,
        id: &RequestId,
        action: Control,
    ) -> Result<RequestStatus, Error> {
        let tracked = self.tracked(flow, id)?;
        let conflict = |status| Error::Conflict {
            flow: tracked.flow(),
            request_id: id.clone(),
            action,
            status,
        };
        if !action.is_retry() {
            return tracked.control(action).map_err(conflict);
        }
        let plan = self.plan_named(flow)?;
        let registry = &self.inner.requests;
        // Refused, as a submission is, once the engine is closed; else it counts as under way
        // (a close waits for it) from now.
        registry.rerun().map_err(Error::engine)?;
        let (status, restart) = match tracked.retry(&plan, action).await {
            Ok(retried) => retried,
            Err(status) => {
                registry.settled();
                return Err(conflict(status));
            }
        };
        // Each run is counted from start to end, as a submission's is.
        crate::metrics::flow_started(&plan);
        executor::spawn_tracked(
            plan,
            id.clone(),
            restart,
            tracked,
            Arc::clone(registry),
            Arc::clone(&self.inner.hooks),
        );
        Ok(status)
    }

    async fn list_requests(&self, flow: &str, query: &RequestQuery) -> Result<RequestPage, Error> {
        let plan = self.plan_named(flow)?;
        Ok(self.inner.requests.list(plan.flow(), query))
    }

    async fn count_requests(
        &self,
        flow: &str,
        since_ms: Option<u64>,
    ) -> Result<StatusCounts, Error> {
        let plan = self.plan_named(flow)?;
        Ok(self.inner.requests.counts(plan.flow(), since_ms))
    }

    async fn list_dead(
        &self,
        flow: &str,
        limit: usize,
        before: Option<DeadLetterId>,
    ) -> Result<DeadLetterPage, Error> {
        let plan = self.plan_named(flow)?;
        Ok(self.inner.requests.dead_letters(plan.flow(), limit, before))
    }

    async fn event_feed(
        &self,
        flow: &str,
        after: Option<EventId>,
        live: bool,
    ) -> Result<EventFeed, Error> {
        let plan = self.plan_named(flow)?;
        Ok(self
            .inner
            .requests
            .events
            .flow(plan.flow())
            .feed(after, live))
    }

    async fn request_data(&self, flow: &str, id: &RequestId) -> Result<RequestData, Error> {
        let plan = self.plan_named(flow)?;
        Ok(self.tracked(flow, id)?.data(&plan))
    }

    /// The engine is its one worker; what it has in flight are the requests under way, and
    /// nothing waits for a worker to read it.
    async fn workers(&self, flow: &str) -> Result<Workers, Error> {
        let plan = self.plan_named(flow)?;
        let counts = self.inner.requests.counts(plan.flow(), None);
        let under_way = [
            RequestStatus::Queued,
            RequestStatus::Running,
            RequestStatus::Paused,
        ];
        Ok(Workers {
            lag: Some(0),
            workers: vec![WorkerInfo {
                name: tracked::WORKER.to_owned(),
                in_flight: under_way.iter().map(|s| counts.get(*s)).sum(),
                idle_ms: 0,
                version: plan.version().to_string(),
            }],
        })
    }

    /// One version per process: this one's.
    async fn versions(&self, flow: &str) -> Result<Vec<VersionInfo>, Error> {
        let plan = self.plan_named(flow)?;
        let workers = self.workers(flow).await?;
        let open = workers.workers.iter().map(|w| w.in_flight).sum();
        Ok(vec![VersionInfo {
            version: plan.version().to_string(),
            current: true,
            state: VersionState::Current,
            open,
            workers: workers.workers,
            alive: true,
            graph: serde_json::to_value(plan.graph()).ok(),
        }])
    }

    async fn forget_version(&self, flow: &str, version: &str) -> Result<(), Error> {
        let plan = self.plan_named(flow)?;
        let reason = if version == &**plan.version() {
            "it is the version this engine runs"
        } else {
            "the embedded engine runs one version, its own: there is no other to forget"
        };
        Err(Error::VersionInUse {
            flow: plan.flow(),
            version: version.to_owned(),
            reason: reason.to_owned(),
        })
    }

    /// The embedded engine runs one version per process, its own: every request it has is on
    /// it already, and stays as it is.
    async fn migrate_request(&self, flow: &str, id: &RequestId) -> Result<Migrated, Error> {
        let state = self.state(flow, id).await?;
        Ok(Migrated {
            request_id: id.clone(),
            from: state.version.clone(),
            to: state.version,
            moved: false,
            status: state.status,
            queued: 0,
        })
    }

    async fn ready(&self) -> Result<(), Error> {
        if self.inner.requests.is_closed() {
            return Err(Error::engine(ShuttingDown));
        }
        Ok(())
    }
}

/// Runs a workflow to completion on a default [`EmbeddedEngine`]: `Kyc::run_local(input)`.
/// In the prelude.
pub trait RunLocal: Workflow {
    /// Runs one request to completion on the embedded engine, with the default codec.
    ///
    /// Vertices run as tokio tasks, so fan-out branches run in parallel; this must be called
    /// inside a tokio runtime. For many requests, another codec, or to follow requests by id,
    /// use an [`EmbeddedEngine`].
    fn run_local(input: Self::Input) -> impl Future<Output = Result<Self::Output, Error>> + Send;
}

impl<W: Workflow> RunLocal for W {
    async fn run_local(input: W::Input) -> Result<W::Output, Error> {
        let input = input.encode_with(&MsgPack).map_err(Error::codec(W::NAME))?;
        let plan = Arc::clone(W::local_plan());
        let output = execute(plan, RequestId::generate(), input, Arc::default()).await?;
        W::Output::decode_with(&MsgPack, &output).map_err(Error::codec(W::NAME))
    }
}
