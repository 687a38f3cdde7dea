//! The Redis engine's events, read from each workflow's events stream (`T:events`), which the
//! scripts append to in the step that moves a request or its vertices (see PROTOCOL.md,
//! "Events"): one entry per step, naming the request, its new status and the instances moved.
//! A follower reads on a connection of its own (a blocking `XREAD`), catching up with `XRANGE`
//! first when it resumes after an event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{ClientLike, StreamsInterface};
use futures_util::stream::{self, StreamExt as _};
use tokio::sync::mpsc;

use super::protocol::{EVENT_REQUEST, EVENT_STATUS, EVENT_VERTICES};
use super::{connect_client, stream_read, RedisEngine, RedisError, StreamEntry};
use crate::codec::Codec;
use crate::engine::EventFeed;
use crate::error::Error;
use crate::events::{EventId, EventKind, RequestEvent};
use crate::plan::{Instance, Plan};
use crate::request_id::RequestId;

/// The engine's events are off ([`RedisConfig::events`](super::RedisConfig::events)): there
/// are none to follow.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "this Redis engine's events are off (RedisConfig::events, GOFLOW_EVENTS=off): there are \
     none to follow"
)]
pub struct EventsOff;

/// Entries read per command.
const PAGE: u64 = 256;

/// How long one blocking read waits before the follower checks that it is still followed.
const BLOCK: Duration = Duration::from_secs(5);

impl<C: Codec> RedisEngine<C> {
    /// The events of workflow `flow` after `after` (or after the newest now), read by a task
    /// of their own per partition, which ends when the stream is dropped, or, unless `live`,
    /// once it has read up to the newest. The partitions' events arrive as they are read: in
    /// order within a partition, not across them (a feed resumed after the last event it
    /// received may miss another partition's events of the same moment).
    pub(crate) async fn feed(
        &self,
        flow: &str,
        after: Option<EventId>,
        live: bool,
    ) -> Result<EventFeed, Error> {
        let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
        if !self.inner.config.events {
            return Err(Error::engine(EventsOff));
        }
        let name = flow.plan.flow();
        let mut starts = Vec::with_capacity(flow.keys.all().len());
        for keys in flow.keys.all() {
            let newest: Vec<StreamEntry> = self
                .inner
                .client
                .xrevrange_values(keys.events.clone(), "+", "-", Some(1))
                .await
                .map_err(|e| RedisError::from(e).into_error(name))?;
            let newest = newest
                .first()
                .and_then(|(id, fields)| events_of(&flow.plan, id, fields).last().map(|e| e.id))
                .unwrap_or(EventId::new(0, 0, 0));
            starts.push((keys.events.clone(), newest));
        }
        let position = starts.iter().map(|(_, newest)| *newest).max();
        let position = position.unwrap_or(EventId::new(0, 0, 0));
        let (sender, receiver) = mpsc::channel(PAGE as usize);
        for (key, newest) in starts {
            tokio::spawn(follow(
                self.inner.config.url.clone(),
                key,
                Arc::clone(&flow.plan),
                after.unwrap_or(newest),
                live,
                sender.clone(),
            ));
        }
        drop(sender);
        let events = stream::unfold(receiver, |mut receiver| async move {
            let event = receiver.recv().await?;
            Some((event, receiver))
        })
        .boxed();
        Ok(EventFeed { position, events })
    }
}

/// Reads the events after `after` from stream `key` and sends them on, until nobody receives.
async fn follow(
    url: String,
    key: String,
    plan: Arc<Plan>,
    after: EventId,
    live: bool,
    sender: mpsc::Sender<Result<RequestEvent, Error>>,
) {
    let name = plan.flow();
    let client = match connect_client(&url, None).await {
        Ok(client) => client,
        Err(error) => {
            let _ = sender.send(Err(error.into_error(name))).await;
            return;
        }
    };
    // The step of `after` may hold events after it: read from that step, inclusive, in pages;
    // then block for what comes next.
    let (ms, n) = after.step();
    let mut catch_up = Some(format!("{ms}-{n}"));
    let mut last = format!("{ms}-{n}");
    'follow: loop {
        let read = match &catch_up {
            Some(start) => client
                .xrange_values::<String, String, Bytes, _, _, _>(
                    key.clone(),
                    start.as_str(),
                    "+",
                    Some(PAGE),
                )
                .await
                .map_err(RedisError::from),
            None => {
                let read = client.xread::<fred::prelude::Value, _, _>(
                    Some(PAGE),
                    Some(BLOCK.as_millis() as u64),
                    key.clone(),
                    last.clone(),
                );
                tokio::select! {
                    read = read => read.map_err(RedisError::from).and_then(stream_read).map(|mut streams| {
                        streams.remove(key.as_str()).unwrap_or_default()
                    }),
                    () = sender.closed() => break 'follow,
                }
            }
        };
        let entries = match read {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(error = %crate::error::chain(&error), flow = name, "reading events failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let caught_up = catch_up.is_some() && (entries.len() as u64) < PAGE;
        if catch_up.is_some() {
            catch_up = (entries.len() as u64 == PAGE)
                .then(|| entries.last().map(|(id, _)| format!("({id}")))
                .flatten();
        }
        for (id, fields) in &entries {
            for event in events_of(&plan, id, fields) {
                if event.id > after && sender.send(Ok(event)).await.is_err() {
                    break 'follow;
                }
            }
            last.clone_from(id);
        }
        if sender.is_closed() || (caught_up && !live) {
            break;
        }
    }
    let _ = client.quit().await;
}

/// The events of one entry (one step): the instances it moved, in order, then the request's
/// new status. An entry that is not one yields nothing.
fn events_of(plan: &Plan, entry: &str, fields: &HashMap<String, Bytes>) -> Vec<RequestEvent> {
    let text = |field: &str| fields.get(field).and_then(|v| std::str::from_utf8(v).ok());
    let step = entry
        .split_once('-')
        .and_then(|(ms, n)| Some((ms.parse::<u64>().ok()?, n.parse::<u64>().ok()?)));
    let (Some((ms, n)), Some(request_id)) = (
        step,
        text(EVENT_REQUEST).and_then(|r| RequestId::parse(r).ok()),
    ) else {
        return Vec::new();
    };
    let mut kinds = Vec::new();
    let mut words = text(EVENT_VERTICES).unwrap_or_default().split(' ');
    while let (Some(key), Some(status)) = (words.next(), words.next()) {
        let Ok(status) = status.parse() else { continue };
        let vertex = Instance::parse_key(key)
            .filter(|i| i.vertex() < plan.vertices().len())
            .map_or_else(|| Arc::from(key), |i| plan.name_of(&i));
        kinds.push(EventKind::Vertex { vertex, status });
    }
    if let Some(status) = text(EVENT_STATUS).and_then(|s| s.parse().ok()) {
        kinds.push(EventKind::Request { status });
    }
    (0u32..)
        .zip(kinds)
        .map(|(i, kind)| RequestEvent {
            id: EventId::new(ms, n, i),
            request_id: request_id.clone(),
            at_ms: ms,
            kind,
        })
        .collect()
}
