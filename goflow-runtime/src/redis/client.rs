//! The client side of the Redis engine, its [`Engine`] implementation: submit requests, read
//! their state, wait for them, pause, resume and stop them. Needs no worker in the same
//! process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{
    ClientLike, HashesInterface, KeysInterface, PubsubInterface, SetsInterface, StreamsInterface,
    Value,
};
use tokio::sync::{oneshot, OnceCell};
use tracing::Instrument as _;

use super::protocol::{
    control_channel, FlowKeys, DEAD_FAILURE, DEAD_REQUEST, GROUP, REQ_FAILURE, REQ_OUTPUT,
    REQ_STATUS,
};
use super::scripts::{self, CONTROL, COUNTS, FORGET, LIST, RETRY, SUBMIT, VERSIONS};
use super::{
    connect_client, read_groups, DoneEvent, Flow, Inner, RedisEngine, RedisError, StreamEntry,
};
use crate::codec::Codec;
use crate::engine::EventFeed;
use crate::engine::{self, Engine, Submitted};
use crate::error::Error;
use crate::events::EventId;
use crate::lifecycle::{Control, RequestStatus};
use crate::plan::{Instance, Layout};
use crate::request::{
    DeadLetter, DeadLetterId, DeadLetterPage, Migrated, RequestData, RequestFailure,
    RequestOutcome, RequestPage, RequestQuery, RequestState, RequestSummary, StatusCounts,
    VersionInfo, VersionState, WorkerInfo, Workers,
};
use crate::request_id::RequestId;
use crate::sync::lock;
use crate::time::{millis, now_ms};
use crate::workflow::Workflow;

