//! The embedded engine's events: per workflow, the newest [`EVENTS_KEPT`] in memory (to resume
//! from) and a broadcast channel for those following live. A request records the events of a
//! step under its state's lock, so that they are in the order of its state's changes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use futures_util::stream::{self, StreamExt as _};
use tokio::sync::broadcast;

use crate::engine::EventFeed;
use crate::events::{EventId, EventKind, RequestEvent, EVENTS_KEPT};
use crate::request_id::RequestId;
use crate::sync::lock;
use crate::time::now_ms;

/// How many events a follower may fall behind the live channel before it catches up from
/// those kept.
const LIVE_CAPACITY: usize = 1024;

/// The events of every workflow of one engine.
#[derive(Default)]
pub(super) struct EventLog {
    flows: RwLock<HashMap<&'static str, Arc<FlowEvents>>>,
}

/// The events of one workflow.
pub(super) struct FlowEvents {
    state: Mutex<Kept>,
    live: broadcast::Sender<RequestEvent>,
}

struct Kept {
    /// Oldest first.
    events: VecDeque<RequestEvent>,
    /// The last step's `(ms, n)`.
    last: (u64, u64),
}

impl EventLog {
    /// The events of workflow `flow`.
    pub(super) fn flow(&self, flow: &'static str) -> Arc<FlowEvents> {
        if let Some(events) = self
            .flows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(flow)
        {
            return Arc::clone(events);
        }
        let mut flows = self.flows.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(flows.entry(flow).or_insert_with(|| {
            Arc::new(FlowEvents {
                state: Mutex::new(Kept {
                    events: VecDeque::new(),
                    last: (0, 0),
                }),
                live: broadcast::channel(LIVE_CAPACITY).0,
            })
        }))
    }
}

impl FlowEvents {
    /// Records one step of request `request`: `kinds`, in order.
    pub(super) fn record(&self, request: &RequestId, kinds: impl IntoIterator<Item = EventKind>) {
        let mut kinds = kinds.into_iter().peekable();
        // A step that moved nothing is no event.
        if kinds.peek().is_none() {
            return;
        }
        let mut kept = lock(&self.state);
        let now = now_ms();
        let (ms, n) = match kept.last {
            (ms, n) if ms >= now => (ms, n + 1),
            _ => (now, 0),
        };
        kept.last = (ms, n);
        for (i, kind) in (0u32..).zip(kinds) {
            let event = RequestEvent {
                id: EventId::new(ms, n, i),
                request_id: request.clone(),
                at_ms: ms,
                kind,
            };
            if kept.events.len() == EVENTS_KEPT {
                kept.events.pop_front();
            }
            kept.events.push_back(event.clone());
            // Nobody following is the usual case: nothing to send to.
            let _ = self.live.send(event);
        }
    }

    /// The events after `after` (after the newest, without it), those kept first, then, if
    /// `live`, those to come.
    pub(super) fn feed(self: &Arc<Self>, after: Option<EventId>, live: bool) -> EventFeed {
        let kept = lock(&self.state);
        // Subscribed under the lock: nothing recorded falls between the kept and the live.
        let receiver = self.live.subscribe();
        let position = kept
            .events
            .back()
            .map_or(EventId::new(0, 0, 0), |event| event.id);
        let backlog: VecDeque<RequestEvent> = match after {
            Some(after) => kept
                .events
                .iter()
                .filter(|event| event.id > after)
                .cloned()
                .collect(),
            None => VecDeque::new(),
        };
        drop(kept);
        if !live {
            let events = stream::iter(backlog.into_iter().map(Ok)).boxed();
            return EventFeed { position, events };
        }
        let follower = Follower {
            events: Arc::clone(self),
            backlog,
            live: receiver,
            last: after.unwrap_or(position),
        };
        let events = stream::unfold(follower, |mut follower| async move {
            let event = follower.next().await;
            Some((Ok(event), follower))
        })
        .boxed();
        EventFeed { position, events }
    }
}

/// Follows a workflow's events: the backlog, then the live channel, catching up from those
/// kept when it falls behind.
struct Follower {
    events: Arc<FlowEvents>,
    backlog: VecDeque<RequestEvent>,
    live: broadcast::Receiver<RequestEvent>,
    /// The last event handed on.
    last: EventId,
}

impl Follower {
    async fn next(&mut self) -> RequestEvent {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                if event.id > self.last {
                    self.last = event.id;
                    return event;
                }
                continue;
            }
            match self.live.recv().await {
                Ok(event) if event.id > self.last => {
                    self.last = event.id;
                    return event;
                }
                Ok(_) => {}
                // Fallen behind: on from those kept (the oldest kept, if it fell further).
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let kept = lock(&self.events.state);
                    self.backlog = kept
                        .events
                        .iter()
                        .filter(|event| event.id > self.last)
                        .cloned()
                        .collect();
                }
                // The engine is gone: nothing more will happen.
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}
