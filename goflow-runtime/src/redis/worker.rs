//! The worker side: reads ready vertices, runs them, and moves their requests on.
//!
//! One worker runs up to `concurrency` attempts at once. Its tasks:
//! - the reader: `XREADGROUP ... BLOCK` over the ready streams of all registered workflows,
//!   on its own connection, asking for as many entries as it has free slots (up to the
//!   configured batch);
//! - the reclaimer: every half lease, `XAUTOCLAIM`s entries whose holder has not renewed them
//!   for a lease (its worker died) and runs them;
//! - the renewer: every third of a lease, resets the idle time of the entries it is running,
//!   so that long attempts keep their lease;
//! - the promoter: moves due retries back to the ready streams;
//! - the stop listener: cancels running attempts of stopped requests;
//! - the backlog sampler: every few seconds, the length and consumer-group lag of the ready
//!   streams, as metrics (see `crate::metrics`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{ClientLike, EventInterface, PubsubInterface, StreamsInterface, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::client::control_channel;
use super::scripts::{self, COMPLETE, FAIL, PROMOTE, START};
use super::{
    connect_client, millis, now_ms, EngineError, Flow, RedisEngine, StreamEntry, StreamRead,
};
use crate::codec::Codec;
use crate::context::Context;
use crate::error::Failure;
use crate::exec;
use crate::request_id::RequestId;
use crate::state::RequestFailure;

/// The consumer group every worker of every process joins.
const GROUP: &str = "workers";

/// Runs the registered workflows' vertices; see the module docs.
pub struct Worker<C: Codec> {
    engine: RedisEngine<C>,
    concurrency: usize,
    consumer: String,
    /// Attempts in progress, by flow and entry id (entry ids are unique per stream only).
    running: Arc<Mutex<HashMap<(&'static str, String), Running>>>,
    /// Entries delivered to this worker that wait for a free slot; their leases are renewed
    /// too, so that nobody reclaims them meanwhile.
    held: Arc<Mutex<std::collections::HashSet<(&'static str, String)>>>,
}

/// An attempt in progress: its stream entry and how to cancel it.
struct Running {
    flow: &'static str,
    request: RequestId,
    cancel: CancellationToken,
}

/// A delivered stream entry.
struct Delivery {
    flow: &'static str,
    entry: String,
    request: String,
    vertex: String,
    /// The `traceparent` of the span that enqueued it (empty for retries of old entries).
    traceparent: String,
}

impl<C: Codec> RedisEngine<C> {
    /// A worker running up to `concurrency` attempts at once. Its consumer name is unique to
    /// this process and worker.
    pub fn worker(&self, concurrency: usize) -> Worker<C> {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".to_owned());
        Worker {
            engine: self.clone(),
            concurrency: concurrency.max(1),
            consumer: format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..)),
            running: Arc::default(),
            held: Arc::default(),
        }
    }
}

