//! Running a request's vertices in this process: each starts as soon as its inputs are
//! complete ([`Progress`]), runs its attempts with retries as the lifecycle's retry policy
//! decides, and a tracked (submitted) request records every step in its [`Tracked`] state.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::registry::Registry;
use super::tracked::{Restart, Tracked};
use crate::context::Context;
use crate::engine::Hook;
use crate::error::{Error, Failure};
use crate::exec;
use crate::lifecycle::{self, Control, RequestStatus, Retry};
use crate::plan::{Instance, Plan, Progress};
use crate::request::{Finished, RequestFailure, RequestOutcome};
use crate::request_id::RequestId;

/// Executes one untracked request of `plan` on encoded input (the fast path of `run`): returns
/// the encoded output of the exit, and runs the workflow's finish hook, if any.
pub(crate) async fn execute(
    plan: Arc<Plan>,
    request_id: RequestId,
    input: Bytes,
    hooks: Arc<HashMap<&'static str, Hook>>,
) -> Result<Bytes, Error> {
    // A run request (untracked, so never stopped) is counted here, from start to end.
    crate::metrics::flow_started(&plan);
    let (result, _) = execute_tracked(&plan, request_id.clone(), fresh(&plan, input), None).await;
    let (status, failure) = match &result {
        Ok(_) => (RequestStatus::Completed, None),
        Err(Error::Stopped { .. }) => (RequestStatus::Stopped, None),
        Err(Error::Failed { failure, .. }) => (RequestStatus::Failed, Some(failure.clone())),
        Err(_) => (RequestStatus::Failed, None),
    };
    crate::metrics::flow_finished(&plan, status);
    if let Some(failure) = &failure {
        log_failure(plan.flow(), &request_id, failure);
    }
    if let Some(hook) = hook(&hooks, plan.flow(), request_id, status, failure) {
        tokio::spawn(hook);
    }
    result
}

/// Where a new request's run starts: its entry vertex, on its input.
pub(super) fn fresh(plan: &Plan, input: Bytes) -> Restart {
    Restart {
        progress: Progress::new(input).with_room_for(plan.vertices().len()),
        launch: vec![Instance::root(plan.entry())],
    }
}

/// The one line of a request that failed for good, as the Redis worker logs it.
fn log_failure(flow: &'static str, request_id: &RequestId, failure: &RequestFailure) {
    tracing::warn!(
        flow,
        request = request_id.as_str(),
        vertex = failure.vertex,
        attempts = failure.attempts,
        failure = %failure.failure,
        "a request failed"
    );
}

/// Runs a submitted (or retried) request in a task of its own, from `restart`, in the
/// submitter's span (the HTTP request's, say), so that the request's span is a child of it.
pub(super) fn spawn_tracked(
    plan: Arc<Plan>,
    id: RequestId,
    restart: Restart,
    tracked: Arc<Tracked>,
    registry: Arc<Registry>,
    hooks: Arc<HashMap<&'static str, Hook>>,
) {
    let submitter = tracing::Span::current();
    tokio::spawn(
        async move {
            let (result, progress) =
                execute_tracked(&plan, id.clone(), restart, Some(&tracked)).await;
            let outcome = match result {
                Ok(output) => RequestOutcome::Completed(output),
                Err(Error::Failed { failure, .. }) => RequestOutcome::Failed(failure),
                Err(Error::Stopped { .. }) => RequestOutcome::Stopped,
                // An engine bug: the request fails with it rather than hanging.
                Err(other) => RequestOutcome::Failed(RequestFailure::new(
                    "",
                    0,
                    Failure::Error(crate::error::chain(&other)),
                )),
            };
            // Its dead letter is written as it fails: whoever sees it failed finds it.
            let runs = tracked.runs();
            let (status, failure) = tracked.finish(outcome, progress, |failure| {
                registry.dead_letter(plan.flow(), &id, failure);
            });
            // A submitted request's end is counted here, once, with the status it ends with.
            crate::metrics::flow_finished(&plan, status);
            if let Some(failure) = &failure {
                log_failure(plan.flow(), &id, failure);
            }
            registry.finished(plan.flow(), id.clone(), runs);
            if let Some(hook) = hook(&hooks, plan.flow(), id, status, failure) {
                // In a task of its own, so that a panicking hook is only that task's end; and
                // waited for, so that a shutdown that waits for the requests in flight waits
                // for their hooks too.
                let _ = tokio::spawn(hook).await;
            }
            registry.settled();
        }
        .instrument(submitter),
    );
}

