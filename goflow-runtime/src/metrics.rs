//! The engines' metrics, emitted through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! The library only emits: nothing is recorded until the application installs a recorder
//! (`FlowService::with_telemetry` installs a Prometheus one, which `GET /metrics` serves).
//! Every metric has one function here, called where its event happens, once per event on
//! either engine. Each is labelled with its workflow (`flow`) and the version of the graph of
//! the process that counted it (`version`, the structural hash: a worker runs only requests of
//! its own version, so an attempt's is its request's; a rolling deploy shows each build's
//! share):
//!
//! | metric | labels | counted |
//! |---|---|---|
//! | `goflow_flows_started_total` | `flow`, `version` | a request is created (a submission under an id that exists creates nothing), or run |
//! | `goflow_flows_completed_total`, `goflow_flows_failed_total`, `goflow_flows_stopped_total` | `flow`, `version` | a request ends, once, by whatever ended it |
//! | `goflow_vertex_duration_seconds` (histogram) | `flow`, `version`, `vertex`, `outcome` | each attempt: `ok`, `error`, `timeout`, `panic`, or `cancelled` (the attempt was dropped: its request was stopped or failed elsewhere) |
//! | `goflow_vertices_in_flight` (gauge) | `flow`, `version` | attempts running in this process |
//! | `goflow_vertex_retries_total` | `flow`, `version`, `vertex` | a failed attempt is to be retried |
//! | `goflow_vertices_dead_lettered_total` | `flow`, `version`, `vertex` | Redis: a vertex failed for good and was appended to the dead-letter stream |
//! | `goflow_entries_reclaimed_total` | `flow`, `version` | Redis: entries a worker took over from a lost worker |
//! | `goflow_stream_length`, `goflow_consumer_group_lag` (gauges) | `flow`, `version` | Redis: sampled by each worker every [`BACKLOG_SAMPLE_EVERY`] (the ready stream's length, and the workers' group lag) |

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::metrics::{Key, Label, SharedString};

use crate::error::Failure;
use crate::lifecycle::RequestStatus;
use crate::plan::Plan;

/// Requests created.
pub(crate) const FLOWS_STARTED: &str = "goflow_flows_started_total";
/// Requests completed.
pub(crate) const FLOWS_COMPLETED: &str = "goflow_flows_completed_total";
/// Requests failed.
pub(crate) const FLOWS_FAILED: &str = "goflow_flows_failed_total";
/// Requests stopped.
pub(crate) const FLOWS_STOPPED: &str = "goflow_flows_stopped_total";
/// Attempt durations.
pub(crate) const VERTEX_DURATION: &str = "goflow_vertex_duration_seconds";
/// Retries scheduled.
pub(crate) const VERTEX_RETRIES: &str = "goflow_vertex_retries_total";
/// Stream entries reclaimed from lost workers.
pub(crate) const ENTRIES_RECLAIMED: &str = "goflow_entries_reclaimed_total";
/// Vertices dead-lettered.
pub(crate) const DEAD_LETTERED: &str = "goflow_vertices_dead_lettered_total";
/// Attempts running.
pub(crate) const IN_FLIGHT: &str = "goflow_vertices_in_flight";
/// Entries in a ready stream.
pub(crate) const STREAM_LENGTH: &str = "goflow_stream_length";
/// Entries of a ready stream not yet delivered to the workers' group.
pub(crate) const GROUP_LAG: &str = "goflow_consumer_group_lag";

/// How often each Redis worker samples its streams' length and lag.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) const BACKLOG_SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Bucket bounds (seconds) of `goflow_vertex_duration_seconds`: from a millisecond to the
/// longest sensible timeout.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Describes every metric to the installed recorder (its `# HELP` lines).
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(FLOWS_STARTED, "Requests created, by workflow.");
    describe_counter!(FLOWS_COMPLETED, "Requests that completed, by workflow.");
    describe_counter!(FLOWS_FAILED, "Requests that failed, by workflow.");
    describe_counter!(FLOWS_STOPPED, "Requests that were stopped, by workflow.");
    describe_histogram!(
        VERTEX_DURATION,
        "Duration of vertex attempts in seconds, by workflow, vertex and outcome (ok, error, timeout, panic, cancelled)."
    );
    describe_counter!(VERTEX_RETRIES, "Failed attempts that were retried.");
    describe_counter!(
        ENTRIES_RECLAIMED,
        "Ready-stream entries reclaimed from lost workers (Redis engine)."
    );
    describe_counter!(
        DEAD_LETTERED,
        "Vertices that failed for good and were dead-lettered (Redis engine)."
    );
    describe_gauge!(IN_FLIGHT, "Vertex attempts running in this process.");
    describe_gauge!(
        STREAM_LENGTH,
        "Entries in the workflow's ready stream (Redis engine, sampled by workers)."
    );
    describe_gauge!(
        GROUP_LAG,
        "Ready-stream entries not yet delivered to the workers (Redis engine, sampled by workers)."
    );
}

/// A request of `flow` was created.
pub(crate) fn flow_started(plan: &Plan) {
    ::metrics::counter!(FLOWS_STARTED, "flow" => plan.flow(), "version" => version(plan))
        .increment(1);
}

/// The `version` label of `plan`'s metrics.
fn version(plan: &Plan) -> SharedString {
    SharedString::from(Arc::clone(plan.version()))
}

/// A request of `flow` ended with `status` (completed, failed or stopped; other statuses are
/// not an end and are ignored).
pub(crate) fn flow_finished(plan: &Plan, status: RequestStatus) {
    let name = match status {
        RequestStatus::Completed => FLOWS_COMPLETED,
        RequestStatus::Failed => FLOWS_FAILED,
        RequestStatus::Stopped => FLOWS_STOPPED,
        _ => return,
    };
    ::metrics::counter!(name, "flow" => plan.flow(), "version" => version(plan)).increment(1);
}

