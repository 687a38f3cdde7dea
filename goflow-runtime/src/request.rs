//! A request's state, as both engines report it: its status, each vertex's progress, and its
//! output or failure; how it ends; what a finish hook learns; and the listing of a workflow's
//! requests ([`RequestQuery`], [`RequestPage`], [`StatusCounts`]) and of its dead letters
//! ([`DeadLetterPage`]). The statuses and the rules
//! between them are in the lifecycle core, re-exported here.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use crate::bulk::{BulkOutcome, Selection, Skipped};
pub use crate::error::{Failure, Refusal};
pub use crate::events::{
    EventId, EventKind, EventStream, InvalidEventId, RequestEvent, EVENTS_KEPT,
};
pub use crate::lifecycle::{Control, RequestStatus, UnknownWord, VertexStatus};
pub use crate::limits::Limits;
pub use crate::listing::{
    Cursor, DeadLetter, DeadLetterId, DeadLetterPage, InvalidCursor, RequestPage, RequestQuery,
    RequestSummary, StatusCounts,
};
use crate::plan::{Instance, Layout};
pub use crate::request_id::InvalidRequestId;
use crate::request_id::RequestId;

/// One vertex instance of a request: a vertex outside any `each` body, or one run of a body
/// vertex for one item.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct VertexState {
    /// The vertex path, followed for a body vertex by its item index in each `each` around it
    /// (`verify[3]`).
    pub vertex: String,
    /// Its status.
    pub status: VertexStatus,
    /// Attempts started, the running one included (and, on the Redis engine, any lost with a
    /// crashed worker).
    pub attempts: u32,
    /// When the first attempt started (ms since the Unix epoch).
    pub started_at_ms: Option<u64>,
    /// When it settled (ms since the Unix epoch).
    pub finished_at_ms: Option<u64>,
    /// The worker that ran the latest attempt.
    pub worker: Option<String>,
    /// The latest failed attempt's failure.
    pub last_failure: Option<Failure>,
}

impl VertexState {
    /// An instance waiting for its inputs.
    pub fn pending(vertex: impl Into<String>) -> Self {
        Self {
            vertex: vertex.into(),
            status: VertexStatus::Pending,
            attempts: 0,
            started_at_ms: None,
            finished_at_ms: None,
            worker: None,
            last_failure: None,
        }
    }

    /// Applies the lifecycle's [sweep](crate::lifecycle::sweep) for a request that ended at
    /// `ended_at_ms`: an instance that will never run is settled then.
    pub(crate) fn sweep(&mut self, ended_at_ms: u64) {
        self.settle(crate::lifecycle::sweep(self.status), ended_at_ms);
    }

    /// Applies the lifecycle's [`on_end`](crate::lifecycle::on_end) for a request that ended at
    /// `ended_at_ms`: an instance that was queued or running is cancelled then.
    pub(crate) fn end(&mut self, ended_at_ms: u64) {
        self.settle(crate::lifecycle::on_end(self.status), ended_at_ms);
    }

