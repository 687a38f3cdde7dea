//! The live events of requests: one per vertex transition (queued, parked, running, retrying,
//! done, failed) and one per change of a request's status (its end included), each with an
//! [`EventId`] to resume from. Both engines keep the newest [`EVENTS_KEPT`] of each workflow:
//! the embedded engine in memory, the Redis engine in a capped stream its scripts append to in
//! the step that makes the transition.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use futures_util::future::ready;
use futures_util::stream::{self, BoxStream, StreamExt as _};
use serde::{Serialize, Serializer};

use crate::engine::Engine;
use crate::error::Error;
use crate::lifecycle::{RequestStatus, VertexStatus};
use crate::request_id::RequestId;

/// A stream of events, as [`Engine::request_events`] and [`Engine::flow_events`] answer it.
pub type EventStream = BoxStream<'static, Result<RequestEvent, Error>>;

/// About how many events each workflow keeps to resume from (`Last-Event-ID`): a client that
/// falls further behind resumes from the oldest kept.
pub const EVENTS_KEPT: usize = 10_000;

/// Where an event is in its workflow's events: ordered, and the point to resume after. Its
/// text is `<ms>-<n>-<i>` (`i`: the event's place among those one step made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    ms: u64,
    n: u64,
    i: u32,
}

impl EventId {
    pub(crate) const fn new(ms: u64, n: u64, i: u32) -> Self {
        Self { ms, n, i }
    }

    /// When the step that made it happened (ms since the Unix epoch).
    pub fn at_ms(&self) -> u64 {
        self.ms
    }

    /// The step: `<ms>-<n>`, as the Redis engine's stream names its entries.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn step(&self) -> (u64, u64) {
        (self.ms, self.n)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.ms, self.n, self.i)
    }
}

impl FromStr for EventId {
    type Err = InvalidEventId;

    fn from_str(text: &str) -> Result<Self, InvalidEventId> {
        let mut parts = text.splitn(3, '-');
        let mut number = || parts.next().and_then(|p| p.parse::<u64>().ok());
        match (number(), number(), number()) {
            (Some(ms), Some(n), Some(i)) => {
                let i = u32::try_from(i).map_err(|_| InvalidEventId)?;
                Ok(Self::new(ms, n, i))
            }
            _ => Err(InvalidEventId),
        }
    }
}

/// A text that is not an [`EventId`]: event ids come from the events (`Last-Event-ID`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event id is `<ms>-<n>-<i>`, as the events name theirs")]
pub struct InvalidEventId;

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One event of a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RequestEvent {
    /// Where it is in its workflow's events.
    pub id: EventId,
    /// The request.
    pub request_id: RequestId,
    /// When it happened (ms since the Unix epoch).
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What an event says happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A vertex instance moved to `status`.
    Vertex {
        /// Its display name (`verify/face_match`, `sweep/verify[3]`).
        vertex: Arc<str>,
        /// Its new status.
        status: VertexStatus,
    },
    /// The request moved to `status`; a final status is its end.
    Request {
        /// Its new status.
        status: RequestStatus,
    },
}

impl RequestEvent {
    /// Whether it is its request's end: a final status.
    pub fn is_end(&self) -> bool {
        matches!(self.kind, EventKind::Request { status } if status.is_final())
    }

    /// The SSE event name: `vertex` or `request`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            EventKind::Vertex { .. } => "vertex",
            EventKind::Request { .. } => "request",
        }
    }
}

/// The events of request `id` of workflow `flow` (see [`Engine::request_events`]): written
/// once, over the engines' feeds of their workflows' events, so both answer alike.
pub(crate) async fn of_request<E: Engine>(
    engine: &E,
    flow: &str,
    id: RequestId,
    after: Option<EventId>,
) -> Result<EventStream, Error> {
    // Followed first, read second: what happens between the two is in the feed, and what
    // happened before it is in the state.
    let feed = engine.event_feed(flow, after, true).await?;
    let state = engine.state(flow, &id).await?;
    let at = |kind| RequestEvent {
        id: feed.position,
        request_id: id.clone(),
        at_ms: state.updated_at_ms,
        kind,
    };
    let mut first = Vec::new();
    if after.is_none() {
        // The request as it stands.
        for vertex in &state.vertices {
            if vertex.status != VertexStatus::Pending {
                first.push(at(EventKind::Vertex {
                    vertex: Arc::from(vertex.vertex.as_str()),
                    status: vertex.status,
                }));
            }
        }
        first.push(at(EventKind::Request {
            status: state.status,
        }));
    } else if state.status.is_final() {
        // Resumed after it ended: what was kept since the resumed event, up to the end; the
        // end itself if that is gone, or was the resumed event.
        let end = at(EventKind::Request {
            status: state.status,
        });
        let id = id.clone();
        let kept = engine
            .event_feed(flow, after, false)
            .await?
            .events
            .filter(move |event| ready(event.as_ref().map_or(true, |e| e.request_id == id)));
        let events = kept.chain(stream::once(ready(Ok(end))));
        return Ok(through(
            events.boxed(),
            |event| matches!(event, Ok(event) if event.is_end()),
        ));
    }
    if state.status.is_final() {
        return Ok(stream::iter(first.into_iter().map(Ok)).boxed());
    }
    // The steps between the feed's start and the state's read are in both: a live event that
    // the state already showed (the same status, or an earlier one in the vertex's life) is
    // left out, until the vertex (or the request) moves on past what the state showed.
    let mut overlap = Overlap::of(&first);
    let live = feed.events.filter(move |event| {
        ready(match event {
            Ok(event) => event.request_id == id && overlap.is_new(event),
            Err(_) => true,
        })
    });
    let first = stream::iter(first.into_iter().map(Ok));
    // Up to its end, included.
    Ok(through(
        first.chain(live).boxed(),
        |event| matches!(event, Ok(event) if event.is_end()),
    ))
}