/// The call of `flow`'s finish hook, if it has one.
fn hook(
    hooks: &HashMap<&'static str, Hook>,
    flow: &'static str,
    request_id: RequestId,
    status: RequestStatus,
    failure: Option<RequestFailure>,
) -> Option<BoxFuture<'static, ()>> {
    hooks.get(flow).map(|hook| {
        hook(Finished {
            flow,
            request_id,
            status,
            failure,
        })
    })
}

/// The executor of untracked and submitted requests: with a tracker, it records each
/// vertex's progress, holds ready vertices back while the request is paused, and ends at once
/// when it is stopped. It starts from `restart` (a new request's entry, or what a retry runs
/// on from) and returns, beside the outcome, the progress it made, for a retry.
///
/// Every vertex starts as soon as its inputs are complete. One that starts while others of the
/// request run gets a task of its own, so independent branches run in parallel; one that has
/// the request to itself (the entry, each vertex of a chain) runs in the request's task, which
/// spares it a task and a cross-thread wake-up. The first vertex to fail for good fails the
/// request: the others are cancelled (their `Context` reports it, and they are dropped).
async fn execute_tracked(
    plan: &Arc<Plan>,
    request_id: RequestId,
    restart: Restart,
    tracker: Option<&Arc<Tracked>>,
) -> (Result<Bytes, Error>, Progress) {
    let Restart {
        mut progress,
        launch,
    } = restart;
    let result = run_vertices(plan, request_id, &mut progress, launch, tracker).await;
    (result, progress)
}

async fn run_vertices(
    plan: &Arc<Plan>,
    request_id: RequestId,
    progress: &mut Progress,
    launch: Vec<Instance>,
    tracker: Option<&Arc<Tracked>>,
) -> Result<Bytes, Error> {
    let cancel = CancellationToken::new();
    // The cancellation is signalled on return, before the vertices still running are dropped
    // (declared after it, `running` would be dropped first).
    let _cancel_on_return = cancel.clone().drop_guard();
    let mut control = tracker.map(|t| {
        let mut rx = t.subscribe();
        // A pause or stop may have come before this task started: act on the current value.
        rx.mark_changed();
        rx
    });
    let mut parked: Vec<(Instance, Vec<Bytes>)> = Vec::new();
    // Every vertex span of the request is a child of the request's span.
    let span = tracing::info_span!(
        "goflow.request",
        flow = plan.flow(),
        request_id = request_id.as_str(),
        version = &**plan.version()
    );
    if let Some(tracker) = tracker {
        tracker.traced(&span);
    }
    let launcher = Launch {
        plan,
        request_id: &request_id,
        cancel: &cancel,
        tracker,
        span: &span,
    };
    let mut running = Running::default();
    for instance in launch {
        let parts = inputs_of(plan, progress, &instance)?;
        launcher.ready(&mut running, &mut parked, instance, parts);
    }

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
                let (done, attempts, result) = finished?;
                // A conditional's output or a for-each's collection that the plan cannot route
                // fails the vertex like a failed attempt.
                let advanced = result.and_then(|output| {
                    let advance = plan.advance(&done, output.clone())?;
                    Ok((output, advance))
                });
                let (output, mut advance) = match advanced {
                    Ok(advanced) => advanced,
                    Err(failure) => {
                        if let Some(tracker) = tracker {
                            tracker.failed(plan, &done, attempts, &failure);
                        }
                        return Err(Error::Failed {
                            flow: plan.flow(),
                            request_id,
                            failure: RequestFailure::new(plan.name_of(&done).to_string(), attempts, failure),
                        });
                    }
                };
                if advance.completes {
                    if let Some(tracker) = tracker {
                        tracker.completed(plan, &done, &advance.skipped, output.clone());
                    }
                    // The exit is the only vertex without successors, so every other one has
                    // finished.
                    return Ok(output);
                }
                let skipped = std::mem::take(&mut advance.skipped);
                let ready = progress.apply(advance);
                let now = match tracker {
                    Some(tracker) => tracker.done(plan, &done, &output, &skipped, &ready),
                    None => vec![true; ready.len()],
                };
                for (next, now) in ready.into_iter().zip(now) {
                    let parts = inputs_of(plan, progress, &next)?;
                    if now {
                        launcher.start(&mut running, next, parts);
                    } else {
                        parked.push((next, parts));
                    }
                }
            }
            action = changed(&mut control) => match action {
                Control::Stop => {
                    return Err(Error::Stopped { flow: plan.flow(), request_id });
                }
                // A retry's run starts once its request is running again: like a resume, with
                // nothing parked yet.
                Control::Resume | Control::Retry | Control::RetryFromStart => {
                    for (instance, parts) in std::mem::take(&mut parked) {
                        launcher.ready(&mut running, &mut parked, instance, parts);
                    }
                }
                Control::Pause => {}
            },
        }
    }
}

