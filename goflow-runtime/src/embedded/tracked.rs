//! One submitted request of the embedded engine: its state, moved only by the lifecycle core's
//! decisions ([`crate::lifecycle`]), and the signals its executor follows (pause, resume, stop)
//! and its waiters wait for (the end).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::events::FlowEvents;
use crate::error::Failure;
use crate::events::EventKind;
use crate::lifecycle::{self, Control, RequestStatus, VertexStatus};
use crate::plan::{Instance, Plan, Progress};
use crate::request::{
    self, RequestData, RequestFailure, RequestOutcome, RequestState, RequestSummary, VertexState,
};
use crate::request_id::RequestId;
use crate::sync::lock;
use crate::time::now_ms;

/// A hash of an encoded input: 64 bits of SipHash (with fixed keys, as the comparisons are
/// within one process) tell two inputs apart without keeping them.
fn input_hash(input: &[u8]) -> u64 {
    use std::hash::{DefaultHasher, Hasher as _};
    let mut hasher = DefaultHasher::new();
    hasher.write(input);
    hasher.finish()
}

/// The worker name the embedded engine records for every attempt.
pub(super) const WORKER: &str = "embedded";

/// One submitted request.
pub(super) struct Tracked {
    flow: &'static str,
    /// When it was created (ms): its place in the workflow's list of requests.
    created_at_ms: u64,
    /// A hash of the encoded input it was submitted with, to tell a retried submission (same
    /// id, same input) from another one under an id already taken.
    input_hash: u64,
    /// The input, for the dashboard (shared with its executor's progress, not copied).
    input: Bytes,
    state: Mutex<TrackedState>,
    /// The last control applied, for the executor: it parks what becomes ready while paused,
    /// launches the parked instances on resume, and ends on stop.
    control: watch::Sender<Control>,
    /// Whether the request has ended: its executor has returned and its state is final.
    ended: watch::Sender<bool>,
    /// How many times it has been retried (its state's `retries`), readable without its lock:
    /// the registry tells an end before a retry from the end after it by this.
    runs: AtomicU32,
    /// Its workflow's events, which each change of its state records, under its state's lock.
    events: Arc<FlowEvents>,
}

/// The event of `instance` moving to `status`.
fn moved(plan: &Plan, instance: &Instance, status: VertexStatus) -> EventKind {
    EventKind::Vertex {
        vertex: plan.name_of(instance),
        status,
    }
}

/// A request's state, its vertex instances kept by instance (so in plan, then item, order)
/// as instances inside `each` bodies come to exist.
struct TrackedState {
    request: RequestState,
    vertices: BTreeMap<Instance, VertexState>,
    /// What its executor had computed when it failed or was stopped (the stored values and
    /// the arrivals counted), for a retry to run on from.
    kept: Option<Progress>,
    /// The output of each instance that produced one, for the dashboard, as the Redis engine
    /// keeps them in the request's hash (shared with the executor's progress, not copied).
    outputs: BTreeMap<Instance, Bytes>,
}

/// Where a run of a request's executor starts: from what it had computed, with these
/// instances to launch (each has all its inputs in the progress).
pub(super) struct Restart {
    pub(super) progress: Progress,
    pub(super) launch: Vec<Instance>,
}

