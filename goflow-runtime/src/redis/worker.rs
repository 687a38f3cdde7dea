//! The worker side: reads ready vertex instances, runs them, and moves their requests on.
//!
//! One worker runs up to `concurrency` attempts at once. When an attempt completes, its
//! completion script hands the instances it makes ready to this same worker, as many as it has
//! free slots for (the slot of the attempt that completed included), through the direct stream
//! (see `complete.lua`): the worker runs them at once, without reading them or starting them in
//! a script of their own, so a chain costs one script per vertex. Its tasks:
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
use futures_util::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::client::control_channel;
use super::keys::fields;
use super::scripts::{self, COMPLETE, FAIL, PROMOTE, START};
use super::{
    connect_client, millis, now_ms, EngineError, Flow, RedisEngine, StreamEntry, StreamRead,
};
use crate::codec::Codec;
use crate::context::Context;
use crate::error::Failure;
use crate::exec;
use crate::plan::{Advance, Inputs, Instance, Need, Plan, Slot};
use crate::request_id::RequestId;
use crate::state::RequestFailure;

/// The consumer group every worker of every process joins.
const GROUP: &str = "workers";

/// An instance a completion handed to this worker, with the slot reserved for it if there was
/// a free one.
type Handed = (Delivery, Option<OwnedSemaphorePermit>);

/// Runs the registered workflows' vertices; see the module docs.
pub struct Worker<C: Codec> {
    engine: RedisEngine<C>,
    consumer: String,
    /// One permit per attempt that may run at once.
    slots: Arc<Semaphore>,
    /// Attempts in progress, by entry (entry ids are unique per stream only).
    running: Arc<Mutex<HashMap<EntryKey, Running>>>,
    /// Entries delivered to this worker that wait for a free slot; their leases are renewed
    /// too, so that nobody reclaims them meanwhile.
    held: Arc<Mutex<std::collections::HashSet<EntryKey>>>,
    /// Requests this worker heard were stopped (or failed elsewhere), by flow and id, with
    /// when: an attempt registered in `running` after the news came checks here, so that no
    /// attempt starts (or runs on uncancelled) once its request has ended.
    ended: Mutex<HashMap<(String, String), std::time::Instant>>,
}

/// A stream entry of this worker: its flow, stream and id.
type EntryKey = (&'static str, Source, String);

/// The stream an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    /// The ready stream, read by every worker.
    Ready,
    /// The direct stream: handed to this worker by a completion (or reclaimed from a lost one).
    Direct,
}

impl Source {
    fn key(self, flow: &Flow) -> &str {
        match self {
            Source::Ready => &flow.keys.ready,
            Source::Direct => &flow.keys.direct,
        }
    }
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
    source: Source,
    entry: String,
    request: String,
    /// The instance's [key](Instance::key), as the entry holds it.
    instance: String,
    /// The `traceparent` of the span that enqueued it (empty for retries of old entries).
    traceparent: String,
    /// For an instance handed off by a completion: already started (attempt 1), with the
    /// values of its inputs as the start script would have read them.
    started: Option<Vec<Option<Bytes>>>,
}

impl Delivery {
    /// A delivery read from `source`'s stream.
    fn read(
        flow: &'static str,
        source: Source,
        entry: String,
        fields: &HashMap<String, String>,
    ) -> Self {
        Self {
            flow,
            source,
            entry,
            request: fields.get("r").cloned().unwrap_or_default(),
            instance: fields.get("v").cloned().unwrap_or_default(),
            traceparent: fields.get("tp").cloned().unwrap_or_default(),
            started: None,
        }
    }

