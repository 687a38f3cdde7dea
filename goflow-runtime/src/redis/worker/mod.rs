//! The worker side: reads ready vertex instances, runs them, and moves their requests on.
//!
//! One worker runs up to `concurrency` attempts at once. When an attempt completes, its
//! completion script hands the instances it makes ready to this same worker, as many as it has
//! free slots for (the slot of the attempt that completed included), on the entry of the
//! attempt that completed, which carries them from then on (see `entry.lua`): the worker runs
//! them at once, without reading them or starting them in a script of their own, so a chain
//! costs one script per vertex. Its tasks:
//! - the reader: `XREADGROUP ... BLOCK` over the ready streams of all registered workflows,
//!   on its own connection (on a Redis Cluster, one reader per hash slot), asking for as many
//!   entries as it has room for in its intake (up to the configured batch), once half of it
//!   is free (room it takes once the read returns, not while it blocks). The intake holds as
//!   many entries as there are slots: the entries of one read are started at once, in one
//!   call of the start script, and then wait there for a slot, so the start's round trip
//!   overlaps the attempts running meanwhile instead of keeping a slot idle; a started entry
//!   shows as `running` from then on, as a handed-off one does. A request's first entry that
//!   carries its input is not started: it runs at once, and its completion records its start
//!   (see `attempt`);
//! - the reclaimer: every half lease, `XAUTOCLAIM`s entries whose holder has not renewed them
//!   for a lease (its worker died) and runs them, each started once it has its slot (see
//!   `attempt`: how lost deliveries are charged); every lease, it also removes from the
//!   groups the consumers of workers that are gone (see `housekeeping`);
//! - the renewer: every third of a lease, resets the idle time of the entries it is running,
//!   so that long attempts keep their lease;
//! - the promoter: moves due retries back to the ready streams;
//! - the stop listener: cancels running attempts of stopped requests;
//! - the backlog sampler: every few seconds, the length and consumer-group lag of the ready
//!   streams, as metrics (see `crate::metrics`).
//!
//! At start, a worker says whether the server persists its data, and creates its consumer
//! groups; at a clean shutdown, once its attempts have ended, it leaves the groups (see
//! `housekeeping`). While Redis is out of memory, it keeps what it holds and tries its writes
//! again with backoff (see `overload`).
//!
//! This file holds the [`Worker`], how it starts, and what its parts share: the stream entries
//! it holds and the attempts it runs. The tasks above are in `tasks`; running one delivered
//! entry is in `attempt`; the scripts an attempt is recorded by are in `record` and, the
//! completion, `complete`; a completion that runs ahead instead of being recorded, in `run`.

mod attempt;
mod complete;
mod housekeeping;
mod overload;
mod record;
mod run;
mod tasks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::protocol::{
    GROUP, HOOKS_GROUP, READY_HASH, READY_INPUT, READY_INSTANCE, READY_REQUEST, READY_TRACEPARENT,
};
use super::{connect_client, read_groups, Flow, RedisEngine, RedisError};

pub(super) use self::housekeeping::{add_version, create_group};
use crate::codec::Codec;
use crate::error::Error;
use crate::plan::{Inputs, Instance, Slot};
use crate::request_id::RequestId;
use crate::sync::lock;

/// An instance a completion handed to this worker, with the slot reserved for it if there was
/// a free one.
type Handed = (Delivery, Option<OwnedSemaphorePermit>);

/// Runs the registered workflows' vertices; see the module docs.
pub struct Worker<C: Codec> {
    engine: RedisEngine<C>,
    consumer: String,
    /// One permit per attempt that may run at once.
    slots: Arc<Semaphore>,
    /// How many attempts may run at once: the slots' permits.
    concurrency: u32,
    /// Taken by an instance that is to run alone on this worker (one charged with a lost
    /// delivery: see `attempt`) before it takes every slot, so that two such never wait for
    /// each other's slots.
    alone: Arc<tokio::sync::Mutex<()>>,
    /// One permit per entry read (or reclaimed) that may wait for a slot, started: as many as
    /// there are slots, so that the next entries are read and started while the slots are
    /// busy, and no more.
    intake: Arc<Semaphore>,
    /// How much room the reader waits for in the intake before it reads: half of it.
    read_when_free: u32,
    /// Attempts in progress, by entry and instance.
    running: Arc<Mutex<HashMap<EntryKey, Running>>>,
    /// Entries delivered to this worker that wait here (for a free slot, for their
    /// completion to hand them on, for Redis to accept a write), each with how many waits
    /// hold it; their leases are renewed too, so that nobody reclaims them meanwhile.
    held: Arc<Mutex<HashMap<EntryKey, usize>>>,
    /// Requests this worker heard were stopped (or failed elsewhere), by flow and id, with
    /// when: an attempt registered in `running` after the news came checks here, so that no
    /// attempt starts (or runs on uncancelled) once its request has ended.
    ended: Mutex<HashMap<String, HashMap<String, std::time::Instant>>>,
    /// Cancelled when the worker shuts down (the token [`Worker::run`] was given).
    stopping: CancellationToken,
    /// Whether Redis is refusing writes for want of memory, for the log.
    memory: overload::Memory,
}