impl Tracked {
    pub(super) fn new(
        plan: &Plan,
        request_id: RequestId,
        input: &Bytes,
        events: Arc<FlowEvents>,
    ) -> Self {
        let now = now_ms();
        // The entry vertex is ready from the start, as its input is the request's.
        let mut vertices = request::initial_vertices(plan.layout());
        let entry = Instance::root(plan.entry());
        let ready = lifecycle::on_ready(RequestStatus::Queued);
        if let Some(vertex) = vertices.get_mut(&entry) {
            vertex.status = ready;
        }
        events.record(
            &request_id,
            [
                moved(plan, &entry, ready),
                EventKind::Request {
                    status: RequestStatus::Queued,
                },
            ],
        );
        Self {
            flow: plan.flow(),
            created_at_ms: now,
            input_hash: input_hash(input),
            input: input.clone(),
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
                    retries: 0,
                    version: plan.version().to_string(),
                    waiting_for: None,
                    trace_id: None,
                    output: None,
                },
                vertices,
                kept: None,
                outputs: BTreeMap::new(),
            }),
            control: watch::channel(Control::Resume).0,
            ended: watch::channel(false).0,
            runs: AtomicU32::new(0),
            events,
        }
    }

    /// Its executor runs in `span`: the request's trace id is that span's, when it is
    /// exported (the first run's: a retry's spans are in a trace of their own).
    pub(super) fn traced(&self, span: &tracing::Span) {
        let mut guard = lock(&self.state);
        if guard.request.trace_id.is_none() {
            let traceparent = span.in_scope(|| crate::trace::of_span(&tracing::Span::current()));
            guard.request.trace_id = traceparent
                .as_deref()
                .and_then(crate::trace::trace_id)
                .map(str::to_owned);
        }
    }

    /// How many times it has been retried.
    pub(super) fn runs(&self) -> u32 {
        self.runs.load(Ordering::Acquire)
    }

    pub(super) fn flow(&self) -> &'static str {
        self.flow
    }

    /// When it was created (ms since the Unix epoch).
    pub(super) fn created_at_ms(&self) -> u64 {
        self.created_at_ms
    }

    /// What a list of requests shows of it.
    pub(super) fn summary(&self) -> RequestSummary {
        let state = lock(&self.state);
        let request = &state.request;
        RequestSummary {
            request_id: request.request_id.clone(),
            status: request.status,
            created_at_ms: request.created_at_ms,
            ended_at_ms: request.finished_at_ms,
            failure: request.failure.clone(),
            version: request.version.clone(),
        }
    }

    /// Its status.
    pub(super) fn status(&self) -> RequestStatus {
        lock(&self.state).request.status
    }

    /// Whether it was submitted with this encoded input.
    pub(super) fn same_input(&self, input: &[u8]) -> bool {
        self.input_hash == input_hash(input)
    }

    /// Its state, with the lifecycle's sweep applied once it has ended (the stored state is
    /// kept as it was, for a retry).
    pub(super) fn snapshot(&self) -> RequestState {
        let state = lock(&self.state);
        let mut request = state.request.clone();
        request.vertices = state.vertices.values().cloned().collect();
        if let (true, Some(ended_at)) = (request.status.is_final(), request.finished_at_ms) {
            for vertex in &mut request.vertices {
                vertex.sweep(ended_at);
            }
        }
        request
    }

    /// Its input and what its instances produced.
    pub(super) fn data(&self, plan: &Plan) -> RequestData {
        let state = lock(&self.state);
        RequestData {
            input: Some(self.input.clone()),
            outputs: state
                .outputs
                .iter()
                .map(|(instance, output)| (plan.name_of(instance).to_string(), output.clone()))
                .collect(),
        }
    }

    /// Waits up to `timeout` for the request to end.
    pub(super) async fn wait_final(&self, timeout: Duration) {
        let mut ended = self.ended.subscribe();
        let _ = tokio::time::timeout(timeout, ended.wait_for(|ended| *ended)).await;
    }

    /// Waits until its executor has returned, if its state is final: a request just stopped
    /// ends as soon as its executor notices.
    async fn executor_ended(&self) {
        if self.status().is_final() {
            let mut ended = self.ended.subscribe();
            let _ = ended.wait_for(|ended| *ended).await;
        }
    }

    /// Retries the request by the lifecycle's control table (`action` being a retry): it runs
    /// again, from where it stopped or from its input, once its executor has returned. Returns
    /// the new status and where the new run starts, or the status from which a retry does not
    /// apply.
    pub(super) async fn retry(
        &self,
        plan: &Plan,
        action: Control,
    ) -> Result<(RequestStatus, Restart), RequestStatus> {
        self.executor_ended().await;
        let mut guard = lock(&self.state);
        let TrackedState {
            request,
            vertices,
            kept,
            outputs,
        } = &mut *guard;
        let from = request.status;
        let to = lifecycle::control(from, action).ok_or(from)?;
        // Kept by every failed or stopped run, once its executor has returned: a retry that
        // raced another has found the request running again, above.
        let mut progress = kept.take().ok_or(from)?;
        let launch = if action == Control::RetryFromStart {
            // Everything anew from the input; the attempts count on.
            progress = Progress::new(progress.input().clone()).with_room_for(vertices.len());
            outputs.clear();
            for vertex in vertices.values_mut() {
                vertex.status = VertexStatus::Pending;
                vertex.finished_at_ms = None;
            }
            vec![Instance::root(plan.entry())]
        } else {
            vertices
                .iter_mut()
                .filter(|(_, vertex)| lifecycle::reruns(vertex.status))
                .map(|(instance, vertex)| {
                    vertex.finished_at_ms = None;
                    instance.clone()
                })
                .collect()
        };
        for instance in &launch {
            if let Some(vertex) = vertices.get_mut(instance) {
                vertex.status = lifecycle::on_ready(to);
            }
        }
        let now = now_ms();
        request.status = to;
        request.updated_at_ms = now;
        request.finished_at_ms = None;
        request.failure = None;
        request.retries += 1;
        let queued = launch
            .iter()
            .map(|i| moved(plan, i, lifecycle::on_ready(to)));
        self.events.record(
            &request.request_id,
            queued.chain([EventKind::Request { status: to }]),
        );
        self.runs.store(request.retries, Ordering::Release);
        // Under the state's lock, as every control is signalled, so that the executor follows
        // the last one applied.
        self.control.send_replace(action);
        self.ended.send_replace(false);
        drop(guard);
        Ok((to, Restart { progress, launch }))
    }

    /// The executor's view of pause, resume and stop.
    pub(super) fn subscribe(&self) -> watch::Receiver<Control> {
        self.control.subscribe()
    }

    /// Changes the request and one instance's state (creating it on first mention), unless
    /// the request has ended: then its state is settled, and what its executor reports late (an
    /// attempt that finished as it was stopped) changes nothing, as on Redis.
    fn change(
        &self,
        plan: &Plan,
        instance: &Instance,
        change: impl FnOnce(&mut RequestState, &mut VertexState),
    ) {
        let mut guard = lock(&self.state);
        let TrackedState {
            request, vertices, ..
        } = &mut *guard;
        if request.status.is_final() {
            return;
        }
        let vertex = vertices
            .entry(instance.clone())
            .or_insert_with(|| VertexState::pending(plan.name_of(instance).to_string()));
        let (was, was_request) = (vertex.status, request.status);
        change(request, vertex);
        request.updated_at_ms = now_ms();
        let vertex_moved = (vertex.status != was).then(|| moved(plan, instance, vertex.status));
        let request_moved = (request.status != was_request).then_some(EventKind::Request {
            status: request.status,
        });
        self.events.record(
            &request.request_id,
            vertex_moved.into_iter().chain(request_moved),
        );
    }

    /// `instance` has all its inputs: queued, or parked if the request is paused. Returns
    /// whether it may be launched now.
    pub(super) fn ready(&self, plan: &Plan, instance: &Instance) -> bool {
        let mut launch = false;
        self.change(plan, instance, |request, vertex| {
            vertex.status = lifecycle::on_ready(request.status);
            launch = vertex.status == VertexStatus::Queued;
        });
        launch
    }

    /// An attempt of `instance` starts: returns its number (its attempts count on through
    /// retries of the request), unless the request has ended (then `None`: the attempt must not
    /// run).
    pub(super) fn started(&self, plan: &Plan, instance: &Instance) -> Option<u32> {
        let now = now_ms();
        let mut attempt = None;
        self.change(plan, instance, |request, vertex| {
            request.status = lifecycle::on_start(request.status);
            vertex.status = VertexStatus::Running;
            vertex.attempts += 1;
            vertex.started_at_ms.get_or_insert(now);
            vertex.worker = Some(WORKER.to_owned());
            attempt = Some(vertex.attempts);
        });
        attempt
    }

    /// An attempt of `instance` failed and will be retried after its backoff.
    pub(super) fn retrying(&self, plan: &Plan, instance: &Instance, failure: &Failure) {
        self.change(plan, instance, |_, vertex| {
            vertex.status = VertexStatus::Retrying;
            vertex.last_failure = Some(failure.clone());
        });
    }

    /// `instance` produced its output; `skipped` will never run; `ready` have all their
    /// inputs now, and are queued (or parked, if the request is paused). One step, as on Redis
    /// (one script), so that the state never shows the instance done without what it made
    /// ready. Returns, per instance of `ready`, whether it may be launched now (none, once the
    /// request has ended).
    pub(super) fn done(
        &self,
        plan: &Plan,
        instance: &Instance,
        output: &Bytes,
        skipped: &[Instance],
        ready: &[Instance],
    ) -> Vec<bool> {
        let mut guard = lock(&self.state);
        let TrackedState {
            request,
            vertices,
            outputs,
            ..
        } = &mut *guard;
        if request.status.is_final() {
            return vec![false; ready.len()];
        }
        outputs.insert(instance.clone(), output.clone());
        let now = now_ms();
        let mut settle = |instance: &Instance, status: VertexStatus| {
            let vertex = vertices
                .entry(instance.clone())
                .or_insert_with(|| VertexState::pending(plan.name_of(instance).to_string()));
            vertex.status = status;
            vertex.finished_at_ms = Some(now);
        };
        settle(instance, VertexStatus::Done);
        for skipped in skipped {
            settle(skipped, VertexStatus::Skipped);
        }
        let becomes = lifecycle::on_ready(request.status);
        for next in ready {
            vertices
                .entry(next.clone())
                .or_insert_with(|| VertexState::pending(plan.name_of(next).to_string()))
                .status = becomes;
        }
        request.updated_at_ms = now;
        let settled = std::iter::once(moved(plan, instance, VertexStatus::Done)).chain(
            skipped
                .iter()
                .map(|s| moved(plan, s, VertexStatus::Skipped)),
        );
        let readied = ready.iter().map(|next| moved(plan, next, becomes));
        self.events
            .record(&request.request_id, settled.chain(readied));
        vec![becomes == VertexStatus::Queued; ready.len()]
    }

    /// The exit `instance` produced the request's output: it is done and the request
    /// completed, in one step, so that a stop cannot come between them (and leave a stopped
    /// request with its exit done); unless the request has ended, as for any late report.
    pub(super) fn completed(
        &self,
        plan: &Plan,
        instance: &Instance,
        skipped: &[Instance],
        output: Bytes,
    ) {
        let mut guard = lock(&self.state);
        let TrackedState {
            request,
            vertices,
            outputs,
            ..
        } = &mut *guard;
        if request.status.is_final() {
            return;
        }
        outputs.insert(instance.clone(), output.clone());
        let now = now_ms();
        for (instance, status) in std::iter::once((instance, VertexStatus::Done))
            .chain(skipped.iter().map(|s| (s, VertexStatus::Skipped)))
        {
            let vertex = vertices
                .entry(instance.clone())
                .or_insert_with(|| VertexState::pending(plan.name_of(instance).to_string()));
            vertex.status = status;
            vertex.finished_at_ms = Some(now);
        }
        request.status = RequestStatus::Completed;
        request.output = Some(output);
        request.updated_at_ms = now;
        request.finished_at_ms = Some(now);
        let settled = std::iter::once(moved(plan, instance, VertexStatus::Done)).chain(
            skipped
                .iter()
                .map(|s| moved(plan, s, VertexStatus::Skipped)),
        );
        let end = EventKind::Request {
            status: RequestStatus::Completed,
        };
        self.events
            .record(&request.request_id, settled.chain([end]));
    }

    /// `instance` failed for good after `attempts` attempts.
    pub(super) fn failed(
        &self,
        plan: &Plan,
        instance: &Instance,
        attempts: u32,
        failure: &Failure,
    ) {
        self.change(plan, instance, |_, vertex| {
            vertex.status = VertexStatus::Failed;
            vertex.attempts = attempts;
            vertex.finished_at_ms = Some(now_ms());
            vertex.last_failure = Some(failure.clone());
        });
    }

    /// Applies pause, resume or stop by the lifecycle's control table: the new status, or
    /// the status from which `action` does not apply.
    pub(super) fn control(&self, action: Control) -> Result<RequestStatus, RequestStatus> {
        let mut state = lock(&self.state);
        let from = state.request.status;
        let to = lifecycle::control(from, action).ok_or(from)?;
        let now = now_ms();
        state.request.status = to;
        state.request.updated_at_ms = now;
        if to.is_final() {
            // Ended now, not once the executor has noticed: what was under way is cancelled
            // (the executor's late reports change nothing).
            state.request.finished_at_ms = Some(now);
            for vertex in state.vertices.values_mut() {
                vertex.end(now);
            }
        }
        // What the end cancels is not an event of its own: the end says it (as on Redis).
        self.events.record(
            &state.request.request_id,
            [EventKind::Request { status: to }],
        );
        // Under the lock, so that the executor follows the last control applied.
        self.control.send_replace(action);
        drop(state);
        Ok(to)
    }

    /// The request's executor returned with `outcome`, having computed `progress`: its final
    /// status, output or failure, and what was under way cancelled. Returns the final status
    /// (a stop that came first stays a stop). If it failed, `on_failure` runs before anyone can
    /// see it ended (under the request's lock: it must not lock the request's registry). A
    /// request that did not complete keeps its progress, for a retry.
    pub(super) fn finish(
        &self,
        outcome: RequestOutcome<Bytes>,
        progress: Progress,
        on_failure: impl FnOnce(&RequestFailure),
    ) -> (RequestStatus, Option<RequestFailure>) {
        let mut guard = lock(&self.state);
        let TrackedState {
            request,
            vertices,
            kept,
            ..
        } = &mut *guard;
        let now = now_ms();
        let was = request.status;
        if !request.status.is_final() {
            match outcome {
                RequestOutcome::Completed(output) => {
                    request.status = RequestStatus::Completed;
                    request.output = Some(output);
                }
                RequestOutcome::Failed(failure) => {
                    request.status = RequestStatus::Failed;
                    request.failure = Some(failure);
                }
                RequestOutcome::Stopped | RequestOutcome::Pending(_) => {
                    request.status = RequestStatus::Stopped;
                }
            }
        }
        let ended_at = *request.finished_at_ms.get_or_insert(now);
        request.updated_at_ms = now;
        for vertex in vertices.values_mut() {
            vertex.end(ended_at);
        }
        if request.status != RequestStatus::Completed {
            *kept = Some(progress);
        }
        if request.status != was {
            let end = EventKind::Request {
                status: request.status,
            };
            self.events.record(&request.request_id, [end]);
        }
        let ended = (request.status, request.failure.clone());
        if let (RequestStatus::Failed, Some(failure)) = &ended {
            on_failure(failure);
        }
        drop(guard);
        self.ended.send_replace(true);
        ended
    }
}