/// A request being waited for: its workflow and id.
type WaitKey = (&'static str, RequestId);

/// Requests being waited for, woken by the listener of the completion streams.
#[derive(Default)]
pub(crate) struct Waiters {
    /// Each woken with the request's done event: a completed request's small output comes
    /// with it, which spares the waiter a read of the request's state.
    waiting: Mutex<HashMap<WaitKey, Vec<oneshot::Sender<DoneEvent>>>>,
    listener: OnceCell<()>,
}

/// How a wait for a request's end came out.
enum Waited {
    /// No such request (or it has expired).
    Missing,
    /// Its done event arrived.
    Ended(DoneEvent),
    /// It had ended before the wait, or the wait timed out: its state tells.
    ReadState,
}

impl<C: Codec> engine::sealed::Sealed for RedisEngine<C> {}

impl<C: Codec> Engine for RedisEngine<C> {
    type Codec = C;

    fn codec(&self) -> &C {
        &self.inner.codec
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    /// Submits a request of `W` under `id` and waits for it (or for the request that has the
    /// id already) to end.
    ///
    /// It listens for the request's end before submitting it, so a small output
    /// ([`RedisConfig::inline_output_limit`](super::RedisConfig::inline_output_limit)) comes
    /// with the done event: the submit script is the only command this sends.
    async fn run_as<W: Workflow>(
        &self,
        id: RequestId,
        input: W::Input,
    ) -> Result<W::Output, Error> {
        let flow = self.flow(W::NAME).map_err(|e| e.into_error(W::NAME))?;
        let woken = self
            .register_waiter(flow, &id)
            .await
            .map_err(|e| e.into_error(W::NAME))?;
        let submitted = self.submit_as::<W>(id.clone(), &input).await;
        let ended = match submitted {
            // Ours, so not ended before the listening began: its done event will come.
            // (An hour's bound, in case the listener lost it in a long outage.)
            Ok(true) => tokio::time::timeout(Duration::from_secs(3600), woken)
                .await
                .ok()
                .and_then(Result::ok),
            // A request with this id exists: its outcome, once it has one, is this run's.
            Ok(false) => None,
            Err(error) => {
                self.forget_waiter(flow, &id);
                return Err(error);
            }
        };
        self.forget_waiter(flow, &id);
        let mut outcome = self.outcome::<W>(&id, ended).await?;
        // Only a lost listener (Redis unreachable for long) wakes a run before its end.
        while let RequestOutcome::Pending(_) = outcome {
            outcome = self.wait::<W>(&id, Duration::from_secs(3600)).await?;
        }
        engine::run_result(W::NAME, id, outcome)
    }

    async fn wait<W: Workflow>(
        &self,
        id: &RequestId,
        timeout: Duration,
    ) -> Result<RequestOutcome<W::Output>, Error> {
        match self.wait_until_final(W::NAME, id, timeout).await? {
            Waited::Missing => Err(Error::UnknownRequest {
                flow: W::NAME,
                request_id: id.clone(),
            }),
            Waited::Ended(ended) => self.outcome::<W>(id, Some(ended)).await,
            Waited::ReadState => self.outcome::<W>(id, None).await,
        }
    }

    async fn submit_encoded(
        &self,
        flow: &str,
        id: &RequestId,
        input: Bytes,
    ) -> Result<Submitted, Error> {
        let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
        let name = flow.plan.flow();
        let config = &self.inner.config;
        // The request's span, under the caller's (the HTTP request's, when submitted over
        // HTTP): every vertex span of the request descends from it, in whatever process.
        let span = tracing::info_span!(
            "goflow.request",
            flow = name,
            request_id = id.as_str(),
            version = flow.hash.as_str()
        );
        let traceparent = crate::trace::hand_on(&span, None);
        let carries_input = input.len() <= config.inline_input_limit && !input.is_empty();
        let reply = scripts::call(
            SUBMIT.get(self.inner.config.events),
            &self.inner.client,
            || {
                let keys = vec![flow.keys.request(id), flow.keys.of(id).ready.clone()];
                let args = vec![
                    Value::from(id.as_str()),
                    Value::Bytes(input.clone()),
                    Value::from(now_ms().to_string()),
                    Value::from(Instance::root(flow.plan.entry()).key()),
                    Value::from(millis(config.unfinished_ttl).to_string()),
                    Value::from(flow.hash.as_str()),
                    Value::from(traceparent.as_str()),
                    Value::from(if carries_input { "1" } else { "0" }),
                ];
                (keys, args)
            },
        )
        .instrument(span)
        .await
        .map_err(|e| RedisError::from(e).into_error(name))?;
        let reply = reply.into_array();
        if reply.first().and_then(Value::as_i64) == Some(1) {
            // Counted by the one call whose script created the request.
            crate::metrics::flow_started(&flow.plan);
            return Ok(Submitted::Created);
        }
        let same_input = reply.get(2).and_then(Value::as_i64) == Some(1);
        Ok(Submitted::Existed { same_input })
    }

    async fn state(&self, flow: &str, id: &RequestId) -> Result<RequestState, Error> {
        let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
        let name = flow.plan.flow();
        let mut state = self
            .read_state(flow, id)
            .await
            .map_err(|e| e.into_error(name))?
            .ok_or_else(|| Error::UnknownRequest {
                flow: name,
                request_id: id.clone(),
            })?;
        // A request runs only on workers that have its version: while none is alive (the last
        // one of an old version has gone, say, or none has started yet), it waits for one.
        if !state.status.is_final() && !state.version.is_empty() {
            let alive = self
                .version_alive(flow, &state.version)
                .await
                .map_err(|e| e.into_error(name))?;
            if !alive {
                state.waiting_for = Some(format!("version {}", state.version));
            }
        }
        Ok(state)
    }

    async fn wait_state(
        &self,
        flow: &str,
        id: &RequestId,
        timeout: Duration,
    ) -> Result<RequestState, Error> {
        if let Waited::Missing = self.wait_until_final(flow, id, timeout).await? {
            let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
            return Err(Error::UnknownRequest {
                flow: flow.plan.flow(),
                request_id: id.clone(),
            });
        }
        self.state(flow, id).await
    }

    async fn control(
        &self,
        flow: &str,
        id: &RequestId,
        action: Control,
    ) -> Result<RequestStatus, Error> {
        let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
        let name = flow.plan.flow();
        let controlled = self.control_script(flow, id, action).await;
        let status = match controlled.map_err(|e| e.into_error(name))? {
            Controlled::Applied(status) => status,
            Controlled::Conflict(status) => {
                return Err(Error::Conflict {
                    flow: name,
                    request_id: id.clone(),
                    action,
                    status,
                })
            }
            Controlled::Missing => {
                return Err(Error::UnknownRequest {
                    flow: name,
                    request_id: id.clone(),
                })
            }
            Controlled::Busy(key) => {
                let vertex = Instance::parse_key(&key)
                    .filter(|i| i.vertex() < flow.plan.vertices().len())
                    .map_or(key, |i| flow.plan.name_of(&i).to_string());
                return Err(Error::StillEnding {
                    flow: name,
                    request_id: id.clone(),
                    vertex,
                });
            }
        };
        if action.is_retry() {
            // Each run is counted from start to end, as a submission's is.
            crate::metrics::flow_started(&flow.plan);
        }
        if status.is_final() {
            // The control script ended it just now (it answers a conflict to a request that
            // has ended), so this is the request's one end.
            crate::metrics::flow_finished(&flow.plan, status);
            // Workers cancel the request's running attempts; one that misses this message
            // still cannot record anything, as the request has ended.
            self.announce_end(name, id)
                .await
                .map_err(|e| e.into_error(name))?;
        }
        Ok(status)
    }

    /// From the workflow's listing indexes (sorted sets per status, written with each change of
    /// status): one script, which reads at most a page per status listed and the hash of each
    /// request on the page, whatever the number of requests kept.
    ///
    /// A workflow split into partitions is listed from each (concurrently), the pages merged:
    /// the cursor is a position in the one order of all requests, so it serves every
    /// partition.
    async fn list_requests(&self, flow: &str, query: &RequestQuery) -> Result<RequestPage, Error> {
        let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
        let name = flow.plan.flow();
        let pages = futures_util::future::try_join_all(
            flow.keys
                .all()
                .iter()
                .map(|keys| self.list_partition(keys, query)),
        )
        .await
        .map_err(|e| e.into_error(name))?;
        let mut merged: Vec<RequestSummary> = pages.into_iter().flatten().collect();
        if flow.keys.all().len() > 1 {
            // The order list.lua answers in: newest first, then by id, descending.
            merged.sort_unstable_by(|a, b| {
                (b.created_at_ms, b.request_id.as_str())
                    .cmp(&(a.created_at_ms, a.request_id.as_str()))
            });
        }
        Ok(RequestPage::of(query, merged))
    }

    async fn count_requests(
        &self,
        flow: &str,
        since_ms: Option<u64>,
    ) -> Result<StatusCounts, Error> {
        let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
        let name = flow.plan.flow();
        let counted = futures_util::future::try_join_all(
            flow.keys
                .all()
                .iter()
                .map(|keys| self.count_partition(keys, since_ms)),
        )
        .await
        .map_err(|e| e.into_error(name))?;
        let mut counts = StatusCounts::default();
        for partition in counted {
            for &status in RequestStatus::ALL.iter() {
                counts.add(status, partition.get(status));
            }
        }
        Ok(counts)
    }

    /// From the dead-letter streams, newest first (`XREVRANGE`), their entry ids the cursors
    /// (one order over the partitions' streams: a page is read from each and merged).
    async fn list_dead(
        &self,
        flow: &str,
        limit: usize,
        before: Option<DeadLetterId>,
    ) -> Result<DeadLetterPage, Error> {
        let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
        let name = flow.plan.flow();
        let size = limit.clamp(1, RequestQuery::MAX_LIMIT);
        let pages = futures_util::future::try_join_all(
            flow.keys
                .all()
                .iter()
                .map(|keys| self.dead_partition(keys, size, before)),
        )
        .await
        .map_err(|e| e.into_error(name))?;
        let mut letters: Vec<DeadLetter> = pages.into_iter().flatten().collect();
        if flow.keys.all().len() > 1 {
            letters.sort_unstable_by_key(|letter| std::cmp::Reverse(letter.id));
        }
        Ok(DeadLetterPage::of(size, letters))
    }

    async fn event_feed(
        &self,
        flow: &str,
        after: Option<EventId>,
        live: bool,
    ) -> Result<EventFeed, Error> {
        self.feed(flow, after, live).await
    }

    async fn request_data(&self, flow: &str, id: &RequestId) -> Result<RequestData, Error> {
        let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
        let name = flow.plan.flow();
        let fields: HashMap<String, Bytes> = self
            .inner
            .client
            .hgetall(flow.keys.request(id))
            .await
            .map_err(|e| RedisError::from(e).into_error(name))?;
        let layout = self
            .layout_for(flow, &fields)
            .await
            .map_err(|e| e.into_error(name))?;
        super::state::read_data(&layout, fields).ok_or_else(|| Error::UnknownRequest {
            flow: name,
            request_id: id.clone(),
        })
    }

    /// The workers of every version of the graph deployed, each with its version; the lag is
    /// that of all versions.
    async fn workers(&self, flow: &str) -> Result<Workers, Error> {
        let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
        let name = flow.plan.flow();
        let mut versions: Vec<String> = self
            .inner
            .client
            .smembers(&flow.keys.home().versions)
            .await
            .map_err(|e| RedisError::from(e).into_error(name))?;
        versions.sort();
        let mut all = Workers::default();
        for version in versions {
            let of_version = self
                .version_workers(flow, &version)
                .await
                .map_err(|e| e.into_error(name))?;
            all.lag = match (all.lag, of_version.lag) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
            all.workers.extend(of_version.workers);
        }
        Ok(all)
    }

    async fn versions(&self, flow: &str) -> Result<Vec<VersionInfo>, Error> {
        let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
        let name = flow.plan.flow();
        let fail = |e: RedisError| e.into_error(name);
        let mut versions: Vec<String> = self
            .inner
            .client
            .smembers(&flow.keys.home().versions)
            .await
            .map_err(|e| fail(e.into()))?;
        let open = self.open_by_version(flow).await.map_err(fail)?;
        // A version with requests under way is listed even if none of its workers has started
        // (its requests were submitted by its service alone): they wait for one.
        versions.extend(open.keys().filter(|v| !v.is_empty()).cloned());
        versions.retain(|v| *v != flow.hash);
        versions.sort();
        versions.dedup();
        versions.insert(0, flow.hash.clone());
        let mut listed = Vec::with_capacity(versions.len());
        for version in versions {
            let current = version == flow.hash;
            let graph = if current {
                serde_json::to_value(flow.plan.graph()).ok()
            } else {
                let text: Option<String> = self
                    .inner
                    .client
                    .get(flow.keys.home().graph_of(&version))
                    .await
                    .map_err(|e| fail(e.into()))?;
                text.and_then(|t| serde_json::from_str::<super::protocol::StoredVersion>(&t).ok())
                    .map(|stored| stored.graph)
            };
            let open = open.get(&version).copied().unwrap_or(0);
            let workers = self
                .version_workers(flow, &version)
                .await
                .map_err(fail)?
                .workers;
            listed.push(VersionInfo {
                state: VersionState::of(current, open),
                alive: workers.iter().any(|w| self.is_live(w)),
                workers,
                version,
                current,
                open,
                graph,
            });
        }
        Ok(listed)
    }

    async fn forget_version(&self, flow: &str, version: &str) -> Result<(), Error> {
        let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
        let name = flow.plan.flow();
        let fail = |e: RedisError| e.into_error(name);
        let in_use = |reason: String| Error::VersionInUse {
            flow: name,
            version: version.to_owned(),
            reason,
        };
        if version == flow.hash {
            return Err(in_use("it is the version this engine runs".to_owned()));
        }
        let open = self.open_by_version(flow).await.map_err(fail)?;
        if let Some(&n) = open.get(version).filter(|&&n| n > 0) {
            return Err(in_use(format!("{n} of its requests are under way")));
        }
        if self.version_alive(flow, version).await.map_err(fail)? {
            return Err(in_use("a worker of it is alive".to_owned()));
        }
        // Its streams go with their groups and consumers; nothing of a request under way is
        // in them. One key per command: on a Redis Cluster, partitions are in other slots.
        let client = &self.inner.client;
        let deleted: Result<(), fred::error::Error> = async {
            let home = flow.keys.home();
            let _: u64 = client.srem(&home.versions, version).await?;
            let _: u64 = client.del(home.graph_of(version)).await?;
            for keys in flow.keys.all() {
                let _: u64 = client.del(keys.ready_of(version)).await?;
            }
            Ok(())
        }
        .await;
        deleted.map_err(|e| fail(e.into()))
    }

    async fn migrate_request(&self, flow: &str, id: &RequestId) -> Result<Migrated, Error> {
        let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
        self.migrate(flow, id).await
    }

    async fn ready(&self) -> Result<(), Error> {
        match tokio::time::timeout(Duration::from_secs(2), self.inner.client.ping::<()>(None)).await
        {
            Ok(answer) => answer.map_err(|e| RedisError::from(e).into_error("")),
            Err(_) => Err(Error::engine(RedisError::Protocol(
                "redis did not answer PING within 2 s".into(),
            ))),
        }
    }
}

impl<C: Codec> RedisEngine<C> {
    /// A page of the requests of one partition (`list.lua`).
    async fn list_partition(
        &self,
        keys: &FlowKeys,
        query: &RequestQuery,
    ) -> Result<Vec<RequestSummary>, RedisError> {
        let config = &self.inner.config;
        // Scores are doubles: times beyond 2^53 ms (285,000 years) mean "no bound".
        const NO_BOUND: u64 = 1 << 53;
        let reply = scripts::call(&LIST, &self.inner.client, || {
            let mut indexes = vec![keys.ended.clone()];
            indexes.extend(query.listed_statuses().iter().map(|s| keys.by_status(*s)));
            let (at, after) = match &query.cursor {
                Some(cursor) => (
                    cursor.created_at_ms().to_string(),
                    cursor.request_id().to_string(),
                ),
                None => (String::new(), String::new()),
            };
            let args = vec![
                Value::from(now_ms().to_string()),
                Value::from(millis(config.retention).to_string()),
                Value::from(millis(config.unfinished_ttl).to_string()),
                Value::from(query.since_ms.unwrap_or(0).min(NO_BOUND).to_string()),
                Value::from(query.until_ms.unwrap_or(NO_BOUND).min(NO_BOUND).to_string()),
                Value::from((query.page_size() + 1).to_string()),
                Value::from(at),
                Value::from(after),
            ];
            (indexes, args)
        })
        .await?;
        let rows = reply.into_array();
        let text = |v: &Value| v.as_str().map(|s| s.to_string()).unwrap_or_default();
        let mut summaries = Vec::with_capacity(rows.len() / 6);
        for row in rows.chunks(6) {
            let [id, status, created, ended, failure, version] = row else {
                return Err(RedisError::Protocol(format!(
                    "list script answered {row:?}"
                )));
            };
            let parsed = (|| {
                Some(RequestSummary {
                    request_id: RequestId::parse(&text(id)).ok()?,
                    status: text(status).parse().ok()?,
                    created_at_ms: text(created).parse().ok()?,
                    ended_at_ms: text(ended).parse().ok(),
                    failure: serde_json::from_str::<RequestFailure>(&text(failure)).ok(),
                    version: text(version),
                })
            })();
            summaries
                .push(parsed.ok_or_else(|| {
                    RedisError::Protocol(format!("list script answered {row:?}"))
                })?);
        }
        Ok(summaries)
    }

    /// How many requests of one partition are in each status (`counts.lua`).
    async fn count_partition(
        &self,
        keys: &FlowKeys,
        since_ms: Option<u64>,
    ) -> Result<StatusCounts, RedisError> {
        let config = &self.inner.config;
        let reply = scripts::call(&COUNTS, &self.inner.client, || {
            let mut indexes = vec![keys.ended.clone()];
            indexes.extend(RequestStatus::ALL.iter().map(|s| keys.by_status(*s)));
            let args = vec![
                Value::from(now_ms().to_string()),
                Value::from(millis(config.retention).to_string()),
                Value::from(millis(config.unfinished_ttl).to_string()),
                Value::from(since_ms.map_or_else(String::new, |ms| ms.to_string())),
            ];
            (indexes, args)
        })
        .await?;
        let numbers = reply.into_array();
        if numbers.len() != RequestStatus::ALL.len() {
            return Err(RedisError::Protocol(format!(
                "counts script answered {numbers:?}"
            )));
        }
        let mut counts = StatusCounts::default();
        for (status, n) in RequestStatus::ALL.iter().zip(&numbers) {
            counts.add(*status, n.as_u64().unwrap_or(0));
        }
        Ok(counts)
    }

    /// Up to `size + 1` dead letters of one partition before `before`, newest first.
    async fn dead_partition(
        &self,
        keys: &FlowKeys,
        size: usize,
        before: Option<DeadLetterId>,
    ) -> Result<Vec<DeadLetter>, RedisError> {
        let end = before.map_or_else(|| "+".to_owned(), |id| format!("({id}"));
        let entries: Vec<StreamEntry> = self
            .inner
            .client
            .xrevrange_values(keys.dead.clone(), end, "-", Some(size as u64 + 1))
            .await?;
        let mut letters = Vec::with_capacity(entries.len());
        for (entry, fields) in entries {
            let letter = (|| {
                let id: DeadLetterId = entry.parse().ok()?;
                let request_id =
                    RequestId::parse(std::str::from_utf8(fields.get(DEAD_REQUEST)?).ok()?).ok()?;
                let failure =
                    serde_json::from_slice::<RequestFailure>(fields.get(DEAD_FAILURE)?).ok()?;
                Some(DeadLetter {
                    id,
                    at_ms: id.at_ms(),
                    request_id,
                    failure,
                })
            })();
            letters.push(letter.ok_or_else(|| {
                RedisError::Protocol(format!("dead letter {entry} is not one: {fields:?}"))
            })?);
        }
        Ok(letters)
    }

    /// The state of request `id` of `flow` from its hash; `None` if it does not exist.
    pub(crate) async fn read_state(
        &self,
        flow: &Flow,
        id: &RequestId,
    ) -> Result<Option<RequestState>, RedisError> {
        let fields: HashMap<String, Bytes> =
            self.inner.client.hgetall(flow.keys.request(id)).await?;
        let layout = self.layout_for(flow, &fields).await?;
        Ok(super::state::read(
            flow.plan.flow(),
            &layout,
            id.clone(),
            fields,
        ))
    }

    /// The layout to read a request's hash `fields` with: this engine's plan's, or that of the
    /// version the request is pinned to when it is another (from what that version's engines
    /// wrote, kept here once read), or, if none could write it, one naming the vertices by
    /// their numbers.
    async fn layout_for(
        &self,
        flow: &Flow,
        fields: &HashMap<String, Bytes>,
    ) -> Result<Arc<Layout>, RedisError> {
        let version = match super::state::version_of(fields) {
            Some(version) if version != flow.hash => version,
            _ => return Ok(Arc::clone(&flow.layout)),
        };
        Ok(match self.stored_layout(flow, version).await? {
            Some(layout) => layout,
            None => Arc::new(Layout::unnamed(super::state::vertices_in(fields))),
        })
    }

    /// The layout of version `version` of `flow`, as its engines wrote it beside its graph
    /// (kept here once read); `None` if none of them could.
    pub(super) async fn stored_layout(
        &self,
        flow: &Flow,
        version: &str,
    ) -> Result<Option<Arc<Layout>>, RedisError> {
        let key = flow.keys.home().graph_of(version);
        if let Some(layout) = lock(&self.inner.layouts).get(&key) {
            return Ok(Some(Arc::clone(layout)));
        }
        let stored: Option<String> = self.inner.client.get(&key).await?;
        let layout = stored
            .as_deref()
            .and_then(|text| serde_json::from_str::<super::protocol::StoredVersion>(text).ok())
            .map(|stored| Arc::new(stored.layout));
        if let Some(layout) = &layout {
            lock(&self.inner.layouts).insert(key, Arc::clone(layout));
        }
        Ok(layout)
    }

    /// The workers of version `version` of `flow`: the consumers of the groups of its ready
    /// streams, one per partition (none when no worker of that version has started), and
    /// its lag, summed over the partitions.
    async fn version_workers(&self, flow: &Flow, version: &str) -> Result<Workers, RedisError> {
        let client = &self.inner.client;
        let mut all = Workers::default();
        for (n, keys) in flow.keys.all().iter().enumerate() {
            let ready = keys.ready_of(version);
            let consumers: Result<Value, _> = client.xinfo_consumers(ready.clone(), GROUP).await;
            let groups: Result<Value, _> = client.xinfo_groups(ready).await;
            let of_partition = match (consumers, groups) {
                (Ok(consumers), Ok(groups)) => {
                    super::info::workers(consumers, groups, GROUP, version)
                }
                // No worker of that version has started: no group (nor stream, maybe).
                (Err(error), _) | (_, Err(error)) if super::info::no_group(&error) => {
                    Workers::default()
                }
                (Err(error), _) | (_, Err(error)) => return Err(RedisError::from(error)),
            };
            if n == 0 {
                all = of_partition;
            } else {
                super::info::merge(&mut all, of_partition);
            }
        }
        Ok(all)
    }

    /// How many requests under way each version of `flow`'s graph has (`versions.lua`).
    async fn open_by_version(&self, flow: &Flow) -> Result<HashMap<String, u64>, RedisError> {
        let mut open = HashMap::new();
        for keys in flow.keys.all() {
            let reply = scripts::call(&VERSIONS, &self.inner.client, || {
                let indexes = [
                    RequestStatus::Queued,
                    RequestStatus::Running,
                    RequestStatus::Paused,
                ]
                .iter()
                .map(|s| keys.by_status(*s))
                .collect();
                (indexes, Vec::new())
            })
            .await?;
            for pair in reply.into_array().chunks(2) {
                if let [version, n] = pair {
                    if let (Some(version), Some(n)) = (version.as_string(), n.as_u64()) {
                        *open.entry(version).or_default() += n;
                    }
                }
            }
        }
        Ok(open)
    }

    /// Whether a worker of version `version` of `flow` is alive: one that has read or renewed
    /// entries within two leases (a worker busy with long attempts renews their leases; one
    /// that died stops). One `XINFO CONSUMERS` per partition, until one has a live worker.
    pub(super) async fn version_alive(
        &self,
        flow: &Flow,
        version: &str,
    ) -> Result<bool, RedisError> {
        for keys in flow.keys.all() {
            let consumers: Result<Value, _> = self
                .inner
                .client
                .xinfo_consumers(keys.ready_of(version), GROUP)
                .await;
            let consumers = match consumers {
                Ok(consumers) => consumers,
                Err(error) if super::info::no_group(&error) => continue,
                Err(error) => return Err(error.into()),
            };
            let live = super::info::consumers(consumers, version)
                .iter()
                .any(|worker| self.is_live(worker));
            if live {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether `worker` is alive: it has read or renewed entries within two leases.
    fn is_live(&self, worker: &WorkerInfo) -> bool {
        u128::from(worker.idle_ms) < 2 * self.inner.config.lease.as_millis()
    }

    /// Forgets, from the listing indexes of `flow`, the requests whose hashes have expired:
    /// the workers' housekeeping, which keeps the indexes bounded even when nobody lists them
    /// (the status changes themselves only add and move ids). Answers how many it forgot.
    pub(crate) async fn forget_expired(&self, flow: &Flow) -> Result<u64, RedisError> {
        let config = &self.inner.config;
        let mut forgotten = 0;
        for keys in flow.keys.all() {
            let reply = scripts::call(&FORGET, &self.inner.client, || {
                let ended = vec![keys.ended.clone()];
                let args = vec![
                    Value::from(now_ms().to_string()),
                    Value::from(millis(config.retention).to_string()),
                    Value::from(millis(config.unfinished_ttl).to_string()),
                ];
                (ended, args)
            })
            .await?;
            forgotten += reply.as_u64().unwrap_or(0);
        }
        Ok(forgotten)
    }

    /// Tells the workers that request `id` of `flow` has ended (stopped, or failed), so that
    /// they cancel its running attempts.
    pub(crate) async fn announce_end(&self, flow: &str, id: &RequestId) -> Result<(), RedisError> {
        let channel = control_channel(&self.inner.config.prefix);
        self.inner
            .client
            .publish::<(), _, _>(channel, format!("{flow} {id}"))
            .await?;
        Ok(())
    }

    /// Runs the script of `action` by the control table: `control.lua` (pause, resume, stop)
    /// or `retry.lua` (a retry, from where the request stopped or from the start). Both open
    /// with the request hash, the ready stream and the parked list, and the action, the
    /// request and now.
    async fn control_script(
        &self,
        flow: &Flow,
        id: &RequestId,
        action: Control,
    ) -> Result<Controlled, RedisError> {
        let config = &self.inner.config;
        let retry = action.is_retry();
        let (script, name) = if retry {
            (RETRY.get(config.events), "retry")
        } else {
            (CONTROL.get(config.events), "control")
        };
        let reply = scripts::call(script, &self.inner.client, || {
            let mut keys = vec![
                flow.keys.request(id),
                flow.keys.of(id).ready.clone(),
                flow.keys.parked(id),
            ];
            let mut args = vec![
                Value::from(action.as_str()),
                Value::from(id.as_str()),
                Value::from(now_ms().to_string()),
            ];
            if retry {
                let from_start = action == Control::RetryFromStart;
                keys.push(flow.keys.of(id).delayed.clone());
                args.extend([
                    Value::from(millis(config.unfinished_ttl).to_string()),
                    Value::from(if from_start { "1" } else { "0" }),
                    Value::from(Instance::root(flow.plan.entry()).key()),
                    Value::from(flow.hash.as_str()),
                ]);
            } else {
                keys.push(flow.keys.of(id).done.clone());
                args.extend([
                    Value::from(millis(config.retention).to_string()),
                    Value::from(GROUP),
                ]);
            }
            (keys, args)
        })
        .await?;
        Controlled::read(reply, name)
    }

    /// Waits up to `timeout` for the request to end. Reads only the status field until then:
    /// the state is read once, by the caller, if the done event does not tell it all.
    async fn wait_until_final(
        &self,
        flow: &str,
        id: &RequestId,
        timeout: Duration,
    ) -> Result<Waited, Error> {
        let flow = self.flow(flow).map_err(|e| e.into_error(""))?;
        let name = flow.plan.flow();
        let woken = self
            .register_waiter(flow, id)
            .await
            .map_err(|e| e.into_error(name))?;
        let status: Result<Option<String>, _> = self
            .inner
            .client
            .hget(flow.keys.request(id), REQ_STATUS)
            .await;
        let waited = match status {
            Err(error) => {
                self.forget_waiter(flow, id);
                return Err(RedisError::from(error).into_error(name));
            }
            Ok(None) => Waited::Missing,
            Ok(Some(status))
                if status
                    .parse::<RequestStatus>()
                    .is_ok_and(RequestStatus::is_final) =>
            {
                Waited::ReadState
            }
            Ok(Some(_)) => match tokio::time::timeout(timeout, woken).await {
                Ok(Ok(ended)) => Waited::Ended(ended),
                // Timed out: the state says that it has not ended.
                _ => Waited::ReadState,
            },
        };
        self.forget_waiter(flow, id);
        Ok(waited)
    }

    /// The outcome of a request from its done event when that tells it all (a stop, or a
    /// completion with its output), else from its state (only the fields the outcome needs).
    async fn outcome<W: Workflow>(
        &self,
        id: &RequestId,
        ended: Option<DoneEvent>,
    ) -> Result<RequestOutcome<W::Output>, Error> {
        let codec = &self.inner.codec;
        match ended {
            Some(DoneEvent {
                status: RequestStatus::Completed,
                output: Some(output),
                ..
            }) => return engine::decode_outcome::<W, C>(codec, RequestOutcome::Completed(output)),
            Some(DoneEvent {
                status: RequestStatus::Stopped,
                ..
            }) => return Ok(RequestOutcome::Stopped),
            _ => {}
        }
        let flow = self.flow(W::NAME).map_err(|e| e.into_error(W::NAME))?;
        let (status, output, failure): (Option<String>, Option<Bytes>, Option<Bytes>) = self
            .inner
            .client
            .hmget(
                flow.keys.request(id),
                vec![REQ_STATUS, REQ_OUTPUT, REQ_FAILURE],
            )
            .await
            .map_err(|e| RedisError::from(e).into_error(W::NAME))?;
        let status = status
            .as_deref()
            .and_then(|s| s.parse::<RequestStatus>().ok())
            .ok_or_else(|| Error::UnknownRequest {
                flow: W::NAME,
                request_id: id.clone(),
            })?;
        let broken = |what: &str| {
            RedisError::Protocol(format!("{status} request `{id}` has no {what}"))
                .into_error(W::NAME)
        };
        let outcome = match status {
            RequestStatus::Completed => {
                RequestOutcome::Completed(output.ok_or_else(|| broken("output"))?)
            }
            RequestStatus::Failed => RequestOutcome::Failed(
                failure
                    .and_then(|f| serde_json::from_slice::<RequestFailure>(&f).ok())
                    .ok_or_else(|| broken("failure"))?,
            ),
            RequestStatus::Stopped => RequestOutcome::Stopped,
            status => RequestOutcome::Pending(status),
        };
        engine::decode_outcome::<W, C>(codec, outcome)
    }

    /// Listens for the done event of a request of `flow` (the listener starts on first use):
    /// any event after this call reaches the receiver. Undone by
    /// [`forget_waiter`](Self::forget_waiter), once the receiver is dropped.
    async fn register_waiter(
        &self,
        flow: &Flow,
        id: &RequestId,
    ) -> Result<oneshot::Receiver<DoneEvent>, RedisError> {
        self.start_listener().await?;
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.waiters.waiting)
            .entry((flow.plan.flow(), id.clone()))
            .or_default()
            .push(tx);
        Ok(rx)
    }

    fn forget_waiter(&self, flow: &Flow, id: &RequestId) {
        let mut waiting = lock(&self.inner.waiters.waiting);
        let key = (flow.plan.flow(), id.clone());
        if let Some(senders) = waiting.get_mut(&key) {
            senders.retain(|s| !s.is_closed());
            if senders.is_empty() {
                waiting.remove(&key);
            }
        }
    }

    /// Starts (once) the tasks that read the completion streams of all registered workflows
    /// and wake waiters (one task, unless on a Redis Cluster: one per hash slot). It starts from each stream's current end, read before any wait
    /// checks a request's state, so no completion falls between the two.
    async fn start_listener(&self) -> Result<(), RedisError> {
        self.inner
            .waiters
            .listener
            .get_or_try_init(|| async {
                let mut streams = Vec::new();
                for (name, flow) in &self.inner.flows {
                    for keys in flow.keys.all() {
                        let last: Vec<StreamEntry> = self
                            .inner
                            .client
                            .xrevrange_values(keys.done.clone(), "+", "-", Some(1))
                            .await?;
                        let from = last
                            .first()
                            .map_or_else(|| "0-0".to_owned(), |(id, _)| id.clone());
                        streams.push((keys.done.clone(), (*name, from)));
                    }
                }
                // One reader per group of streams one read can read (see `read_groups`).
                let mut listeners = Vec::new();
                for group in read_groups(&self.inner.client, streams) {
                    let client = connect_client(&self.inner.config.url, None).await?;
                    let flows = group
                        .into_iter()
                        .map(|(key, (name, from))| (name, key, from))
                        .collect();
                    listeners.push((client, flows));
                }
                for (client, flows) in listeners {
                    let inner = std::sync::Arc::downgrade(&self.inner);
                    tokio::spawn(listen(inner, client, flows));
                }
                Ok::<(), RedisError>(())
            })
            .await?;
        Ok(())
    }
}

/// Reads completions until the engine is dropped.
async fn listen<C: Codec>(
    inner: std::sync::Weak<Inner<C>>,
    client: fred::prelude::Client,
    mut flows: Vec<(&'static str, String, String)>,
) {
    loop {
        let keys: Vec<String> = flows.iter().map(|(_, key, _)| key.clone()).collect();
        let ids: Vec<String> = flows.iter().map(|(_, _, id)| id.clone()).collect();
        let read: Result<fred::prelude::Value, fred::error::Error> =
            client.xread(Some(1000), Some(1000), keys, ids).await;
        // A read that timed out is the empty answer.
        let read = read.map_err(RedisError::from).and_then(super::stream_read);
        let Some(inner) = inner.upgrade() else {
            let _ = client.quit().await;
            return;
        };
        match read {
            Ok(streams) => {
                let mut waiting = lock(&inner.waiters.waiting);
                for (name, key, last) in &mut flows {
                    for (entry_id, fields) in streams.get(key.as_str()).into_iter().flatten() {
                        *last = entry_id.clone();
                        let Some(event) = DoneEvent::parse(fields) else {
                            continue;
                        };
                        let woken = waiting.remove(&(*name, event.request.clone()));
                        for waiter in woken.into_iter().flatten() {
                            let _ = waiter.send(event.clone());
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(error = %crate::error::chain(&error), "reading completion streams failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// What the control and retry scripts answer.
enum Controlled {
    /// The action applied: the request's new status.
    Applied(RequestStatus),
    /// The action does not apply to the request in this status.
    Conflict(RequestStatus),
    /// No such request (or it expired).
    Missing,
    /// A retry from the start must wait for this instance (its key) of the last run.
    Busy(String),
}

impl Controlled {
    fn read(reply: Value, script: &str) -> Result<Self, RedisError> {
        let reply = reply.into_array();
        let word = |i: usize| reply.get(i).and_then(|v| v.as_str().map(|s| s.to_string()));
        let status = word(1).and_then(|w| w.parse::<RequestStatus>().ok());
        match (word(0).as_deref(), status) {
            (Some("ok"), Some(status)) => Ok(Self::Applied(status)),
            (Some("conflict"), Some(status)) => Ok(Self::Conflict(status)),
            (Some("missing"), _) => Ok(Self::Missing),
            (Some("busy"), _) => Ok(Self::Busy(word(1).unwrap_or_default())),
            _ => Err(RedisError::Protocol(format!(
                "{script} script answered {reply:?}"
            ))),
        }
    }
}