    fn settle(&mut self, status: VertexStatus, at_ms: u64) {
        if status != self.status {
            self.status = status;
            self.finished_at_ms.get_or_insert(at_ms);
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RequestFailure {
    /// The vertex instance that failed for good (`verify/face_match`, `sweep/verify[3]`).
    pub vertex: String,
    /// How many attempts it made.
    pub attempts: u32,
    /// The last failure.
    pub failure: Failure,
}

impl RequestFailure {
    /// Instance `vertex` failed for good after `attempts` attempts, the last with `failure`.
    pub fn new(vertex: impl Into<String>, attempts: u32, failure: Failure) -> Self {
        Self {
            vertex: vertex.into(),
            attempts,
            failure,
        }
    }
}

/// A request's state.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RequestState {
    /// The workflow.
    pub flow: &'static str,
    /// The request.
    pub request_id: RequestId,
    /// Its status.
    pub status: RequestStatus,
    /// When it was submitted (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When its state last changed.
    pub updated_at_ms: u64,
    /// When it ended.
    pub finished_at_ms: Option<u64>,
    /// Every vertex in plan order: each vertex outside `each` bodies once, and each instance
    /// of a body vertex that exists so far, in item order. Once the request has ended, every
    /// one is settled (`done`, `failed`, `cancelled` or `skipped`).
    pub vertices: Vec<VertexState>,
    /// Why it failed.
    pub failure: Option<RequestFailure>,
    /// How many times it has been retried (each retry runs it on under the same id, and its
    /// vertices' attempts count on).
    pub retries: u32,
    /// The version of the workflow's graph it is pinned to: the structural hash of the graph
    /// it was submitted on (16 hex digits, as `GET /flows` gives each workflow's). Only
    /// workers that have that graph run it.
    pub version: String,
    /// What it waits for, when something outside it holds it back: `version <hash>` on the
    /// Redis engine while no live worker has its version (it runs as soon as one starts).
    pub waiting_for: Option<String>,
    /// The id of the trace its spans are in (32 hex digits), to look it up in a tracing UI:
    /// on the Redis engine always (the trace it was submitted in, or one started for it); on
    /// the embedded engine when its spans are exported (the `otel` feature, with an endpoint).
    pub trace_id: Option<String>,
    /// The encoded output, once completed; decode it with the workflow's codec.
    #[serde(skip)]
    pub output: Option<Bytes>,
}

impl RequestState {
    /// How the request ended, as far as its state tells (`Pending` while it has not); the
    /// output still encoded.
    pub(crate) fn outcome(&self) -> RequestOutcome<Bytes> {
        match (self.status, &self.output, &self.failure) {
            (RequestStatus::Completed, Some(output), _) => {
                RequestOutcome::Completed(output.clone())
            }
            (RequestStatus::Failed, _, Some(failure)) => RequestOutcome::Failed(failure.clone()),
            (RequestStatus::Stopped, _, _) => RequestOutcome::Stopped,
            (status, _, _) => RequestOutcome::Pending(status),
        }
    }
}

/// What a request was given and what its vertices made, as its engine keeps them (for the
/// retention, as the rest of its state), still encoded with the engine's codec: what the
/// dashboard shows of a request beside its state.
#[doc(hidden)]
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RequestData {
    /// The input.
    pub input: Option<Bytes>,
    /// The output of each instance that produced one, by its name in the state's `vertices`
    /// (`verify[3]`), in plan order; a conditional's is the payload of the variant it chose.
    pub outputs: Vec<(String, Bytes)>,
}

/// The instances a request's state lists from its start: every vertex outside `each` bodies
/// (body instances are listed once they exist), each pending.
pub(crate) fn initial_vertices(layout: &Layout) -> BTreeMap<Instance, VertexState> {
    (0..layout.len())
        .filter(|&i| layout.depth(i) == 0)
        .map(|i| {
            let instance = Instance::root(i);
            let name = layout.name_of(&instance).to_string();
            (instance, VertexState::pending(name))
        })
        .collect()
}

/// How a request ended, or that it has not yet.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RequestOutcome<T> {
    /// The output.
    Completed(T),
    /// Why it failed.
    Failed(RequestFailure),
    /// It was stopped.
    Stopped,
    /// Still going when the wait ended.
    Pending(RequestStatus),
}

impl<T> RequestOutcome<T> {
    /// The same outcome with the output converted by `f` (decoded, say).
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<RequestOutcome<U>, E> {
        Ok(match self {
            RequestOutcome::Completed(output) => RequestOutcome::Completed(f(output)?),
            RequestOutcome::Failed(failure) => RequestOutcome::Failed(failure),
            RequestOutcome::Stopped => RequestOutcome::Stopped,
            RequestOutcome::Pending(status) => RequestOutcome::Pending(status),
        })
    }
}

/// What a finish hook learns about the request that ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Finished {
    /// The workflow.
    pub flow: &'static str,
    /// The request.
    pub request_id: RequestId,
    /// How it ended: `Completed`, `Failed` or `Stopped`.
    pub status: RequestStatus,
    /// Why it failed, when it did (and, on Redis, its state had not expired yet).
    pub failure: Option<RequestFailure>,
}

/// Who works on a workflow's requests, as the dashboard shows it: each worker reading its
/// work, and how much of it no worker has read yet.
#[doc(hidden)]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Workers {
    /// Ready entries no worker has read yet (the Redis consumer group's lag; `None` when Redis
    /// cannot tell, as before version 7).
    pub lag: Option<u64>,
    /// The workers.
    pub workers: Vec<WorkerInfo>,
}

/// One worker of a [`Workers`].
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// Its name (the Redis consumer: host, process and a random part).
    pub name: String,
    /// The entries it has read and not yet finished.
    pub in_flight: u64,
    /// How long since it last read or acknowledged an entry (ms).
    pub idle_ms: u64,
    /// The version of the graph it has (the structural hash it runs requests of).
    pub version: String,
}

/// One version of a workflow's graph, as the dashboard and `GET /flow/{name}/versions` list
/// them: its requests under way and its workers, and whether it is still needed.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct VersionInfo {
    /// The version: the graph's structural hash (16 hex digits).
    pub version: String,
    /// Whether it is this engine's: the version new requests are pinned to.
    pub current: bool,
    /// `current`, `draining` (another version, with requests under way) or `drained` (another
    /// version, none under way: it can be forgotten once its workers are gone).
    pub state: VersionState,
    /// Its requests under way (queued, running or paused).
    pub open: u64,
    /// Its workers, with how long since each was last seen.
    pub workers: Vec<WorkerInfo>,
    /// Whether one of its workers is alive (on Redis: has read or renewed within two leases):
    /// its requests under way run, rather than wait.
    pub alive: bool,
    /// Its graph, as `GET /flow/{name}` gives this engine's (as its workers wrote it; `None`
    /// if none of them could).
    pub graph: Option<serde_json::Value>,
}

/// What moving a request to the current version of its workflow's graph did
/// ([`Engine::migrate`](crate::Engine::migrate)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Migrated {
    /// The request.
    pub request_id: RequestId,
    /// The version it was on.
    pub from: String,
    /// The version it is on now: the engine's.
    pub to: String,
    /// Whether it moved (`false`: it was on the engine's version already).
    pub moved: bool,
    /// Its status, which a migration does not change.
    pub status: RequestStatus,
    /// How many vertex instances it queued again on the new version (what was queued, or
    /// running on workers that are gone).
    pub queued: u32,
}

/// Where a [`VersionInfo`] stands.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VersionState {
    /// This engine's version.
    Current,
    /// Another version, with requests under way.
    Draining,
    /// Another version, with none.
    Drained,
}

impl VersionState {
    /// The state of a version that is this engine's (`current`) or not, with `open` requests
    /// under way.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn of(current: bool, open: u64) -> Self {
        match (current, open) {
            (true, _) => Self::Current,
            (false, 0) => Self::Drained,
            (false, _) => Self::Draining,
        }
    }
}