/// What a request's stream showed as it stood, for leaving out the live events it showed too.
struct Overlap {
    vertices: std::collections::HashMap<Arc<str>, VertexStatus>,
    request: Option<RequestStatus>,
}

impl Overlap {
    fn of(shown: &[RequestEvent]) -> Self {
        let mut overlap = Self {
            vertices: std::collections::HashMap::new(),
            request: None,
        };
        for event in shown {
            match &event.kind {
                EventKind::Vertex { vertex, status } => {
                    overlap.vertices.insert(Arc::clone(vertex), *status);
                }
                EventKind::Request { status } => overlap.request = Some(*status),
            }
        }
        overlap
    }

    /// Whether `event` says more than was shown; once one does, its vertex (or the request)
    /// is followed as it comes.
    fn is_new(&mut self, event: &RequestEvent) -> bool {
        match &event.kind {
            EventKind::Vertex { vertex, status } => match self.vertices.get(vertex) {
                Some(shown) if status == shown || stage(*status) < stage(*shown) => false,
                Some(_) => {
                    self.vertices.remove(vertex);
                    true
                }
                None => true,
            },
            EventKind::Request { status } => {
                let new = self.request != Some(*status);
                self.request = None;
                new
            }
        }
    }
}

/// Where a status comes in one run of a vertex: waiting, ready, under way, settled.
fn stage(status: VertexStatus) -> u8 {
    match status {
        VertexStatus::Pending => 0,
        VertexStatus::Queued | VertexStatus::Parked => 1,
        VertexStatus::Running | VertexStatus::Retrying => 2,
        VertexStatus::Done
        | VertexStatus::Failed
        | VertexStatus::Cancelled
        | VertexStatus::Skipped => 3,
    }
}

/// `events` up to the first for which `last` holds (or an error), that one included: the
/// stream ends then, without waiting for another.
pub(crate) fn through(
    events: EventStream,
    last: impl Fn(&Result<RequestEvent, Error>) -> bool + Send + 'static,
) -> EventStream {
    stream::unfold(
        (events, false, last),
        |(mut events, ended, last)| async move {
            if ended {
                return None;
            }
            let event = events.next().await?;
            let ended = event.is_err() || last(&event);
            Some((event, (events, ended, last)))
        },
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind) -> RequestEvent {
        RequestEvent {
            id: EventId::new(1, 0, 0),
            request_id: RequestId::generate(),
            at_ms: 1,
            kind,
        }
    }

    fn vertex(name: &str, status: VertexStatus) -> RequestEvent {
        event(EventKind::Vertex {
            vertex: Arc::from(name),
            status,
        })
    }

    #[test]
    fn live_events_the_state_showed_are_left_out() {
        let shown = [
            vertex("a", VertexStatus::Done),
            vertex("b", VertexStatus::Running),
            event(EventKind::Request {
                status: RequestStatus::Running,
            }),
        ];
        let mut overlap = Overlap::of(&shown);
        // Steps the state already reflected.
        assert!(!overlap.is_new(&vertex("a", VertexStatus::Running)));
        assert!(!overlap.is_new(&vertex("a", VertexStatus::Done)));
        assert!(!overlap.is_new(&vertex("b", VertexStatus::Queued)));
        assert!(!overlap.is_new(&event(EventKind::Request {
            status: RequestStatus::Running
        })));
        // What comes after it.
        assert!(overlap.is_new(&vertex("b", VertexStatus::Retrying)));
        assert!(overlap.is_new(&vertex("b", VertexStatus::Running)));
        assert!(overlap.is_new(&vertex("c", VertexStatus::Queued)));
        assert!(overlap.is_new(&event(EventKind::Request {
            status: RequestStatus::Completed
        })));
    }

    #[test]
    fn ids_read_back_and_order_by_step_then_place() {
        let id = EventId::new(1_700_000_000_000, 3, 2);
        assert_eq!(id.to_string(), "1700000000000-3-2");
        assert_eq!("1700000000000-3-2".parse::<EventId>(), Ok(id));
        assert!(EventId::new(5, 1, 9) < EventId::new(5, 2, 0));
        assert!(EventId::new(5, 1, 0) < EventId::new(5, 1, 1));
        for bad in ["", "1-2", "a-b-c", "1-2-3-4", "1-2-99999999999"] {
            assert!(bad.parse::<EventId>().is_err(), "{bad}");
        }
    }
}
