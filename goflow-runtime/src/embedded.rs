//! The embedded engine: runs workflows in-process on tokio, with the same plan, attempt runner
//! and join rule as the Redis engine, and no I/O.
//!
//! Two ways to run a request:
//! - [`Embedded::run`]: run it and await its output, nothing recorded (the fast path, for tests
//!   and for code that only needs the result);
//! - [`Embedded::submit`]: start it in the background and follow it by id with
//!   [`status`](Embedded::status), [`wait`](Embedded::wait), [`pause`](Embedded::pause),
//!   [`resume`](Embedded::resume) and [`stop`](Embedded::stop), as with the Redis engine. Finished
//!   requests are kept for [`Embedded::with_retention`] (default 1 h).

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::codec::{Codec, MsgPack};
use crate::context::Context;
use crate::error::{Error, Failure};
use crate::exec::{self, Outcome};
use crate::node::Data as _;
use crate::plan::{Instance, Plan, Progress};
use crate::request_id::RequestId;
use crate::state::{
    now_ms, RequestFailure, RequestOutcome, RequestState, RequestStatus, Transition, VertexState,
    VertexStatus,
};
use crate::workflow::Workflow;

/// Runs workflows in this process.
///
/// ```
/// # use goflow_runtime::Embedded;
/// let engine = Embedded::new();
/// // engine.run::<Kyc>(input).await, or engine.submit::<Kyc>(&input).await and so on
/// # drop(engine);
/// ```
pub struct Embedded<C: Codec = MsgPack> {
    codec: C,
    plans: Mutex<HashMap<TypeId, Arc<Plan>>>,
    requests: Arc<Registry>,
}

impl Embedded<MsgPack> {
    /// An engine with the default codec.
    pub fn new() -> Self {
        Self::with_codec(MsgPack)
    }
}

impl Default for Embedded<MsgPack> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Codec> Embedded<C> {
    /// An engine passing payloads through `codec`.
    pub fn with_codec(codec: C) -> Self {
        Self {
            codec,
            plans: Mutex::new(HashMap::new()),
            requests: Arc::new(Registry {
                retention: Duration::from_secs(3600),
                requests: Mutex::default(),
            }),
        }
    }