/// A registration in one of the worker's shared sets, undone when dropped (also when the future
/// holding it is dropped midway), so that nothing stays registered, and renewed, for ever.
struct Registered<'a, T> {
    set: &'a Mutex<T>,
    key: EntryKey,
    remove: fn(&mut T, &EntryKey),
}

impl<T> Drop for Registered<'_, T> {
    fn drop(&mut self) {
        (self.remove)(&mut lock(self.set), &self.key);
    }
}

/// An instance a stream entry of this worker delivers or carries: its flow, the partition
/// whose ready stream holds the entry, the entry's id and the instance's key (an entry may
/// carry several instances at once; see `entry.lua`).
type EntryKey = (&'static str, usize, String, String);

/// An attempt in progress: its stream entry and how to cancel it.
struct Running {
    flow: &'static str,
    request: RequestId,
    cancel: CancellationToken,
}

/// A delivered stream entry.
struct Delivery {
    flow: &'static str,
    /// The partition of the flow whose ready stream holds the entry (its request's, unless
    /// the entry is damaged).
    partition: usize,
    /// Its entry in that ready stream.
    entry: String,
    request: String,
    /// The instance's [key](crate::plan::Instance::key), as the entry holds it.
    instance: String,
    /// The `traceparent` of the span that enqueued it (empty for retries of old entries).
    traceparent: String,
    /// The request's input, if the entry carries it (the entry vertex's entry, as submitted).
    input: Option<Bytes>,
    /// The version of the graph the entry's instance key is numbered in (a structural hash):
    /// the request's when the entry was queued. An entry of another version than this
    /// worker's is moved to its request's version, or dropped if the request has migrated
    /// since, by the start script; entries of earlier builds carry it only when they carry
    /// the input.
    hash: Option<String>,
    /// Whether the entry was reclaimed from a lost worker, rather than read (or it is an
    /// instance such an entry carries): it is started once it has its slot, as it begins
    /// running.
    reclaimed: bool,
    /// Whether it runs alone on this worker (lost deliveries are charged to it: see
    /// `attempt`), once it has every slot.
    alone: bool,
    /// When the attempt began (ms; set when it was read, then when it got its slot), if it
    /// runs at once on the input the entry carries, without a start script: its start is
    /// recorded with its end (or once it runs long).
    at_once: Option<u64>,
    /// What starting it decided, once it is started: by its read's start script, or, for an
    /// instance handed off by a completion, by that completion (attempt 1, with the values of
    /// its inputs).
    start: Option<record::Start>,
    /// The unrecorded run this attempt belongs to, if a completion ran ahead to start it (see
    /// `run`).
    run: Option<run::SharedRun>,
    /// Whether its completion may run ahead: not on an entry that was reclaimed.
    may_run_ahead: bool,
}

impl Delivery {
    /// A delivery read from the ready stream, or reclaimed from a lost worker.
    fn read(
        flow: &'static str,
        partition: usize,
        entry: String,
        fields: &HashMap<String, Bytes>,
        reclaimed: bool,
    ) -> Self {
        let text = |name: &str| {
            fields
                .get(name)
                .map(|value| String::from_utf8_lossy(value).into_owned())
                .unwrap_or_default()
        };
        Self {
            flow,
            partition,
            request: text(READY_REQUEST),
            instance: text(READY_INSTANCE),
            traceparent: text(READY_TRACEPARENT),
            input: fields.get(READY_INPUT).cloned(),
            hash: fields.contains_key(READY_HASH).then(|| text(READY_HASH)),
            reclaimed,
            alone: false,
            at_once: None,
            entry,
            start: None,
            run: None,
            may_run_ahead: !reclaimed,
        }
    }

    /// Whether this first delivery of an entry vertex can run at once, on the input its entry
    /// carries (`flow` being its flow), and if so, marks it started: attempt 1, on that input,
    /// its start to be recorded by its completion. One submitted on another graph than this
    /// worker's goes through the start script, which tells.
    fn run_at_once(&mut self, flow: &Flow) -> bool {
        let Some(input) = self.input.clone().filter(|_| !self.reclaimed) else {
            return false;
        };
        if self.hash.as_deref() != Some(flow.hash.as_str()) {
            return false;
        }
        let plan = &flow.plan;
        let entry = matches!(
            self.identify(flow),
            Some((_, instance)) if matches!(
                plan.inputs_of(&instance),
                Inputs::Slots(slots) if slots == [Slot::Input]
            )
        );
        if entry {
            self.start = Some(record::Start::Run {
                started: 1,
                failed: 0,
                traceparent: self.traceparent.clone(),
                values: vec![Some(input)],
            });
            self.at_once = Some(crate::time::now_ms());
        }
        entry
    }

    /// Its request and instance, if the entry names ones of `flow`'s plan (or, for an entry
    /// of another version, any well-formed ones: see [`foreign`](Self::foreign)).
    fn identify(&self, flow: &Flow) -> Option<(RequestId, Instance)> {
        let plan = &flow.plan;
        let instance = Instance::parse_key(&self.instance).filter(|i| {
            self.foreign(flow)
                || (i.vertex() < plan.vertices().len()
                    && i.items().len() == plan.vertex(i.vertex()).depth())
        })?;
        Some((RequestId::parse(&self.request).ok()?, instance))
    }

    /// Whether the entry's instance key is numbered in another version of the graph than
    /// `flow`'s: the start script moves it to its request's version, or drops it.
    fn foreign(&self, flow: &Flow) -> bool {
        self.hash.as_deref().is_some_and(|hash| hash != flow.hash)
    }

    fn key(&self) -> EntryKey {
        (
            self.flow,
            self.partition,
            self.entry.clone(),
            self.instance.clone(),
        )
    }

    /// The keys of the partition of `flow` (its flow) that holds the entry: every script run
    /// for the delivery touches these (its request's, for an entry that names one).
    fn keys<'f>(&self, flow: &'f Flow) -> &'f crate::redis::protocol::FlowKeys {
        &flow.keys.all()[self.partition]
    }

    /// The same entry carrying `instance`, which a completion handed to this worker and
    /// started (`start`).
    fn handed(&self, instance: String, traceparent: &str, start: record::Start) -> Self {
        Self {
            traceparent: traceparent.to_owned(),
            start: Some(start),
            reclaimed: false,
            ..self.carrying(instance)
        }
    }

    /// The same entry delivering another instance it carries, to be started (as it begins
    /// running, if the entry was reclaimed).
    fn carrying(&self, instance: String) -> Self {
        Self {
            flow: self.flow,
            partition: self.partition,
            entry: self.entry.clone(),
            request: self.request.clone(),
            instance,
            // The trace context of the span that handed it on is not kept.
            traceparent: String::new(),
            input: None,
            hash: None,
            reclaimed: self.reclaimed,
            alone: false,
            at_once: None,
            start: None,
            run: None,
            may_run_ahead: self.may_run_ahead && !self.reclaimed,
        }
    }
}

