//! A request's state, as both engines report it: its status, each vertex's progress, and its
//! output or failure.

#[cfg(feature = "redis")]
use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use serde::Serialize;

use crate::error::Failure;
#[cfg(feature = "redis")]
use crate::plan::{Instance, Plan};
use crate::request_id::RequestId;

/// Milliseconds since the Unix epoch, the unit of every timestamp in a [`RequestState`].
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where a request is in its life: `queued → running → completed | failed | stopped`, with
/// `paused` in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Accepted; no vertex has started yet.
    Queued,
    /// At least one vertex has started.
    Running,
    /// Paused: nothing new starts until it is resumed.
    Paused,
    /// The exit vertex produced the output.
    Completed,
    /// A vertex failed for good.
    Failed,
    /// Stopped on request.
    Stopped,
}

impl RequestStatus {
    /// Whether the request has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Stopped)
    }

    /// The status's name, as in JSON and in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }

    #[cfg(feature = "redis")]
    pub(crate) fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "stopped" => Self::Stopped,
            _ => return None,
        })
    }
}

/// Where a vertex is within its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VertexStatus {
    /// Waiting for its inputs.
    Pending,
    /// Enqueued for a worker.
    Queued,
    /// An attempt is running.
    Running,
    /// Waiting for its backoff before another attempt.
    Retrying,
    /// Held back while the request is paused.
    Parked,
    /// Produced its output.
    Done,
    /// Failed for good.
    Failed,
    /// Was running when its request ended (stopped, or failed elsewhere), and was cancelled.
    Cancelled,
    /// In an arm of a conditional that another arm was chosen over: it never runs.
    Skipped,
}

impl VertexStatus {
    #[cfg(feature = "redis")]
    fn parse(text: &str) -> Self {
        match text {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "retrying" => Self::Retrying,
            "parked" => Self::Parked,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            "skipped" => Self::Skipped,
            _ => Self::Pending,
        }
    }
}

/// One vertex instance of a request: a vertex outside any `each` body, or one run of a body
/// vertex for one item.
#[derive(Debug, Clone, Serialize)]
pub struct VertexState {
    /// The vertex path, followed for a body vertex by its item index in each `each` around it
    /// (`verify[3]`).
    pub vertex: String,
    /// Its status.
    pub status: VertexStatus,
    /// Attempts started (including any lost with a crashed worker).
    pub attempts: u32,
    /// When the first attempt started (ms since the Unix epoch).
    pub started_at_ms: Option<u64>,
    /// When it finished (ms since the Unix epoch).
    pub finished_at_ms: Option<u64>,
    /// The worker that ran the latest attempt.
    pub worker: Option<String>,
    /// The latest failed attempt's failure.
    pub last_failure: Option<Failure>,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RequestFailure {
    /// The vertex that failed for good.
    pub vertex: String,
    /// How many attempts it made.
    pub attempts: u32,
    /// The last failure.
    pub failure: Failure,
}

/// A request's state.
#[derive(Debug, Clone, Serialize)]
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
    /// of a body vertex that exists so far, in item order.
    pub vertices: Vec<VertexState>,
    /// Why it failed.
    pub failure: Option<RequestFailure>,
    /// The encoded output, once completed; decode it with the workflow's codec.
    #[serde(skip)]
    pub output: Option<Bytes>,
}

impl RequestState {
    /// Reads the state from the fields of its Redis hash; `None` when there is no status (the
    /// request does not exist or has expired).
    #[cfg(feature = "redis")]
    pub(crate) fn from_fields(
        plan: &Plan,
        request_id: RequestId,
        mut fields: HashMap<String, Bytes>,
    ) -> Option<Self> {
        let text = |fields: &HashMap<String, Bytes>, key: &str| {
            fields
                .get(key)
                .and_then(|b| std::str::from_utf8(b).ok().map(str::to_owned))
        };
        let number = |fields: &HashMap<String, Bytes>, key: &str| {
            text(fields, key).and_then(|t| t.parse::<u64>().ok())
        };
        let status = RequestStatus::parse(&text(&fields, "st")?)?;
        // Vertices outside `each` bodies are listed even before they start; body instances
        // once they exist (each has a status field from the moment it is enqueued).
        let mut instances: BTreeSet<Instance> = plan
            .vertices()
            .iter()
            .enumerate()
            .filter(|(_, v)| v.depth() == 0)
            .map(|(i, _)| Instance::root(i))
            .collect();
        instances.extend(
            fields
                .keys()
                .filter_map(|k| k.strip_prefix("s:"))
                .filter_map(Instance::parse_key)
                .filter(|i| i.vertex() < plan.vertices().len()),
        );
        let vertices = instances
            .into_iter()
            .map(|instance| {
                let key = instance.key();
                VertexState {
                    vertex: plan.name_of(&instance).to_string(),
                    status: text(&fields, &format!("s:{key}"))
                        .map_or(VertexStatus::Pending, |s| VertexStatus::parse(&s)),
                    attempts: number(&fields, &format!("a:{key}")).map_or(0, |n| n as u32),
                    started_at_ms: number(&fields, &format!("t0:{key}")),
                    finished_at_ms: number(&fields, &format!("t1:{key}")),
                    worker: text(&fields, &format!("w:{key}")),
                    last_failure: fields
                        .get(&format!("e:{key}"))
                        .and_then(|b| serde_json::from_slice::<RequestFailure>(b).ok())
                        .map(|f| f.failure),
                }
            })
            .collect();
        let failure = fields
            .get("err")
            .and_then(|b| serde_json::from_slice::<RequestFailure>(b).ok());
        Some(Self {
            flow: plan.flow(),
            request_id,
            status,
            created_at_ms: number(&fields, "ct").unwrap_or(0),
            updated_at_ms: number(&fields, "ut").unwrap_or(0),
            finished_at_ms: number(&fields, "ft"),
            vertices,
            failure,
            output: fields.remove("out"),
        })
    }
}

/// How a request ended, or that it has not yet.
#[derive(Debug)]
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

/// The answer to a pause, resume or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Done; the request now has this status.
    Done(RequestStatus),
    /// Not possible from the request's current status (pausing a finished request, say).
    Conflict(RequestStatus),
    /// No such request (never submitted, or expired).
    Missing,
}