    /// Keeps submitted requests' state for `retention` after they end (default 1 h).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        Arc::get_mut(&mut self.requests)
            .expect("set before any request is submitted")
            .retention = retention;
        self
    }

    /// The plan of workflow `W`, built on first use.
    pub fn plan<W: Workflow>(&self) -> Arc<Plan> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            plans
                .entry(TypeId::of::<W>())
                .or_insert_with(|| Arc::new(Plan::new::<W, C>(self.codec.clone()))),
        )
    }

    /// Runs one request of `W` to completion under a fresh request id.
    pub async fn run<W: Workflow>(&self, input: W::Input) -> Result<W::Output, Error> {
        self.run_as::<W>(RequestId::generate(), input).await
    }

    /// Runs one request of `W` to completion under the given request id.
    pub async fn run_as<W: Workflow>(
        &self,
        request_id: RequestId,
        input: W::Input,
    ) -> Result<W::Output, Error> {
        run_typed::<W, C>(self.plan::<W>(), self.codec.clone(), request_id, input).await
    }

    /// Starts a request of `W` in the background under a fresh id.
    pub async fn submit<W: Workflow>(&self, input: &W::Input) -> Result<RequestId, Error> {
        let id = RequestId::generate();
        self.submit_as::<W>(id.clone(), input).await?;
        Ok(id)
    }

    /// Starts a request of `W` in the background under `id`, unless a request with that id is
    /// known: returns `true` if this call started it.
    pub async fn submit_as<W: Workflow>(
        &self,
        id: RequestId,
        input: &W::Input,
    ) -> Result<bool, Error> {
        let input = input
            .encode_with(&self.codec)
            .map_err(|source| Error::Codec {
                flow: W::NAME,
                source,
            })?;
        Ok(self.submit_encoded(self.plan::<W>(), id, input))
    }

    /// [`submit_as`](Self::submit_as) for an input already encoded with this engine's codec.
    pub fn submit_encoded(&self, plan: Arc<Plan>, id: RequestId, input: Bytes) -> bool {
        let key = (plan.flow(), id.clone());
        let tracked = {
            let mut requests = self
                .requests
                .requests
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            requests.evict(self.requests.retention);
            if requests.by_id.contains_key(&key) {
                return false;
            }
            let tracked = Arc::new(Tracked::new(&plan, id.clone()));
            requests.by_id.insert(key.clone(), Arc::clone(&tracked));
            tracked
        };
        // Started: counted once, by the call that created the request; its end is counted in
        // `Tracked::finish`.
        crate::metrics::flow_started(plan.flow());
        let registry = Arc::clone(&self.requests);
        // In the submitter's span (the HTTP request's, say), so that the request's span is a
        // child of it even though it runs in its own task.
        let submitter = tracing::Span::current();
        tokio::spawn(
            async move {
                let result = execute_tracked(&plan, id, input, Some(&tracked)).await;
                tracked.finish(result);
                let mut requests = registry.requests.lock().unwrap_or_else(|e| e.into_inner());
                requests
                    .finished
                    .push_back((std::time::Instant::now(), key));
            }
            .instrument(submitter),
        );
        true
    }

    /// The state of a submitted request of workflow `flow`; `None` if unknown (or expired).
    pub fn status(&self, flow: &str, id: &RequestId) -> Option<RequestState> {
        self.tracked(flow, id).map(|t| t.snapshot())
    }

    /// Waits up to `timeout` for a submitted request of workflow `flow` to end, and returns
    /// its state then (ended or not); `None` if the request is unknown.
    pub async fn wait_state(
        &self,
        flow: &str,
        id: &RequestId,
        timeout: Duration,
    ) -> Option<RequestState> {
        let tracked = self.tracked(flow, id)?;
        let mut finished = tracked.finished.subscribe();
        let _ = tokio::time::timeout(timeout, finished.wait_for(|done| *done)).await;
        Some(tracked.snapshot())
    }

    /// Waits up to `timeout` for a submitted request of `W` to end.
    pub async fn wait<W: Workflow>(
        &self,
        id: &RequestId,
        timeout: Duration,
    ) -> Result<Option<RequestOutcome<W::Output>>, Error> {
        let Some(state) = self.wait_state(W::NAME, id, timeout).await else {
            return Ok(None);
        };
        Ok(Some(match state.status {
            RequestStatus::Completed => {
                let output = state.output.unwrap_or_default();
                RequestOutcome::Completed(W::Output::decode_with(&self.codec, &output).map_err(
                    |source| Error::Codec {
                        flow: W::NAME,
                        source,
                    },
                )?)
            }
            RequestStatus::Failed => match state.failure {
                Some(failure) => RequestOutcome::Failed(failure),
                None => RequestOutcome::Pending(RequestStatus::Failed),
            },
            RequestStatus::Stopped => RequestOutcome::Stopped,
            status => RequestOutcome::Pending(status),
        }))
    }

    /// Pauses a submitted request: vertices not yet started wait until it is resumed.
    pub fn pause(&self, flow: &str, id: &RequestId) -> Transition {
        self.control(flow, id, Control::Pause)
    }

    /// Resumes a paused request.
    pub fn resume(&self, flow: &str, id: &RequestId) -> Transition {
        self.control(flow, id, Control::Run)
    }

    /// Stops a submitted request now; its running vertices are cancelled.
    pub fn stop(&self, flow: &str, id: &RequestId) -> Transition {
        self.control(flow, id, Control::Stop)
    }

    fn control(&self, flow: &str, id: &RequestId, to: Control) -> Transition {
        match self.tracked(flow, id) {
            Some(tracked) => tracked.control(to),
            None => Transition::Missing,
        }
    }

    fn tracked(&self, flow: &str, id: &RequestId) -> Option<Arc<Tracked>> {
        let requests = self
            .requests
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        requests
            .by_id
            .iter()
            .find(|((f, i), _)| *f == flow && i == id)
            .map(|(_, t)| Arc::clone(t))
    }
}

/// Encodes the input, executes, decodes the output.
pub(crate) async fn run_typed<W: Workflow, C: Codec>(
    plan: Arc<Plan>,
    codec: C,
    request_id: RequestId,
    input: W::Input,
) -> Result<W::Output, Error> {
    let codec_error = |source| Error::Codec {
        flow: W::NAME,
        source,
    };
    let input = input.encode_with(&codec).map_err(codec_error)?;
    let output = execute(plan, request_id, input).await?;
    W::Output::decode_with(&codec, &output).map_err(codec_error)
}

/// Executes one request of `plan` on encoded input; returns the encoded output of the exit.
///
/// Every vertex starts as soon as its inputs are complete. One that starts while others of the
/// request run gets a task of its own, so independent branches run in parallel; one that has
/// the request to itself (the entry, each vertex of a chain) runs in the request's task, which
/// spares it a task and a cross-thread wake-up. The first vertex to fail for good fails the
/// request: the others are cancelled (their `Context` reports it, and they are dropped).
pub async fn execute(plan: Arc<Plan>, request_id: RequestId, input: Bytes) -> Result<Bytes, Error> {
    // A run request (untracked, so never stopped) is counted here, from start to end.
    crate::metrics::flow_started(plan.flow());
    let result = execute_tracked(&plan, request_id, input, None).await;
    let status = match &result {
        Ok(_) => RequestStatus::Completed,
        Err(Error::Stopped { .. }) => RequestStatus::Stopped,
        Err(_) => RequestStatus::Failed,
    };
    crate::metrics::flow_finished(plan.flow(), status);
    result
}