/// The encoded input parts of `instance`, which has all its inputs.
fn inputs_of(plan: &Plan, progress: &Progress, instance: &Instance) -> Result<Vec<Bytes>, Error> {
    progress
        .inputs(plan, instance)
        .ok_or_else(|| Error::Internal {
            flow: plan.flow(),
            message: format!(
                "`{}` became ready before its inputs",
                plan.name_of(instance)
            ),
        })
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

/// Launches the instances that become ready (or parks them while the request is paused).
struct Launch<'a> {
    plan: &'a Arc<Plan>,
    request_id: &'a RequestId,
    cancel: &'a CancellationToken,
    tracker: Option<&'a Arc<Tracked>>,
    span: &'a tracing::Span,
}

impl Launch<'_> {
    /// Makes `instance` ready: records it (queued, or parked if the request is paused) and
    /// launches it unless it is parked.
    fn ready(
        &self,
        running: &mut Running,
        parked: &mut Vec<(Instance, Vec<Bytes>)>,
        instance: Instance,
        parts: Vec<Bytes>,
    ) {
        if let Some(tracker) = self.tracker {
            if !tracker.ready(self.plan, &instance) {
                parked.push((instance, parts));
                return;
            }
        }
        self.start(running, instance, parts);
    }

    /// Launches `instance`, made ready (and recorded so) already.
    fn start(&self, running: &mut Running, instance: Instance, parts: Vec<Bytes>) {
        let plan = self.plan;
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
                let (attempts, result) =
                    with_retries(&plan, &instance, &parts, &ctx, tracker.as_deref()).await;
                (instance, attempts, result)
            }
            .instrument(self.span.clone()),
        );
    }
}

/// Runs an instance until it succeeds or the retry policy gives up, sleeping the backoff
/// between attempts, and records each attempt's start and each retry in `tracker`, which
/// numbers the attempts (they count on through retries of the request; the retry policy counts
/// the failures of this launch). Cancelling `ctx` ends the wait for a retry. Returns the last
/// attempt's number and result.
async fn with_retries(
    plan: &Plan,
    instance: &Instance,
    parts: &[Bytes],
    ctx: &Context,
    tracker: Option<&Tracked>,
) -> (u32, Result<Bytes, Failure>) {
    let vertex = plan.vertex(instance.vertex());
    let mut failures = 0;
    loop {
        let attempt = match tracker {
            Some(tracker) => match tracker.started(plan, instance) {
                Some(attempt) => attempt,
                // The request ended (stopped) after this vertex was launched: it does not run,
                // and its executor, which has ended too, drops this future.
                None => return std::future::pending().await,
            },
            None => failures + 1,
        };
        let result = exec::attempt(vertex, parts, ctx.with_attempt(attempt)).await;
        let failure = match result {
            Ok(output) => return (attempt, Ok(output)),
            Err(failure) => failure,
        };
        failures += 1;
        let Retry::After(delay) = lifecycle::retry(vertex.options(), &failure, failures) else {
            return (attempt, Err(failure));
        };
        tracing::debug!(vertex = &**vertex.path(), attempt, %failure, "retrying");
        crate::metrics::retry_scheduled(plan, Arc::clone(vertex.path()));
        if let Some(tracker) = tracker {
            tracker.retrying(plan, instance, &failure);
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = ctx.cancelled() => return (attempt, Err(failure)),
        }
    }
}

/// A vertex run: the instance, how many attempts it made, and how the last one went.
type Ran = (Instance, u32, Result<Bytes, Failure>);

/// The vertices of a request that are running. A vertex that has the request to itself runs
/// inside the request's own task (a chain runs there from end to end, without a task or a
/// cross-thread wake-up per vertex); one that starts beside others gets a task of its own,
/// so that independent branches run in parallel. Dropping this cancels them all.
#[derive(Default)]
struct Running {
    /// The vertex running in the request's task, if any.
    inline: Option<BoxFuture<'static, Ran>>,
    tasks: JoinSet<Ran>,
}

impl Running {
    fn is_empty(&self) -> bool {
        self.inline.is_none() && self.tasks.is_empty()
    }

    fn start(&mut self, vertex: impl Future<Output = Ran> + Send + 'static) {
        if self.is_empty() {
            self.inline = Some(Box::pin(vertex));
        } else {
            self.tasks.spawn(vertex);
        }
    }

    /// The next vertex to finish. Call only when not [empty](Self::is_empty).
    async fn next(&mut self, flow: &'static str) -> Result<Ran, Error> {
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