impl<C: Codec> std::fmt::Debug for Worker<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("consumer", &self.consumer)
            .field("free_slots", &self.slots.available_permits())
            .field("running", &lock(&self.running).len())
            .finish_non_exhaustive()
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
            concurrency: u32::try_from(concurrency.max(1)).unwrap_or(u32::MAX),
            alone: Arc::default(),
            intake: Arc::new(Semaphore::new(concurrency.max(1))),
            read_when_free: u32::try_from(concurrency.max(1).div_ceil(2)).unwrap_or(u32::MAX),
            consumer: format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..)),
            running: Arc::default(),
            held: Arc::default(),
            ended: Mutex::default(),
            stopping: CancellationToken::new(),
            memory: overload::Memory::default(),
        }
    }
}

impl<C: Codec> Worker<C> {
    /// This worker's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Runs until `shutdown` is cancelled, then stops reading, lets the running attempts
    /// finish (unread entries stay in the streams for other workers) and leaves the consumer
    /// groups.
    ///
    /// At start it logs a warning if the server persists nothing, and, while the server is
    /// out of memory, waits for memory to create any consumer group that does not exist yet.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), Error> {
        self.stopping = shutdown.clone();
        let this = Arc::new(self);
        this.check_persistence().await;
        // Redis may be slow or away as the worker starts (paused, failing over, busy): its
        // start-up is tried again until Redis answers, as its reads are, rather than given up.
        let mut backoff = overload::Backoff::new();
        loop {
            match this.create_groups().await {
                Ok(()) => break,
                Err(error) if error.is_transient() && !shutdown.is_cancelled() => {
                    tracing::warn!(error = %crate::error::chain(&error), consumer = this.consumer, "Redis did not answer the worker's start-up; trying again");
                    tokio::time::sleep(backoff.next()).await;
                }
                Err(error) => return Err(Error::engine(error)),
            }
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
        // Blocking reads get their own connections, so they never delay other commands: one
        // per group of ready streams that one read can read (all of them, unless on a Redis
        // Cluster, where a read's streams share a hash slot).
        let inner = &this.engine.inner;
        let streams = inner
            .flows
            .iter()
            .flat_map(|(name, flow)| {
                let parts = flow.keys.all().iter().enumerate();
                parts.map(|(n, keys)| (keys.ready.clone(), (*name, n)))
            })
            .collect();
        let mut reads = Vec::new();
        for group in read_groups(&inner.client, streams) {
            let reader = connect_client(&inner.config.url, None)
                .await
                .map_err(Error::engine)?;
            reads.push((reader, group));
        }
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
        let mut readers = JoinSet::new();
        for (reader, group) in reads {
            readers.spawn(Arc::clone(&this).read_loop(reader, group, shutdown.clone()));
        }
        let mut read = Ok(());
        while let Some(ended) = readers.join_next().await {
            match ended {
                Ok(Ok(())) => {}
                Ok(Err(error)) => read = Err(error),
                Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Err(_) => {}
            }
            // One read loop ending ends the worker: the others stop too.
            shutdown.cancel();
        }
        while tasks.join_next().await.is_some() {}
        // Every attempt has ended, and its entry is acknowledged (or left to be reclaimed).
        this.retire().await;
        read.map_err(Error::engine)
    }