/// A failed attempt of `vertex` will be retried.
pub(crate) fn retry_scheduled(plan: &Plan, vertex: impl Into<SharedString>) {
    ::metrics::counter!(VERTEX_RETRIES, "flow" => plan.flow(), "version" => version(plan), "vertex" => vertex.into())
        .increment(1);
}

/// `n` stream entries of `flow` were reclaimed from lost workers.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn entries_reclaimed(plan: &Plan, n: u64) {
    ::metrics::counter!(ENTRIES_RECLAIMED, "flow" => plan.flow(), "version" => version(plan))
        .increment(n);
}

/// `vertex` failed for good and was dead-lettered.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn dead_lettered(plan: &Plan, vertex: impl Into<SharedString>) {
    ::metrics::counter!(DEAD_LETTERED, "flow" => plan.flow(), "version" => version(plan), "vertex" => vertex.into())
        .increment(1);
}

/// The ready stream of `flow` holds `length` entries, `lag` of them not yet delivered (`None`
/// when Redis cannot tell).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn stream_backlog(plan: &Plan, length: u64, lag: Option<u64>) {
    ::metrics::gauge!(STREAM_LENGTH, "flow" => plan.flow(), "version" => version(plan))
        .set(length as f64);
    if let Some(lag) = lag {
        ::metrics::gauge!(GROUP_LAG, "flow" => plan.flow(), "version" => version(plan))
            .set(lag as f64);
    }
}

/// The word for how an attempt ended, in its metric's `outcome` label and its span's
/// `outcome` field: `ok`, `error`, `timeout` or `panic`.
pub(crate) fn outcome<T>(result: &Result<T, Failure>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Failure::Timeout(_)) => "timeout",
        Err(Failure::Panic(_)) => "panic",
        Err(_) => "error",
    }
}

/// The outcomes an attempt's duration is labelled with, in the order of
/// [`AttemptKeys::durations`].
const OUTCOMES: [&str; 5] = ["ok", "error", "timeout", "panic", "cancelled"];

/// The metadata of the attempt metrics, as the facade's macros would make it.
static ATTEMPT_METADATA: ::metrics::Metadata<'static> =
    ::metrics::Metadata::new(module_path!(), ::metrics::Level::INFO, Some(module_path!()));

/// The keys of one vertex's attempt metrics, built once with its plan: the facade's macros
/// would build each key (a vector of labels) again at every attempt, three times per vertex
/// run, which cost the embedded engine about a sixth of its time on a chain of quick vertices.
/// Registering through a prebuilt key still reaches whatever recorder is installed by then.
pub(crate) struct AttemptKeys {
    in_flight: Key,
    /// `goflow_vertex_duration_seconds` by outcome, in the order of [`OUTCOMES`].
    durations: [Key; 5],
}

impl AttemptKeys {
    /// The keys of `vertex` (its path) of version `version` of `flow`.
    pub(crate) fn new(flow: &'static str, version: &Arc<str>, vertex: &Arc<str>) -> Self {
        let label = |name: &'static str, value: SharedString| Label::new(name, value);
        let in_flight = Key::from_parts(
            IN_FLIGHT,
            vec![
                label("flow", flow.into()),
                label("version", Arc::clone(version).into()),
            ],
        );
        let durations = OUTCOMES.map(|outcome| {
            Key::from_parts(
                VERTEX_DURATION,
                vec![
                    label("flow", flow.into()),
                    label("version", Arc::clone(version).into()),
                    label("vertex", Arc::clone(vertex).into()),
                    label("outcome", outcome.into()),
                ],
            )
        });
        Self {
            in_flight,
            durations,
        }
    }

    /// One more (`delta` 1.0) or one fewer (-1.0) attempt running in this process.
    fn in_flight(&self, delta: f64) {
        ::metrics::with_recorder(|r| r.register_gauge(&self.in_flight, &ATTEMPT_METADATA))
            .increment(delta);
    }

    /// One attempt ended after `seconds` with `outcome`, one of [`OUTCOMES`].
    fn ended(&self, outcome: &'static str, seconds: f64) {
        let at = OUTCOMES
            .iter()
            .position(|&o| o == outcome)
            .expect("an attempt ends with one of the known outcomes");
        ::metrics::with_recorder(|r| r.register_histogram(&self.durations[at], &ATTEMPT_METADATA))
            .record(seconds);
    }
}

/// The metrics of one running attempt: counted in flight from [`start`](Self::start); its
/// duration and outcome recorded by [`finish`](Self::finish), or as `cancelled` if it is
/// dropped first (its future was dropped).
pub(crate) struct AttemptMeter<'a> {
    keys: &'a AttemptKeys,
    started: Instant,
    finished: bool,
}

impl<'a> AttemptMeter<'a> {
    pub(crate) fn start(keys: &'a AttemptKeys) -> Self {
        keys.in_flight(1.0);
        Self {
            keys,
            started: Instant::now(),
            finished: false,
        }
    }

    /// Records the attempt's outcome.
    pub(crate) fn finish<T>(mut self, result: &Result<T, Failure>) {
        self.record(outcome(result));
    }

    fn record(&mut self, outcome: &'static str) {
        if !std::mem::replace(&mut self.finished, true) {
            self.keys.in_flight(-1.0);
            self.keys
                .ended(outcome, self.started.elapsed().as_secs_f64());
        }
    }
}

impl Drop for AttemptMeter<'_> {
    fn drop(&mut self) {
        self.record("cancelled");
    }
}