/// What the request should be doing, as set by pause, resume and stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Run,
    Pause,
    Stop,
}

/// The submitted requests of one engine.
struct Registry {
    retention: Duration,
    requests: Mutex<Requests>,
}

#[derive(Default)]
struct Requests {
    by_id: HashMap<(&'static str, RequestId), Arc<Tracked>>,
    /// Ended requests, oldest first, for eviction after the retention.
    finished: VecDeque<(std::time::Instant, (&'static str, RequestId))>,
}

impl Requests {
    fn evict(&mut self, retention: Duration) {
        while let Some((at, _)) = self.finished.front() {
            if at.elapsed() < retention {
                break;
            }
            if let Some((_, key)) = self.finished.pop_front() {
                self.by_id.remove(&key);
            }
        }
    }
}

/// One submitted request: its state, and the control its executor follows.
struct Tracked {
    state: Mutex<TrackedState>,
    control: watch::Sender<Control>,
    finished: watch::Sender<bool>,
}

/// A request's state, its vertex instances kept by instance (so in plan, then item, order)
/// as instances inside `each` bodies come and go.
struct TrackedState {
    request: RequestState,
    vertices: BTreeMap<Instance, VertexState>,
}

fn pending(name: String) -> VertexState {
    VertexState {
        vertex: name,
        status: VertexStatus::Pending,
        attempts: 0,
        started_at_ms: None,
        finished_at_ms: None,
        worker: None,
        last_failure: None,
    }
}

impl Tracked {
    fn new(plan: &Plan, request_id: RequestId) -> Self {
        let now = now_ms();
        // Vertices outside `each` bodies are listed from the start; body instances as they
        // come to exist.
        let vertices = plan
            .vertices()
            .iter()
            .enumerate()
            .filter(|(_, v)| v.depth() == 0)
            .map(|(i, v)| (Instance::root(i), pending(v.path().to_string())))
            .collect();
        Self {
            state: Mutex::new(TrackedState {
                request: RequestState {
                    flow: plan.flow(),
                    request_id,
                    status: RequestStatus::Queued,
                    created_at_ms: now,
                    updated_at_ms: now,
                    finished_at_ms: None,
                    vertices: Vec::new(),
                    failure: None,
                    output: None,
                },
                vertices,
            }),
            control: watch::channel(Control::Run).0,
            finished: watch::channel(false).0,
        }
    }

    fn snapshot(&self) -> RequestState {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut request = state.request.clone();
        request.vertices = state.vertices.values().cloned().collect();
        request
    }

    fn update(&self, change: impl FnOnce(&mut TrackedState)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut state);
        state.request.updated_at_ms = now_ms();
    }

    /// Changes one instance's state, creating it on first mention.
    fn vertex(&self, plan: &Plan, instance: &Instance, change: impl FnOnce(&mut VertexState)) {
        self.update(|state| {
            let vertex = state
                .vertices
                .entry(instance.clone())
                .or_insert_with(|| pending(plan.name_of(instance).to_string()));
            change(vertex);
        });
    }

    /// Applies pause, resume or stop, as the Redis engine's control script does.
    fn control(&self, to: Control) -> Transition {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut guard.request;
        let from = state.status;
        let allowed = match to {
            Control::Pause => matches!(from, RequestStatus::Queued | RequestStatus::Running),
            Control::Run => from == RequestStatus::Paused,
            Control::Stop => !from.is_final(),
        };
        if !allowed {
            return Transition::Conflict(from);
        }
        state.status = match to {
            Control::Pause => RequestStatus::Paused,
            Control::Run => RequestStatus::Running,
            Control::Stop => RequestStatus::Stopped,
        };
        state.updated_at_ms = now_ms();
        let status = state.status;
        drop(guard);
        self.control.send_replace(to);
        Transition::Done(status)
    }

    fn finish(&self, result: Result<Bytes, Error>) {
        self.update(
            |TrackedState {
                 request: state,
                 vertices,
             }| {
                let now = now_ms();
                state.finished_at_ms.get_or_insert(now);
                // Attempts still running when the request ended were cancelled with it.
                for vertex in vertices.values_mut() {
                    if matches!(
                        vertex.status,
                        VertexStatus::Running | VertexStatus::Retrying
                    ) {
                        vertex.status = VertexStatus::Cancelled;
                        vertex.finished_at_ms = Some(now);
                    }
                }
                match result {
                    Ok(output) => {
                        state.status = RequestStatus::Completed;
                        state.output = Some(output);
                    }
                    Err(Error::Failed {
                        vertex,
                        attempts,
                        failure,
                        ..
                    }) => {
                        state.status = RequestStatus::Failed;
                        state.failure = Some(RequestFailure {
                            vertex,
                            attempts,
                            failure,
                        });
                    }
                    Err(Error::Stopped { .. }) => state.status = RequestStatus::Stopped,
                    Err(other) => {
                        state.status = RequestStatus::Failed;
                        state.failure = Some(RequestFailure {
                            vertex: String::new(),
                            attempts: 0,
                            failure: Failure::Error(other.to_string()),
                        });
                    }
                }
                // A submitted request's end is counted here, once, with the status it ends with.
                crate::metrics::flow_finished(state.flow, state.status);
            },
        );
        self.finished.send_replace(true);
    }
}

/// The executor of both [`execute`] and submitted requests: with a tracker, it records each
/// vertex's progress, holds ready vertices back while the request is paused, and ends at once
/// when it is stopped.
async fn execute_tracked(
    plan: &Arc<Plan>,
    request_id: RequestId,
    input: Bytes,
    tracker: Option<&Arc<Tracked>>,
) -> Result<Bytes, Error> {
    let cancel = CancellationToken::new();
    // The cancellation is signalled on return, before the vertices still running are dropped
    // (declared after it, `running` would be dropped first).
    let _cancel_on_return = cancel.clone().drop_guard();
    let mut progress = Progress::new(input.clone()).with_room_for(plan.vertices().len());
    let mut control = tracker.map(|t| {
        let mut rx = t.control.subscribe();
        // A pause or stop may have come before this task started: act on the current value.
        rx.mark_changed();
        rx
    });
    let mut parked: Vec<(Instance, Vec<Bytes>)> = Vec::new();
    // Every vertex span of the request is a child of the request's span.
    let span = tracing::info_span!(
        "goflow.request",
        flow = plan.flow(),
        request_id = request_id.as_str()
    );
    let launch = Launch {
        plan,
        request_id: &request_id,
        cancel: &cancel,
        tracker,
        span: &span,
    };
    let mut running = Running::default();
    launch.ready(
        &mut running,
        &mut parked,
        Instance::root(plan.entry()),
        vec![input],
    );

    loop {
        // With nothing running and nothing parked, the exit can no longer be reached.
        if running.is_empty() && parked.is_empty() {
            return Err(Error::Internal {
                flow: plan.flow(),
                message: "no vertex left to run before the exit vertex completed".to_owned(),
            });
        }
        tokio::select! {
            finished = running.next(plan.flow()), if !running.is_empty() => {
                let (done, outcome) = finished?;
                let Outcome { attempts, result } = outcome;
                // A conditional's or a for-each's output that the plan cannot route fails the
                // vertex like a failed attempt.
                let advanced = result.and_then(|output| {
                    let advance = plan.advance(&done, output.clone()).map_err(Failure::from)?;
                    Ok((output, advance))
                });
                let (output, advance) = match advanced {
                    Ok(advanced) => advanced,
                    Err(failure) => {
                        if let Some(tracker) = tracker {
                            tracker.vertex(plan, &done, |v| {
                                v.status = VertexStatus::Failed;
                                v.attempts = attempts;
                                v.finished_at_ms = Some(now_ms());
                                v.last_failure = Some(failure.clone());
                            });
                        }
                        return Err(Error::Failed {
                            flow: plan.flow(),
                            vertex: plan.name_of(&done).to_string(),
                            attempts,
                            failure,
                        });
                    }
                };
                if let Some(tracker) = tracker {
                    let now = now_ms();
                    tracker.vertex(plan, &done, |v| {
                        v.status = VertexStatus::Done;
                        v.attempts = attempts;
                        v.finished_at_ms = Some(now);
                    });
                    for skipped in &advance.skipped {
                        tracker.vertex(plan, skipped, |v| {
                            v.status = VertexStatus::Skipped;
                            v.finished_at_ms = Some(now);
                        });
                    }
                }
                if advance.completes {
                    // The exit is the only vertex without successors, so every other one has
                    // finished.
                    return Ok(output);
                }
                for next in progress.apply(advance) {
                    let parts = progress.inputs(plan, &next).ok_or_else(|| Error::Internal {
                        flow: plan.flow(),
                        message: format!("`{}` became ready before its inputs", plan.name_of(&next)),
                    })?;
                    launch.ready(&mut running, &mut parked, next, parts);
                }
            }
            to = changed(&mut control) => match to {
                Control::Stop => {
                    return Err(Error::Stopped { flow: plan.flow(), request_id });
                }
                Control::Run => {
                    for (instance, parts) in std::mem::take(&mut parked) {
                        launch.ready(&mut running, &mut parked, instance, parts);
                    }
                }
                Control::Pause => {}
            },
        }
    }
}

/// Waits for the next pause, resume or stop; never, for an untracked request.
async fn changed(control: &mut Option<watch::Receiver<Control>>) -> Control {
    match control {
        Some(rx) => match rx.changed().await {
            Ok(()) => *rx.borrow_and_update(),
            // The request's record is gone: nothing can control it any more.
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Starts ready vertices (or parks them while paused).
struct Launch<'a> {
    plan: &'a Arc<Plan>,
    request_id: &'a RequestId,
    cancel: &'a CancellationToken,
    tracker: Option<&'a Arc<Tracked>>,
    span: &'a tracing::Span,
}

impl Launch<'_> {
    fn ready(
        &self,
        running: &mut Running,
        parked: &mut Vec<(Instance, Vec<Bytes>)>,
        instance: Instance,
        parts: Vec<Bytes>,
    ) {
        let plan = self.plan;
        if let Some(tracker) = self.tracker {
            if *tracker.control.borrow() == Control::Pause {
                tracker.vertex(plan, &instance, |v| v.status = VertexStatus::Parked);
                parked.push((instance, parts));
                return;
            }
            tracker.update(|state| {
                if state.request.status == RequestStatus::Queued {
                    state.request.status = RequestStatus::Running;
                }
            });
            tracker.vertex(plan, &instance, |v| {
                v.status = VertexStatus::Running;
                v.started_at_ms.get_or_insert_with(now_ms);
                v.worker = Some("embedded".to_owned());
            });
        }
        let ctx = Context::new(
            plan.flow(),
            self.request_id.clone(),
            plan.name_of(&instance),
            1,
            self.cancel.clone(),
        );
        let plan = Arc::clone(plan);
        let tracker = self.tracker.cloned();
        running.start(
            async move {
                let vertex = plan.vertex(instance.vertex());
                let on_retry = |attempt: u32, failure: &Failure| {
                    crate::metrics::retry_scheduled(plan.flow(), Arc::clone(vertex.path()));
                    if let Some(tracker) = &tracker {
                        tracker.vertex(&plan, &instance, |v| {
                            v.status = VertexStatus::Retrying;
                            v.attempts = attempt;
                            v.last_failure = Some(failure.clone());
                        });
                    }
                };
                let outcome = exec::with_retries(vertex, &parts, &ctx, on_retry).await;
                (instance, outcome)
            }
            .instrument(self.span.clone()),
        );
    }
}

/// A vertex run: the instance and how its attempts went.
type Finished = (Instance, Outcome);

/// The vertices of a request that are running. A vertex that has the request to itself runs
/// inside the request's own task (a chain runs there from end to end, without a task or a
/// cross-thread wake-up per vertex); one that starts beside others gets a task of its own,
/// so that independent branches run in parallel. Dropping this cancels them all.
#[derive(Default)]
struct Running {
    /// The vertex running in the request's task, if any.
    inline: Option<BoxFuture<'static, Finished>>,
    tasks: JoinSet<Finished>,
}

impl Running {
    fn is_empty(&self) -> bool {
        self.inline.is_none() && self.tasks.is_empty()
    }

    fn start(&mut self, vertex: impl Future<Output = Finished> + Send + 'static) {
        if self.is_empty() {
            self.inline = Some(Box::pin(vertex));
        } else {
            self.tasks.spawn(vertex);
        }
    }

    /// The next vertex to finish. Call only when not [empty](Self::is_empty).
    async fn next(&mut self, flow: &'static str) -> Result<Finished, Error> {
        let inline = std::future::poll_fn(|cx| match &mut self.inline {
            Some(vertex) => vertex.as_mut().poll(cx),
            None => Poll::Pending,
        });
        tokio::select! {
            finished = inline => {
                self.inline = None;
                Ok(finished)
            }
            Some(joined) = self.tasks.join_next() => {
                // Node panics are caught inside the task, so a join error is an engine bug.
                joined.map_err(|e| Error::Internal {
                    flow,
                    message: format!("vertex task ended abnormally: {e}"),
                })
            }
        }
    }
}