    /// Holds `delivery`'s entry while it waits here (for a slot, or for its completion to
    /// hand it on): its lease is renewed with the running ones', until the guard is dropped.
    fn hold(&self, delivery: &Delivery) -> Registered<'_, HashMap<EntryKey, usize>> {
        let key = delivery.key();
        *lock(&self.held).entry(key.clone()).or_default() += 1;
        Registered {
            set: &self.held,
            key,
            remove: |held, key| {
                if let Some(holds) = held.get_mut(key) {
                    *holds -= 1;
                    if *holds == 0 {
                        held.remove(key);
                    }
                }
            },
        }
    }

    /// Registers `delivery`'s running attempt, to be renewed and cancelled, until the guard is
    /// dropped.
    fn register(
        &self,
        delivery: &Delivery,
        running: Running,
    ) -> Registered<'_, HashMap<EntryKey, Running>> {
        let key = delivery.key();
        lock(&self.running).insert(key.clone(), running);
        Registered {
            set: &self.running,
            key,
            remove: |running, key| {
                running.remove(key);
            },
        }
    }

    /// Creates the consumer groups this worker reads through, unless they exist: the
    /// workers' group on every ready stream, and, before it, the hooks' group on the done
    /// stream of every flow with a finish hook (from the current end: requests that end from
    /// now on are hooked), so that once a worker reads, every request it ends is hooked.
    /// While Redis is out of memory, waits for memory to create one that does not exist
    /// (until the worker shuts down).
    pub(super) async fn create_groups(&self) -> Result<(), RedisError> {
        let inner = &self.engine.inner;
        let hooked = inner
            .flows
            .iter()
            .filter(|(name, _)| inner.hooks.contains_key(*name));
        for (_, flow) in hooked {
            for keys in flow.keys.all() {
                create_group(&inner.client, &keys.done, HOOKS_GROUP, "$", &self.stopping).await?;
            }
        }
        for flow in inner.flows.values() {
            // The version's workers are listed from here (before the group is created: once
            // it exists, the version is known).
            housekeeping::add_version(&inner.client, flow).await?;
            for keys in flow.keys.all() {
                create_group(&inner.client, &keys.ready, GROUP, "0", &self.stopping).await?;
            }
        }
        Ok(())
    }
}
