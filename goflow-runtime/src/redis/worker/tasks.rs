//! The worker's tasks (see the module docs of `worker`), each a loop that [`Worker::run`]
//! starts and its shutdown ends: reading, reclaiming, renewing leases, promoting retries,
//! sampling the backlog, and listening for stops. Apart from running an attempt because they
//! only find entries (or news) and pass them on; what happens to an entry is in `attempt`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::{ClientLike, EventInterface, PubsubInterface, StreamsInterface, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::housekeeping::RETIRE_EVERY_ROUNDS;
use super::overload::{is_oom, Backoff};
use super::{Delivery, Worker};
use crate::codec::Codec;
use crate::redis::info;
use crate::redis::protocol::{control_channel, GROUP};
use crate::redis::scripts::{self, PROMOTE};
use crate::redis::{connect_client, stream_read, RedisError, StreamEntry};
use crate::sync::lock;
use crate::time::{millis, now_ms};

impl<C: Codec> Worker<C> {
    /// Reads the ready streams `streams` (each with its workflow's name and partition), which
    /// one read can read together (see [`read_groups`](crate::redis::read_groups)), on `reader`, a
    /// connection of their own, until `shutdown`.
    pub(super) async fn read_loop(
        self: Arc<Self>,
        reader: fred::prelude::Client,
        streams: Vec<(String, (&'static str, usize))>,
        shutdown: CancellationToken,
    ) -> Result<(), RedisError> {
        let flows: Vec<(&'static str, usize, String)> = streams
            .into_iter()
            .map(|(key, (name, partition))| (name, partition, key))
            .collect();
        let keys: Vec<String> = flows.iter().map(|(_, _, key)| key.clone()).collect();
        let ids: Vec<&str> = flows.iter().map(|_| ">").collect();
        let batch = self.engine.inner.config.batch.max(1);
        let mut attempts = JoinSet::new();
        while !shutdown.is_cancelled() {
            // Wait for room for half the intake, then ask for all there is, up to a batch: the
            // entries read are started at once, in one script call, and wait there for a slot
            // (see `drive`). Reading only once half the intake has moved on to slots makes
            // reads and starts of several entries at once under load; the slots never wait,
            // as the other half is there for them. An idle worker has all the room at once.
            // The room is taken once the read returns, not held while it blocks: on a Redis
            // Cluster a worker has a read loop per hash slot, and a loop blocked on an idle
            // stream must leave the room to the others (which may then read a little more
            // than there is room for, at most a batch each: those entries wait here for a
            // slot).
            let room = tokio::select! {
                permit = Arc::clone(&self.intake).acquire_many_owned(self.read_when_free) => permit.expect("never closed"),
                () = shutdown.cancelled() => break,
            };
            let count = (room.num_permits() + self.intake.available_permits()).min(batch);
            drop(room);
            let mut read = std::pin::pin!(reader.xreadgroup::<Value, _, _, _, _>(
                GROUP,
                self.consumer.as_str(),
                Some(count as u64),
                Some(1000),
                false,
                keys.clone(),
                ids.clone()
            ));
            // At a shutdown, the read in flight still ends within its block (a second): what
            // it delivers is run, not left pending for a consumer that is about to leave.
            let read: Result<Value, fred::error::Error> = tokio::select! {
                read = &mut read => read,
                () = shutdown.cancelled() => read.await,
            };
            // A read that timed out (nothing arrived within the block) is the empty answer:
            // read again at once.
            let streams = match read.map_err(RedisError::from).and_then(stream_read) {
                Ok(streams) => streams,
                Err(RedisError::Redis(error)) if error.details().starts_with("NOGROUP") => {
                    // The server lost its data (a restart without persistence).
                    let _ = self.create_groups().await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(error = %crate::error::chain(&error), "reading ready vertices failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            // The room the entries read take, as far as there is any.
            let read = streams.values().map(Vec::len).sum::<usize>();
            let mut permits: Vec<_> = (0..read)
                .map_while(|_| Arc::clone(&self.intake).try_acquire_owned().ok())
                .collect();
            for &(name, partition, ref key) in &flows {
                let mut deliveries: Vec<Delivery> = streams
                    .get(key.as_str())
                    .into_iter()
                    .flatten()
                    .map(|(entry, fields)| {
                        Delivery::read(name, partition, entry.clone(), fields, false)
                    })
                    .collect();
                if deliveries.is_empty() {
                    continue;
                }
                // Entry vertices whose entries carry their input run at once; the others are
                // started together (any left unstarted by a Redis error start on their own).
                if let Ok(flow) = self.engine.flow(name) {
                    let mut later = Vec::with_capacity(deliveries.len());
                    for mut delivery in deliveries {
                        if delivery.run_at_once(flow) {
                            let place = permits.pop();
                            attempts.spawn(Arc::clone(&self).drive(delivery, None, place));
                        } else {
                            later.push(delivery);
                        }
                    }
                    deliveries = later;
                    if let Err(error) = self.start(flow, &mut deliveries).await {
                        tracing::warn!(%error, flow = name, "starting the entries read failed");
                    }
                }
                for delivery in deliveries {
                    // COUNT is per stream: entries beyond the room taken are delivered to
                    // this worker all the same, so they wait here for a slot without a place.
                    let place = permits.pop();
                    attempts.spawn(Arc::clone(&self).drive(delivery, None, place));
                }
            }
            while attempts.try_join_next().is_some() {}
        }
        // Let running attempts finish: their entries are acknowledged by their own scripts.
        while attempts.join_next().await.is_some() {}
        // `QUIT` would queue behind a blocked read; close in the background instead.
        tokio::spawn(async move {
            let _ = reader.quit().await;
        });
        Ok(())
    }

    pub(super) async fn reclaim_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let lease = self.engine.inner.config.lease;
        let mut attempts = JoinSet::new();
        let mut rounds: u32 = 0;
        loop {
            tokio::select! {
                () = tokio::time::sleep(lease / 2) => {}
                () = shutdown.cancelled() => break,
            }
            rounds = rounds.wrapping_add(1);
            if rounds % RETIRE_EVERY_ROUNDS == 0 {
                self.retire_idle().await;
            }
            self.forget_expired().await;
            // Collected: the iterator's closures are not `Send` across the awaits.
            let mut partitions = Vec::new();
            for (name, flow) in &self.engine.inner.flows {
                for (partition, keys) in flow.keys.all().iter().enumerate() {
                    partitions.push((*name, flow, partition, keys));
                }
            }
            for (name, flow, partition, keys) in partitions {
                let claimed: Result<(String, Vec<StreamEntry>), _> = self
                    .engine
                    .inner
                    .client
                    .xautoclaim_values(
                        &keys.ready,
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
                    crate::metrics::entries_reclaimed(&flow.plan, entries.len() as u64);
                }
                for (entry, fields) in entries {
                    tracing::info!(flow = name, entry, "reclaimed an entry from a lost worker");
                    let place = tokio::select! {
                        permit = Arc::clone(&self.intake).acquire_owned() => permit.expect("never closed"),
                        () = shutdown.cancelled() => break,
                    };
                    // Started once it has its slot (see `attempt`).
                    let delivery = Delivery::read(name, partition, entry, &fields, true);
                    attempts.spawn(Arc::clone(&self).drive(delivery, None, Some(place)));
                }
            }
            while attempts.try_join_next().is_some() {}
        }
        while attempts.join_next().await.is_some() {}
    }

    pub(super) async fn renew_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let lease = self.engine.inner.config.lease;
        loop {
            tokio::select! {
                () = tokio::time::sleep(lease / 3) => {}
                () = shutdown.cancelled() => return,
            }
            // An entry carrying several instances is renewed once.
            let by_stream: HashMap<(&'static str, usize), HashSet<String>> = {
                let running = lock(&self.running);
                let held = lock(&self.held);
                let mut by_stream: HashMap<_, HashSet<String>> = HashMap::new();
                for (flow, partition, entry, _) in running.keys().chain(held.keys()) {
                    let stream = by_stream.entry((*flow, *partition)).or_default();
                    stream.insert(entry.clone());
                }
                by_stream
            };
            for ((name, partition), entries) in by_stream {
                let Some(keys) = self
                    .engine
                    .flow(name)
                    .ok()
                    .and_then(|flow| flow.keys.all().get(partition))
                else {
                    continue;
                };
                // Claiming our own entries with JUSTID resets their idle time.
                let renewed: Result<Value, _> = self
                    .engine
                    .inner
                    .client
                    .xclaim(
                        &keys.ready,
                        GROUP,
                        self.consumer.as_str(),
                        0,
                        entries.into_iter().collect::<Vec<_>>(),
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

    pub(super) async fn promote_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let every = self.engine.inner.config.retry_poll;
        // While Redis is out of memory, the promoter backs off instead of failing every poll.
        let mut backoff: Option<Backoff> = None;
        loop {
            let wait = backoff.as_mut().map_or(every, |b| b.next().max(every));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return,
            }
            let partitions = self.engine.inner.flows.values();
            for keys in partitions.flat_map(|flow| flow.keys.all()) {
                let moved = scripts::call(&PROMOTE, &self.engine.inner.client, || {
                    let streams = vec![keys.delayed.clone(), keys.ready.clone()];
                    (
                        streams,
                        vec![Value::from(now_ms().to_string()), Value::from("100")],
                    )
                })
                .await;
                match moved {
                    Err(error) if is_oom(&error) => {
                        self.memory
                            .refused(&self.consumer, "moving due retries", &error);
                        backoff.get_or_insert_with(Backoff::new);
                        break;
                    }
                    Err(error) => tracing::warn!(%error, "moving due retries failed"),
                    Ok(_) => {
                        if backoff.take().is_some() {
                            self.memory.accepted(&self.consumer);
                        }
                    }
                }
            }
        }
    }

    /// Samples each ready stream's length (`XLEN`) and the workers' group lag (`lag` in
    /// `XINFO GROUPS`, Redis 7) into gauges: at start, then every few seconds.
    pub(super) async fn sample_backlog(self: Arc<Self>, shutdown: CancellationToken) {
        let client = &self.engine.inner.client;
        loop {
            'flows: for (name, flow) in &self.engine.inner.flows {
                // Summed over the partitions.
                let (mut length, mut lag) = (0, Some(0));
                for keys in flow.keys.all() {
                    let of_partition: Result<u64, _> = client.xlen(keys.ready.clone()).await;
                    let groups: Result<Value, _> = client.xinfo_groups(keys.ready.clone()).await;
                    match (of_partition, groups) {
                        (Ok(n), Ok(groups)) => {
                            length += n;
                            lag = lag.zip(info::group_lag(groups, GROUP)).map(|(a, b)| a + b);
                        }
                        (Err(error), _) | (_, Err(error)) => {
                            tracing::debug!(%error, flow = name, "sampling the stream backlog failed");
                            continue 'flows;
                        }
                    }
                }
                crate::metrics::stream_backlog(&flow.plan, length, lag);
            }
            tokio::select! {
                () = tokio::time::sleep(crate::metrics::BACKLOG_SAMPLE_EVERY) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    pub(super) async fn stop_listener(self: Arc<Self>, shutdown: CancellationToken) {
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
                    let running = lock(&self.running);
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

    /// Remembers that request `id` of `flow` has ended (for [`Self::has_ended`]), for a few
    /// leases.
    fn note_ended(&self, flow: &str, id: &str) {
        let keep = self.engine.inner.config.lease * 4;
        let mut ended = lock(&self.ended);
        for ids in ended.values_mut() {
            ids.retain(|_, at| at.elapsed() < keep);
        }
        ended
            .entry(flow.to_owned())
            .or_default()
            .insert(id.to_owned(), std::time::Instant::now());
    }

    /// Forgets that request `id` of `flow` has ended, if this worker heard so before `asked`:
    /// a start script asked then answered that it runs (it has been retried since). An end
    /// heard of later is kept, as it may have come after that answer.
    pub(super) fn forget_ended(&self, flow: &str, id: &str, asked: std::time::Instant) {
        let mut ended = lock(&self.ended);
        if let Some(ids) = ended.get_mut(flow) {
            if ids.get(id).is_some_and(|at| *at < asked) {
                ids.remove(id);
            }
        }
    }

    /// Whether this worker heard that request `id` of `flow` has ended.
    pub(super) fn has_ended(&self, flow: &str, id: &str) -> bool {
        lock(&self.ended)
            .get(flow)
            .is_some_and(|ids| ids.contains_key(id))
    }
}