impl<C: Codec> Worker<C> {
    /// This worker's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Runs until `shutdown` is cancelled, then stops reading and lets the running attempts
    /// finish (unread entries stay in the streams for other workers).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), EngineError> {
        let this = Arc::new(self);
        this.create_groups().await?;
        // Blocking reads get their own connection, so they never delay other commands.
        let reader = connect_client(&this.engine.inner.config.url, None).await?;
        let slots = Arc::new(Semaphore::new(this.concurrency));
        let mut tasks = JoinSet::new();
        tasks.spawn(Arc::clone(&this).reclaim_loop(Arc::clone(&slots), shutdown.clone()));
        tasks.spawn(Arc::clone(&this).renew_loop(shutdown.clone()));
        tasks.spawn(Arc::clone(&this).promote_loop(shutdown.clone()));
        tasks.spawn(Arc::clone(&this).stop_listener(shutdown.clone()));
        tasks.spawn(Arc::clone(&this).sample_backlog(shutdown.clone()));
        if !this.engine.inner.hooks.is_empty() {
            tasks.spawn(super::hooks::run(
                this.engine.clone(),
                this.consumer.clone(),
                shutdown.clone(),
            ));
        }
        let read = Arc::clone(&this)
            .read_loop(&reader, slots, shutdown.clone())
            .await;
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        // `QUIT` would queue behind the blocked read; close in the background instead.
        tokio::spawn(async move {
            let _ = reader.quit().await;
        });
        read
    }

    async fn create_groups(&self) -> Result<(), EngineError> {
        for flow in self.engine.inner.flows.values() {
            let created: Result<(), fred::error::Error> = self
                .engine
                .inner
                .client
                .xgroup_create(flow.keys.ready.clone(), GROUP, "0", true)
                .await;
            match created {
                Err(e) if !e.details().starts_with("BUSYGROUP") => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    async fn read_loop(
        self: Arc<Self>,
        reader: &fred::prelude::Client,
        slots: Arc<Semaphore>,
        shutdown: CancellationToken,
    ) -> Result<(), EngineError> {
        let flows: Vec<(&'static str, String)> = self
            .engine
            .inner
            .flows
            .iter()
            .map(|(name, flow)| (*name, flow.keys.ready.clone()))
            .collect();
        let keys: Vec<String> = flows.iter().map(|(_, key)| key.clone()).collect();
        let ids: Vec<&str> = flows.iter().map(|_| ">").collect();
        let batch = self.engine.inner.config.batch.max(1);
        let mut attempts = JoinSet::new();
        loop {
            // Wait for one free slot, then take every other free one, up to a batch.
            let first = tokio::select! {
                permit = Arc::clone(&slots).acquire_owned() => permit.expect("never closed"),
                () = shutdown.cancelled() => break,
            };
            let mut permits = vec![first];
            while permits.len() < batch {
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }
            let read: Result<StreamRead, _> = tokio::select! {
                read = reader.xreadgroup_map(GROUP, self.consumer.as_str(), Some(permits.len() as u64), Some(1000), false, keys.clone(), ids.clone()) => read,
                () = shutdown.cancelled() => break,
            };
            let streams = match read {
                Ok(streams) => streams,
                Err(error) => {
                    if error.details().starts_with("NOGROUP") {
                        // The server lost its data (a restart without persistence).
                        let _ = self.create_groups().await;
                    } else {
                        tracing::warn!(%error, "reading ready vertices failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    continue;
                }
            };
            for (name, key) in &flows {
                for (entry, fields) in streams.get(key.as_str()).into_iter().flatten() {
                    // COUNT is per stream: entries beyond the free slots are delivered to this
                    // worker all the same, so they wait here for a slot.
                    let permit = permits.pop();
                    let slots = Arc::clone(&slots);
                    let delivery = Delivery {
                        flow: name,
                        entry: entry.clone(),
                        request: fields.get("r").cloned().unwrap_or_default(),
                        vertex: fields.get("v").cloned().unwrap_or_default(),
                        traceparent: fields.get("tp").cloned().unwrap_or_default(),
                    };
                    let this = Arc::clone(&self);
                    let key = (delivery.flow, delivery.entry.clone());
                    if permit.is_none() {
                        this.held
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(key.clone());
                    }
                    attempts.spawn(async move {
                        let permit = match permit {
                            Some(permit) => permit,
                            None => {
                                let permit = slots.acquire_owned().await.expect("never closed");
                                this.held
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .remove(&key);
                                permit
                            }
                        };
                        this.process(delivery).await;
                        drop(permit);
                    });
                }
            }
            while attempts.try_join_next().is_some() {}
        }
        // Let running attempts finish: their entries are acknowledged by their own scripts.
        while attempts.join_next().await.is_some() {}
        Ok(())
    }

    async fn reclaim_loop(self: Arc<Self>, slots: Arc<Semaphore>, shutdown: CancellationToken) {
        let lease = self.engine.inner.config.lease;
        let mut attempts = JoinSet::new();
        loop {
            tokio::select! {
                () = tokio::time::sleep(lease / 2) => {}
                () = shutdown.cancelled() => break,
            }
            for (name, flow) in &self.engine.inner.flows {
                let claimed: Result<(String, Vec<StreamEntry>), _> = self
                    .engine
                    .inner
                    .client
                    .xautoclaim_values(
                        flow.keys.ready.clone(),
                        GROUP,
                        self.consumer.as_str(),
                        millis(lease),
                        "0-0",
                        Some(self.engine.inner.config.batch as u64),
                        false,
                    )
                    .await;
                let entries = match claimed {
                    Ok((_, entries)) => entries,
                    Err(error) => {
                        tracing::warn!(%error, flow = name, "reclaiming entries failed");
                        continue;
                    }
                };
                if !entries.is_empty() {
                    crate::metrics::entries_reclaimed(name, entries.len() as u64);
                }
                for (entry, fields) in entries {
                    tracing::info!(flow = name, entry, "reclaimed an entry from a lost worker");
                    let permit = tokio::select! {
                        permit = Arc::clone(&slots).acquire_owned() => permit.expect("never closed"),
                        () = shutdown.cancelled() => break,
                    };
                    let delivery = Delivery {
                        flow: name,
                        entry,
                        request: fields.get("r").cloned().unwrap_or_default(),
                        vertex: fields.get("v").cloned().unwrap_or_default(),
                        traceparent: fields.get("tp").cloned().unwrap_or_default(),
                    };
                    let this = Arc::clone(&self);
                    attempts.spawn(async move {
                        this.process(delivery).await;
                        drop(permit);
                    });
                }
            }
            while attempts.try_join_next().is_some() {}
        }
        while attempts.join_next().await.is_some() {}
    }

    async fn renew_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let lease = self.engine.inner.config.lease;
        loop {
            tokio::select! {
                () = tokio::time::sleep(lease / 3) => {}
                () = shutdown.cancelled() => return,
            }
            let by_flow: HashMap<&'static str, Vec<String>> = {
                let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                let mut by_flow: HashMap<&'static str, Vec<String>> = HashMap::new();
                for (flow, entry) in running.keys() {
                    by_flow.entry(flow).or_default().push(entry.clone());
                }
                drop(running);
                let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                for (flow, entry) in held.iter() {
                    by_flow.entry(flow).or_default().push(entry.clone());
                }
                by_flow
            };
            for (name, entries) in by_flow {
                let Ok(flow) = self.engine.flow(name) else {
                    continue;
                };
                // Claiming our own entries with JUSTID resets their idle time.
                let renewed: Result<Value, _> = self
                    .engine
                    .inner
                    .client
                    .xclaim(
                        flow.keys.ready.clone(),
                        GROUP,
                        self.consumer.as_str(),
                        0,
                        entries,
                        None,
                        None,
                        None,
                        false,
                        true,
                    )
                    .await;
                if let Err(error) = renewed {
                    tracing::warn!(%error, flow = name, "renewing leases failed");
                }
            }
        }
    }

    async fn promote_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let every = self.engine.inner.config.retry_poll;
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return,
            }
            for flow in self.engine.inner.flows.values() {
                let moved = scripts::call(
                    &PROMOTE,
                    &self.engine.inner.client,
                    vec![flow.keys.delayed.clone(), flow.keys.ready.clone()],
                    vec![Value::from(now_ms().to_string()), Value::from("100")],
                )
                .await;
                if let Err(error) = moved {
                    tracing::warn!(%error, "moving due retries failed");
                }
            }
        }
    }

    /// Samples each ready stream's length (`XLEN`) and the workers' group lag (`lag` in
    /// `XINFO GROUPS`, Redis 7) into gauges: at start, then every few seconds.
    async fn sample_backlog(self: Arc<Self>, shutdown: CancellationToken) {
        let client = &self.engine.inner.client;
        loop {
            for (name, flow) in &self.engine.inner.flows {
                let length: Result<u64, _> = client.xlen(flow.keys.ready.clone()).await;
                let groups: Result<Value, _> = client.xinfo_groups(flow.keys.ready.clone()).await;
                match (length, groups) {
                    (Ok(length), Ok(groups)) => {
                        crate::metrics::stream_backlog(name, length, group_lag(groups, GROUP));
                    }
                    (Err(error), _) | (_, Err(error)) => {
                        tracing::debug!(%error, flow = name, "sampling the stream backlog failed");
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(crate::metrics::BACKLOG_SAMPLE_EVERY) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn stop_listener(self: Arc<Self>, shutdown: CancellationToken) {
        let subscriber = match connect_client(&self.engine.inner.config.url, None).await {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "stop listener could not connect");
                return;
            }
        };
        let channel = control_channel(&self.engine.inner.config.prefix);
        let mut messages = subscriber.message_rx();
        // Subscribe again after every reconnection.
        let mut reconnects = subscriber.reconnect_rx();
        if let Err(error) = subscriber.subscribe(channel.clone()).await {
            tracing::error!(%error, "stop listener could not subscribe");
        }
        loop {
            tokio::select! {
                message = messages.recv() => {
                    let Ok(message) = message else { continue };
                    let Some(text) = message.value.as_str().map(|s| s.to_string()) else { continue };
                    let mut words = text.split(' ');
                    let (Some(flow), Some(id)) = (words.next(), words.next()) else { continue };
                    let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                    for attempt in running.values() {
                        if attempt.flow == flow && attempt.request.as_str() == id {
                            attempt.cancel.cancel();
                        }
                    }
                }
                Ok(_) = reconnects.recv() => {
                    let _ = subscriber.subscribe(channel.clone()).await;
                }
                () = shutdown.cancelled() => break,
            }
        }
        let _ = subscriber.quit().await;
    }

    /// Runs one delivered entry to its script. Redis errors leave the entry pending; it is
    /// then reclaimed after its lease, by this worker or another.
    async fn process(&self, delivery: Delivery) {
        if let Err(error) = self.try_process(&delivery).await {
            tracing::warn!(%error, flow = delivery.flow, request = delivery.request, vertex = delivery.vertex, "vertex left for reclaiming");
        }
    }

    async fn try_process(&self, delivery: &Delivery) -> Result<(), EngineError> {
        let flow = self.engine.flow(delivery.flow)?;
        let plan = &flow.plan;
        let vertex_id: Option<usize> = delivery
            .vertex
            .parse()
            .ok()
            .filter(|&v| v < plan.vertices().len());
        let (Ok(request), Some(vertex_id)) = (RequestId::parse(&delivery.request), vertex_id)
        else {
            // Not ours to understand (another deployment's plan, or damage): never retry it.
            tracing::error!(
                flow = delivery.flow,
                entry = delivery.entry,
                "dropping an unreadable entry"
            );
            self.fail(
                flow,
                delivery,
                &delivery.request,
                &delivery.vertex,
                &Failure::Codec("unreadable stream entry".into()),
                0,
                None,
            )
            .await?;
            return Ok(());
        };
        let vertex = plan.vertex(vertex_id);
        let config = &self.engine.inner.config;

        let mut args = vec![
            Value::from(GROUP),
            Value::from(delivery.entry.as_str()),
            Value::from(delivery.vertex.as_str()),
            Value::from(now_ms().to_string()),
            Value::from(self.consumer.as_str()),
            Value::from(config.max_lost_deliveries.to_string()),
        ];
        if vertex_id == plan.entry() {
            args.push(Value::from("input"));
        } else {
            args.extend(vertex.inputs().iter().map(|p| Value::from(p.to_string())));
        }
        let keys = vec![
            flow.keys.request(&request),
            flow.keys.ready.clone(),
            flow.keys.parked(&request),
        ];
        let reply = scripts::call(&START, &self.engine.inner.client, keys, args)
            .await?
            .into_array();
        let word = reply
            .first()
            .and_then(|v| v.as_str().map(|s| s.to_string()));
        let number = |i: usize| reply.get(i).and_then(Value::as_u64).unwrap_or(0) as u32;
        match word.as_deref() {
            Some("run") => {}
            Some("drop" | "parked") => return Ok(()),
            Some("lost") => {
                let failure = Failure::Lost(number(3));
                return self
                    .fail(
                        flow,
                        delivery,
                        request.as_str(),
                        &delivery.vertex,
                        &failure,
                        number(1),
                        None,
                    )
                    .await;
            }
            _ => {
                return Err(EngineError::Protocol(format!(
                    "start script answered {reply:?}"
                )))
            }
        }
        let started = number(1);
        let failed = number(2);
        // The entry's trace context, else the request's (as submitted).
        let tp = if delivery.traceparent.is_empty() {
            reply
                .get(3)
                .and_then(|v| v.as_str().map(|s| s.to_string()))
                .unwrap_or_default()
        } else {
            delivery.traceparent.clone()
        };
        let parts: Vec<Bytes> = reply
            .into_iter()
            .skip(4)
            .map(|v| {
                v.into_bytes()
                    .ok_or_else(|| EngineError::Protocol("missing input part".into()))
            })
            .collect::<Result<_, _>>()?;

        let cancel = CancellationToken::new();
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (delivery.flow, delivery.entry.clone()),
                Running {
                    flow: delivery.flow,
                    request: request.clone(),
                    cancel: cancel.clone(),
                },
            );
        let ctx = Context::new(
            plan.flow(),
            request.clone(),
            Arc::clone(vertex.path()),
            started,
            cancel.clone(),
        );
        // The vertex's span continues the trace its entry carried (the span that enqueued it,
        // maybe in another process); the successors it enqueues carry this span's context.
        let span = exec::vertex_span(vertex, &ctx);
        span.record("worker", self.consumer.as_str());
        crate::trace::set_parent(&span, &tp);
        let result = tokio::select! {
            result = exec::attempt_in(span.clone(), vertex, &parts, ctx) => Some(result),
            () = cancel.cancelled() => None,
        };
        let handed_on = crate::trace::hand_on(&span, Some(&tp));
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(delivery.flow, delivery.entry.clone()));

        match result {
            Some(Ok(output)) => {
                let mut args = vec![
                    Value::from(GROUP),
                    Value::from(delivery.entry.as_str()),
                    Value::from(request.as_str()),
                    Value::from(delivery.vertex.as_str()),
                    Value::Bytes(output),
                    Value::from(now_ms().to_string()),
                    Value::from(if vertex_id == plan.exit() { "1" } else { "0" }),
                    Value::from(millis(config.retention).to_string()),
                    Value::from(handed_on),
                ];
                for &next in vertex.successors() {
                    args.push(Value::from(next.to_string()));
                    args.push(Value::from(plan.vertex(next).inputs().len().to_string()));
                }
                let keys = vec![
                    flow.keys.request(&request),
                    flow.keys.ready.clone(),
                    flow.keys.parked(&request),
                    flow.keys.done.clone(),
                ];
                let outcome =
                    scripts::call(&COMPLETE, &self.engine.inner.client, keys, args).await?;
                if outcome.as_str().as_deref() == Some("completed") {
                    // The script completed the request: its one end.
                    crate::metrics::flow_finished(
                        flow.plan.flow(),
                        crate::state::RequestStatus::Completed,
                    );
                }
                Ok(())
            }
            Some(Err(failure)) => {
                let failures = failed + 1;
                let retry = failure.is_retryable() && failures < vertex.options().max_attempts();
                let due =
                    retry.then(|| now_ms() + millis(vertex.options().backoff_before(failures + 1)));
                self.fail(
                    flow,
                    delivery,
                    request.as_str(),
                    &delivery.vertex,
                    &failure,
                    started,
                    due,
                )
                .await
            }
            // Stopped: the script only acknowledges the entry, as the request has ended.
            None => {
                self.fail(
                    flow,
                    delivery,
                    request.as_str(),
                    &delivery.vertex,
                    &Failure::Error("stopped".into()),
                    started,
                    None,
                )
                .await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn fail(
        &self,
        flow: &Flow,
        delivery: &Delivery,
        request: &str,
        vertex: &str,
        failure: &Failure,
        attempts: u32,
        retry_at: Option<u64>,
    ) -> Result<(), EngineError> {
        let path = vertex
            .parse::<usize>()
            .ok()
            .filter(|&v| v < flow.plan.vertices().len())
            .map_or_else(
                || vertex.to_owned(),
                |v| flow.plan.vertex(v).path().to_string(),
            );
        let record = RequestFailure {
            vertex: path,
            attempts,
            failure: failure.clone(),
        };
        let json = serde_json::to_vec(&record).map_err(|e| EngineError::Protocol(e.to_string()))?;
        let id = RequestId::parse(request)
            .unwrap_or_else(|_| RequestId::parse("invalid").expect("valid"));
        let keys = vec![
            flow.keys.request(&id),
            flow.keys.ready.clone(),
            flow.keys.parked(&id),
            flow.keys.done.clone(),
            flow.keys.delayed.clone(),
            flow.keys.dead.clone(),
        ];
        let recorded = !matches!(failure, Failure::Lost(_));
        let args = vec![
            Value::from(GROUP),
            Value::from(delivery.entry.as_str()),
            Value::from(request),
            Value::from(vertex),
            Value::Bytes(Bytes::from(json)),
            Value::from(now_ms().to_string()),
            Value::from(retry_at.map(|t| t.to_string()).unwrap_or_default()),
            Value::from(millis(self.engine.inner.config.retention).to_string()),
            Value::from(if recorded { "1" } else { "0" }),
        ];
        let outcome = scripts::call(&FAIL, &self.engine.inner.client, keys, args).await?;
        match outcome.as_str().as_deref() {
            Some("retry") => crate::metrics::retry_scheduled(flow.plan.flow(), record.vertex),
            Some("failed") => {
                // The script failed the request (its one end) and dead-lettered the vertex.
                crate::metrics::flow_finished(
                    flow.plan.flow(),
                    crate::state::RequestStatus::Failed,
                );
                crate::metrics::dead_lettered(flow.plan.flow(), record.vertex);
            }
            _ => {}
        }
        if outcome.as_str().as_deref() == Some("failed") {
            // This failure ended the request: cancel its other running attempts, on every
            // worker, as a stop does.
            let channel = control_channel(&self.engine.inner.config.prefix);
            self.engine
                .inner
                .client
                .publish::<(), _, _>(channel, format!("{} {request}", flow.plan.flow()))
                .await?;
        }
        Ok(())
    }
}

/// The `lag` of consumer group `group` in an `XINFO GROUPS` reply; `None` when Redis cannot
/// tell (it answers nil, or is older than 7 and has no such field).
fn group_lag(groups: Value, group: &str) -> Option<u64> {
    groups.into_array().into_iter().find_map(|info| {
        let fields: HashMap<String, Value> = info
            .into_map()
            .ok()?
            .inner()
            .into_iter()
            .filter_map(|(key, value)| Some((key.as_str()?.to_owned(), value)))
            .collect();
        if fields.get("name")?.as_string()? != group {
            return None;
        }
        fields.get("lag")?.as_u64()
    })
}