    fn key(&self) -> EntryKey {
        (self.flow, self.source, self.entry.clone())
    }
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
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            consumer: format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..)),
            running: Arc::default(),
            held: Arc::default(),
            ended: Mutex::default(),
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
        let mut tasks = JoinSet::new();
        tasks.spawn(Arc::clone(&this).reclaim_loop(shutdown.clone()));
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
        let read = Arc::clone(&this).read_loop(&reader, shutdown.clone()).await;
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
            for source in [Source::Ready, Source::Direct] {
                let created: Result<(), fred::error::Error> = self
                    .engine
                    .inner
                    .client
                    .xgroup_create(source.key(flow), GROUP, "0", true)
                    .await;
                match created {
                    Err(e) if !e.details().starts_with("BUSYGROUP") => return Err(e.into()),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn read_loop(
        self: Arc<Self>,
        reader: &fred::prelude::Client,
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
                permit = Arc::clone(&self.slots).acquire_owned() => permit.expect("never closed"),
                () = shutdown.cancelled() => break,
            };
            let mut permits = vec![first];
            while permits.len() < batch {
                match Arc::clone(&self.slots).try_acquire_owned() {
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
                    let delivery = Delivery::read(name, Source::Ready, entry.clone(), fields);
                    attempts.spawn(Arc::clone(&self).drive(delivery, permit));
                }
            }
            while attempts.try_join_next().is_some() {}
        }
        // Let running attempts finish: their entries are acknowledged by their own scripts.
        while attempts.join_next().await.is_some() {}
        Ok(())
    }

    async fn reclaim_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let lease = self.engine.inner.config.lease;
        let mut attempts = JoinSet::new();
        loop {
            tokio::select! {
                () = tokio::time::sleep(lease / 2) => {}
                () = shutdown.cancelled() => break,
            }
            for (name, flow) in &self.engine.inner.flows {
                for source in [Source::Ready, Source::Direct] {
                    let claimed: Result<(String, Vec<StreamEntry>), _> = self
                        .engine
                        .inner
                        .client
                        .xautoclaim_values(
                            source.key(flow),
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
                            permit = Arc::clone(&self.slots).acquire_owned() => permit.expect("never closed"),
                            () = shutdown.cancelled() => break,
                        };
                        let delivery = Delivery::read(name, source, entry, &fields);
                        attempts.spawn(Arc::clone(&self).drive(delivery, Some(permit)));
                    }
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
            let by_stream: HashMap<(&'static str, Source), Vec<String>> = {
                let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                let mut by_stream: HashMap<(&'static str, Source), Vec<String>> = HashMap::new();
                for (flow, source, entry) in running.keys().chain(held.iter()) {
                    by_stream
                        .entry((flow, *source))
                        .or_default()
                        .push(entry.clone());
                }
                by_stream
            };
            for ((name, source), entries) in by_stream {
                let Ok(flow) = self.engine.flow(name) else {
                    continue;
                };
                // Claiming our own entries with JUSTID resets their idle time.
                let renewed: Result<Value, _> = self
                    .engine
                    .inner
                    .client
                    .xclaim(
                        source.key(flow),
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
                    self.note_ended(flow, id);
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
    /// Runs a delivered entry in the slot `permit` holds, then, each in a slot of its own, the
    /// instances its completion handed to this worker, and theirs in turn: the first in this
    /// task, the others in tasks of their own.
    fn drive(
        self: Arc<Self>,
        delivery: Delivery,
        permit: Option<OwnedSemaphorePermit>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut branches = JoinSet::new();
            let mut next = Some((delivery, permit));
            while let Some((delivery, permit)) = next {
                let permit = match permit {
                    Some(permit) => permit,
                    None => self.slot_for(&delivery).await,
                };
                let mut handed = self.process(delivery, permit).await.into_iter();
                next = handed.next();
                for (delivery, permit) in handed {
                    branches.spawn(Arc::clone(&self).drive(delivery, permit));
                }
            }
            while branches.join_next().await.is_some() {}
        })
    }

    /// Remembers that request `id` of `flow` has ended (for [`Self::has_ended`]), for a few
    /// leases.
    fn note_ended(&self, flow: &str, id: &str) {
        let keep = self.engine.inner.config.lease * 4;
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended.retain(|_, at| at.elapsed() < keep);
        ended.insert((flow.to_owned(), id.to_owned()), std::time::Instant::now());
    }

    /// Whether this worker heard that request `id` of `flow` has ended.
    fn has_ended(&self, flow: &str, id: &str) -> bool {
        self.ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&(flow.to_owned(), id.to_owned()))
    }

    /// Waits for a free slot for an entry this worker holds; meanwhile its lease is renewed
    /// with the running ones', so that nobody reclaims it.
    async fn slot_for(&self, delivery: &Delivery) -> OwnedSemaphorePermit {
        let key = delivery.key();
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone());
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("never closed");
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        permit
    }

    /// Runs one delivered entry to its script; returns the instances its completion handed to
    /// this worker, each with its slot. Redis errors leave the entry pending; it is then
    /// reclaimed after its lease, by this worker or another.
    async fn process(&self, mut delivery: Delivery, permit: OwnedSemaphorePermit) -> Vec<Handed> {
        match self.try_process(&mut delivery, permit).await {
            Ok(handed) => handed,
            Err(error) => {
                tracing::warn!(%error, flow = delivery.flow, request = delivery.request, instance = delivery.instance, "vertex left for reclaiming");
                Vec::new()
            }
        }
    }

    async fn try_process(
        &self,
        delivery: &mut Delivery,
        permit: OwnedSemaphorePermit,
    ) -> Result<Vec<Handed>, EngineError> {
        let flow = self.engine.flow(delivery.flow)?;
        let plan = &flow.plan;
        let instance = Instance::parse_key(&delivery.instance).filter(|i| {
            i.vertex() < plan.vertices().len() && i.items().len() == plan.vertex(i.vertex()).depth()
        });
        let (Ok(request), Some(instance)) = (RequestId::parse(&delivery.request), instance) else {
            // Not ours to understand (another deployment's plan, or damage): never retry it.
            tracing::error!(
                flow = delivery.flow,
                entry = delivery.entry,
                "dropping an unreadable entry"
            );
            let failure = Failure::Codec("unreadable stream entry".into());
            let at = Failed {
                request: &delivery.request,
                instance: None,
                attempts: 0,
            };
            return self
                .fail(flow, delivery, at, &failure, None)
                .await
                .map(|()| Vec::new());
        };
        let vertex = plan.vertex(instance.vertex());
        let inputs = plan.inputs_of(&instance);
        let at = |attempts| Failed {
            request: delivery.request.as_str(),
            instance: Some(&instance),
            attempts,
        };
        let (started, failed, tp, values) = match delivery.started.take() {
            // Handed off by a completion: started there, with its inputs read.
            Some(values) => (1, 0, delivery.traceparent.clone(), values),
            None => match self.start(flow, delivery, &request, &inputs).await? {
                Start::Run {
                    started,
                    failed,
                    traceparent,
                    values,
                } => (started, failed, traceparent, values),
                Start::Skip => return Ok(Vec::new()),
                Start::Lost { started, lost } => {
                    let failure = Failure::Lost(lost);
                    let at = at(started);
                    return self
                        .fail(flow, delivery, at, &failure, None)
                        .await
                        .map(|()| Vec::new());
                }
            },
        };
        let Some(parts) = input_parts(plan, &inputs, values) else {
            // Stored inputs are never removed while the request runs: an engine bug, or keys
            // written by something else. Retrying would find the same.
            let failure = Failure::Codec(format!(
                "the stored inputs of `{}` are incomplete",
                plan.name_of(&instance)
            ));
            return self
                .fail(flow, delivery, at(started), &failure, None)
                .await
                .map(|()| Vec::new());
        };

        let cancel = CancellationToken::new();
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                delivery.key(),
                Running {
                    flow: delivery.flow,
                    request: request.clone(),
                    cancel: cancel.clone(),
                },
            );
        let ctx = Context::new(
            plan.flow(),
            request.clone(),
            plan.name_of(&instance),
            started,
            cancel.clone(),
        );
        // The vertex's span continues the trace its entry carried (the span that enqueued it,
        // maybe in another process); the instances it enqueues carry this span's context.
        let span = exec::vertex_span(vertex, &ctx);
        span.record("worker", self.consumer.as_str());
        crate::trace::set_parent(&span, &tp);
        // Registered first, checked second: news of the request's end that came before the
        // registration is in `ended`, news that comes after cancels it through `running`. (An
        // instance handed off by a completion starts without a script to tell it.)
        if self.has_ended(delivery.flow, &delivery.request) {
            cancel.cancel();
        }
        let result = if cancel.is_cancelled() {
            None
        } else {
            tokio::select! {
                result = exec::attempt_in(span.clone(), vertex, &parts, ctx) => Some(result),
                () = cancel.cancelled() => None,
            }
        };
        let handed_on = crate::trace::hand_on(&span, Some(&tp));
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&delivery.key());

        match result {
            Some(Ok(output)) => match plan.advance(&instance, output.clone()) {
                Ok(advance) => {
                    let done = Done {
                        request: &request,
                        instance: &instance,
                        output,
                        traceparent: handed_on,
                    };
                    self.complete(flow, delivery, done, advance, permit).await
                }
                // A conditional's output or a for-each's collection the plan cannot read: the
                // same bytes would not decode on a retry either.
                Err(error) => self
                    .fail(flow, delivery, at(started), &Failure::from(error), None)
                    .await
                    .map(|()| Vec::new()),
            },
            Some(Err(failure)) => {
                let failures = failed + 1;
                let retry = failure.is_retryable() && failures < vertex.options().max_attempts();
                let due =
                    retry.then(|| now_ms() + millis(vertex.options().backoff_before(failures + 1)));
                self.fail(flow, delivery, at(started), &failure, due)
                    .await
                    .map(|()| Vec::new())
            }
            // Stopped: the script only acknowledges the entry, as the request has ended.
            None => {
                let failure = Failure::Error("stopped".into());
                self.fail(flow, delivery, at(started), &failure, None)
                    .await
                    .map(|()| Vec::new())
            }
        }
    }

    /// The start script: whether a delivered instance runs (with its attempt number and input
    /// values), is dropped or parked, or has been lost too often.
    async fn start(
        &self,
        flow: &Flow,
        delivery: &Delivery,
        request: &RequestId,
        inputs: &Inputs,
    ) -> Result<Start, EngineError> {
        let config = &self.engine.inner.config;
        let mut args = vec![
            Value::from(GROUP),
            Value::from(delivery.entry.as_str()),
            Value::from(delivery.instance.as_str()),
            Value::from(now_ms().to_string()),
            Value::from(self.consumer.as_str()),
            Value::from(config.max_lost_deliveries.to_string()),
        ];
        match inputs {
            Inputs::Slots(slots) | Inputs::FirstOf(slots) => {
                args.extend(slots.iter().map(|slot| Value::from(fields::slot(slot))));
            }
            Inputs::Gather { exit, items } => {
                let vertex = Instance::parse_key(&delivery.instance).map_or(0, |i| i.vertex());
                let gathering = Instance::new(vertex, items.clone());
                args.push(Value::from("*"));
                args.push(Value::from(fields::size(&gathering)));
                args.push(Value::from(fields::gathered_prefix(*exit, items)));
            }
        }
        let keys = vec![
            flow.keys.request(request),
            delivery.source.key(flow).to_owned(),
            flow.keys.parked(request),
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
            Some("drop" | "parked") => return Ok(Start::Skip),
            Some("lost") => {
                return Ok(Start::Lost {
                    started: number(1),
                    lost: number(3),
                })
            }
            _ => {
                return Err(EngineError::Protocol(format!(
                    "start script answered {reply:?}"
                )))
            }
        }
        let (started, failed) = (number(1), number(2));
        // The entry's trace context, else the request's (as submitted).
        let traceparent = if delivery.traceparent.is_empty() {
            reply
                .get(3)
                .and_then(|v| v.as_str().map(|s| s.to_string()))
                .unwrap_or_default()
        } else {
            delivery.traceparent.clone()
        };
        let values = reply.into_iter().skip(4).map(optional_bytes).collect();
        Ok(Start::Run {
            started,
            failed,
            traceparent,
            values,
        })
    }

    /// Applies what a completed instance sets going ([`Plan::advance`]), in one script.
    async fn complete(
        &self,
        flow: &Flow,
        delivery: &Delivery,
        done: Done<'_>,
        advance: Advance,
        permit: OwnedSemaphorePermit,
    ) -> Result<Vec<Handed>, EngineError> {
        let config = &self.engine.inner.config;
        let plan = &flow.plan;
        let completes = advance.completes;
        // The slot this attempt held, and as many free ones as there are instances that may
        // become ready (up to a batch): the script hands off that many, or up to
        // `hand_off_ahead` if more, which then wait here for a slot.
        let mut permits = Vec::new();
        let mut budget = 0;
        if !completes && !advance.arrivals.is_empty() {
            permits.push(permit);
            let wanted = advance.arrivals.len().min(config.batch.max(1));
            while permits.len() < wanted {
                match Arc::clone(&self.slots).try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }
            budget = permits.len().max(wanted.min(config.hand_off_ahead.max(1)));
        }
        // Handed-off instances take the reserved slots in order; the first keeps this one.
        permits.reverse();
        let mut store: Vec<(String, Value)> =
            Vec::with_capacity(advance.store.len() + advance.sizes.len() + advance.skipped.len());
        for (slot, value) in advance.store {
            // The exit's output is stored once, as the request's.
            if completes && matches!(&slot, Slot::Output(i) if i == done.instance) {
                continue;
            }
            store.push((fields::slot(&slot), Value::Bytes(value)));
        }
        for (gathering, size) in &advance.sizes {
            store.push((fields::size(gathering), Value::from(size.to_string())));
        }
        for skipped in &advance.skipped {
            store.push((fields::status(skipped), Value::from("skipped")));
        }
        let mut args = Vec::with_capacity(12 + 2 * store.len() + 5 * advance.arrivals.len());
        args.extend([
            Value::from(GROUP),
            Value::from(delivery.entry.as_str()),
            Value::from(done.request.as_str()),
            Value::from(delivery.instance.as_str()),
            if completes {
                Value::Bytes(done.output)
            } else {
                Value::from("")
            },
            Value::from(now_ms().to_string()),
            Value::from(if completes { "1" } else { "0" }),
            Value::from(millis(config.retention).to_string()),
            Value::from(done.traceparent.as_str()),
            Value::from(self.consumer.as_str()),
            Value::from(budget.to_string()),
            Value::from(store.len().to_string()),
        ]);
        for (field, value) in store {
            args.push(Value::from(field));
            args.push(value);
        }
        for (next, need) in &advance.arrivals {
            let (need, counter) = match need {
                Need::One => (Value::from("1"), String::new()),
                Need::Count(n) => (Value::from(n.to_string()), fields::arrivals(next)),
                Need::Size => (Value::from(fields::size(next)), fields::arrivals(next)),
            };
            args.push(Value::from(next.key()));
            args.push(need);
            args.push(Value::from(counter));
            // What a hand-off reads as the instance's inputs; a gather (its items are read in
            // batches) is always queued.
            match plan.inputs_of(next) {
                Inputs::Slots(slots) | Inputs::FirstOf(slots) => {
                    args.push(Value::from(slots.len().to_string()));
                    args.extend(slots.iter().map(|slot| Value::from(fields::slot(slot))));
                }
                Inputs::Gather { .. } => args.push(Value::from("-")),
            }
        }
        let keys = vec![
            flow.keys.request(done.request),
            delivery.source.key(flow).to_owned(),
            flow.keys.parked(done.request),
            flow.keys.done.clone(),
            flow.keys.ready.clone(),
            flow.keys.direct.clone(),
        ];
        let reply = scripts::call(&COMPLETE, &self.engine.inner.client, keys, args)
            .await?
            .into_array();
        let mut reply = reply.into_iter();
        if reply.next().and_then(|w| w.as_string()).as_deref() == Some("completed") {
            // The script completed the request: its one end.
            crate::metrics::flow_finished(plan.flow(), crate::state::RequestStatus::Completed);
        }
        // The instances handed to this worker: entry id, instance key, its input values.
        let mut handed = Vec::new();
        while let (Some(entry), Some(instance), Some(count)) =
            (reply.next(), reply.next(), reply.next())
        {
            let count = count.as_u64().unwrap_or(0) as usize;
            let values: Vec<Option<Bytes>> =
                reply.by_ref().take(count).map(optional_bytes).collect();
            let (Some(entry), Some(instance)) = (entry.as_string(), instance.as_string()) else {
                return Err(EngineError::Protocol(format!(
                    "the completion script answered an unreadable hand-off of `{}`",
                    delivery.instance
                )));
            };
            let permit = permits.pop();
            handed.push((
                Delivery {
                    flow: delivery.flow,
                    source: Source::Direct,
                    entry,
                    request: delivery.request.clone(),
                    instance,
                    traceparent: done.traceparent.clone(),
                    started: Some(values),
                },
                permit,
            ));
        }
        Ok(handed)
    }

    /// Records a failed attempt: a retry when `retry_at` is set, else the instance's final
    /// failure (and the request's).
    async fn fail(
        &self,
        flow: &Flow,
        delivery: &Delivery,
        at: Failed<'_>,
        failure: &Failure,
        retry_at: Option<u64>,
    ) -> Result<(), EngineError> {
        let plan = &flow.plan;
        // The failure names the instance (`verify[3]`); metrics, the vertex (bounded labels).
        let (name, label) = match at.instance {
            Some(instance) => (
                plan.name_of(instance).to_string(),
                plan.vertex(instance.vertex()).path().to_string(),
            ),
            None => (delivery.instance.clone(), delivery.instance.clone()),
        };
        let record = RequestFailure {
            vertex: name,
            attempts: at.attempts,
            failure: failure.clone(),
        };
        let json = serde_json::to_vec(&record).map_err(|e| EngineError::Protocol(e.to_string()))?;
        let request = at.request;
        let id = RequestId::parse(request)
            .unwrap_or_else(|_| RequestId::parse("invalid").expect("valid"));
        let keys = vec![
            flow.keys.request(&id),
            delivery.source.key(flow).to_owned(),
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
            Value::from(delivery.instance.as_str()),
            Value::Bytes(Bytes::from(json)),
            Value::from(now_ms().to_string()),
            Value::from(retry_at.map(|t| t.to_string()).unwrap_or_default()),
            Value::from(millis(self.engine.inner.config.retention).to_string()),
            Value::from(if recorded { "1" } else { "0" }),
        ];
        let outcome = scripts::call(&FAIL, &self.engine.inner.client, keys, args).await?;
        match outcome.as_str().as_deref() {
            Some("retry") => crate::metrics::retry_scheduled(plan.flow(), label),
            Some("failed") => {
                // The script failed the request (its one end) and dead-lettered the instance.
                crate::metrics::flow_finished(plan.flow(), crate::state::RequestStatus::Failed);
                crate::metrics::dead_lettered(plan.flow(), label);
                // This failure ended the request: cancel its other running attempts, on every
                // worker, as a stop does.
                let channel = control_channel(&self.engine.inner.config.prefix);
                self.engine
                    .inner
                    .client
                    .publish::<(), _, _>(channel, format!("{} {request}", plan.flow()))
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// What the start script decided.
enum Start {
    /// Run attempt `started` (`failed` of the earlier ones failed), on these input values.
    Run {
        started: u32,
        failed: u32,
        traceparent: String,
        values: Vec<Option<Bytes>>,
    },
    /// Not to run: dropped (finished, expired) or parked (paused).
    Skip,
    /// Delivered and lost (its worker died) more often than allowed.
    Lost { started: u32, lost: u32 },
}

/// A script's reply value as bytes; `None` for nil (a missing field).
fn optional_bytes(value: Value) -> Option<Bytes> {
    match value {
        Value::Null => None,
        value => value.into_bytes(),
    }
}

/// The instance whose attempt failed, for [`Worker::fail`].
struct Failed<'a> {
    /// The request id, as the entry holds it.
    request: &'a str,
    /// The instance; `None` when the entry could not be read.
    instance: Option<&'a Instance>,
    /// Attempts started.
    attempts: u32,
}

/// A completed attempt, for [`Worker::complete`].
struct Done<'a> {
    request: &'a RequestId,
    instance: &'a Instance,
    output: Bytes,
    /// The trace context the instances it enqueues carry.
    traceparent: String,
}

/// The input parts of an instance from the values the start script read (`None` for a missing
/// one): every slot's value; the first present one; or a gather's items framed as one sequence
/// (the start script reads their number first). `None` if a value the instance needs is
/// missing.
fn input_parts(plan: &Plan, inputs: &Inputs, values: Vec<Option<Bytes>>) -> Option<Vec<Bytes>> {
    match inputs {
        Inputs::Slots(slots) if values.len() == slots.len() => values.into_iter().collect(),
        Inputs::Slots(_) => None,
        Inputs::FirstOf(_) => values.into_iter().flatten().next().map(|part| vec![part]),
        Inputs::Gather { .. } => {
            let mut values = values.into_iter();
            let count: usize = std::str::from_utf8(&values.next()??).ok()?.parse().ok()?;
            let items = values.collect::<Option<Vec<Bytes>>>()?;
            (items.len() == count).then(|| vec![plan.frame(&items)])
        }
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
