//! What a worker does for the server besides running vertices: it says at start whether the
//! server keeps its data across a restart, it creates its consumer groups (waiting for memory
//! if it must), and it removes consumers from the groups once they are gone: its own at a
//! clean shutdown, and those of workers that died, once they hold nothing. It also forgets,
//! from the listing indexes, the requests whose hashes have expired.
//!
//! Consumers: every worker joins the group `workers` of each ready stream (and `hooks` of each
//! hooked done stream) under a name of its own, and Redis keeps a consumer until it is
//! deleted, so every restart would leave one more behind. `XGROUP DELCONSUMER` drops the
//! consumer's pending entries along with it, and a dropped entry is never delivered again, so
//! a consumer is removed only by `retire.lua`, which checks in the same step that it holds none.
//! A dead worker's entries are reclaimed by the others (see `tasks`), after which it holds
//! none; the reclaimer removes it once it has been idle for [`RETIRE_IDLE_LEASES`] leases. A
//! live worker that holds entries is never that idle (it renews their leases every third of a
//! lease, which refreshes its idle time); one that has been delivered nothing for that long
//! may be removed too (Redis counts a consumer idle while its reads find nothing), which loses
//! nothing: it holds nothing, and its next delivery adds it again.

use fred::prelude::{ClientLike, KeysInterface, SetsInterface, StreamsInterface, Value};
use tokio_util::sync::CancellationToken;

use super::overload::{is_oom, Backoff, REMIND_EVERY};
use super::Worker;
use crate::codec::Codec;
use crate::redis::info;
use crate::redis::protocol::{GROUP, HOOKS_GROUP};
use crate::redis::scripts::{self, RETIRE};
use crate::redis::RedisError;
use crate::time::millis;

/// How many leases a consumer holding no pending entry must have been idle before the
/// reclaimer removes it from its group.
pub(super) const RETIRE_IDLE_LEASES: u32 = 3;

impl<C: Codec> Worker<C> {
    /// Logs whether the server keeps its data across a restart: a warning when it has
    /// neither the append-only file nor snapshots (a restart then loses every request, and
    /// the requests in flight become unknown), a line at `info` when it has snapshots only or
    /// when it cannot tell (`CONFIG` is disabled, as on some managed services).
    pub(super) async fn check_persistence(&self) {
        let client = &self.engine.inner.client;
        let get = async |name: &'static str| -> Result<String, fred::error::Error> {
            let command = fred::types::CustomCommand::new_static(
                "CONFIG",
                fred::types::ClusterHash::Random,
                false,
            );
            let reply: Value = client
                .custom(command, vec![Value::from("GET"), Value::from(name)])
                .await?;
            config_value(reply, name).ok_or_else(|| {
                fred::error::Error::new(
                    fred::error::ErrorKind::Parse,
                    format!("CONFIG GET {name} answered no value"),
                )
            })
        };
        let consumer = self.consumer.as_str();
        match (get("appendonly").await, get("save").await) {
            (Ok(aof), _) if aof == "yes" => {}
            (Ok(_), Ok(save)) if save.trim().is_empty() => tracing::warn!(
                consumer,
                "Redis persists nothing (appendonly no, save \"\"): if it restarts, every \
                 request is lost and those in flight become unknown; the engine's guarantees \
                 need the append-only file (appendonly yes, appendfsync everysec or always)"
            ),
            (Ok(_), Ok(save)) => tracing::info!(
                consumer,
                save,
                "Redis keeps snapshots only (appendonly no): if it restarts, what changed since \
                 the last snapshot is lost; the engine's guarantees need the append-only file \
                 (appendonly yes)"
            ),
            (Err(error), _) | (_, Err(error)) => tracing::info!(
                consumer,
                error = %error,
                "could not tell whether Redis keeps its data across a restart (CONFIG GET \
                 failed); the engine's guarantees need the append-only file (appendonly yes)"
            ),
        }
    }

    /// Removes this worker's consumer from the groups it joined, where it holds no pending
    /// entry (at a clean shutdown, once its attempts have ended); where it still holds some
    /// (a write that failed left them to be reclaimed), it stays, and the reclaimer of
    /// another worker removes it once they are reclaimed.
    pub(super) async fn retire(&self) {
        for (stream, group) in self.consumed_groups() {
            match self.retire_consumer(stream, group, &self.consumer).await {
                Ok(true) => {}
                Ok(false) => tracing::info!(
                    consumer = self.consumer,
                    stream,
                    group,
                    "this worker's consumer holds pending entries, left to be reclaimed: it stays in the group until then"
                ),
                Err(error) => tracing::warn!(
                    consumer = self.consumer,
                    stream,
                    group,
                    error = %crate::error::chain(&error),
                    "could not remove this worker's consumer from its group"
                ),
            }
        }
    }

    /// Forgets, from every workflow's listing indexes, the requests whose hashes have expired
    /// (every half lease, on every worker: the indexes stay bounded by the requests kept).
    pub(super) async fn forget_expired(&self) {
        for (name, flow) in &self.engine.inner.flows {
            if let Err(error) = self.engine.forget_expired(flow).await {
                tracing::warn!(
                    flow = name,
                    error = %crate::error::chain(&error),
                    "forgetting expired requests from the listing indexes failed"
                );
            }
        }
    }

    /// The (stream, group) pairs this worker reads as a consumer: every ready stream's
    /// `workers` group, and the `hooks` group of the done streams of each workflow with a
    /// finish hook (each partition's).
    fn consumed_groups(&self) -> impl Iterator<Item = (&str, &'static str)> {
        let inner = &self.engine.inner;
        let ready = inner
            .flows
            .values()
            .flat_map(|flow| flow.keys.all())
            .map(|keys| (keys.ready.as_str(), GROUP));
        let hooked = inner
            .flows
            .iter()
            .filter(|(name, _)| inner.hooks.contains_key(*name))
            .flat_map(|(_, flow)| flow.keys.all())
            .map(|keys| (keys.done.as_str(), HOOKS_GROUP));
        ready.chain(hooked)
    }

    /// Removes the consumers of the ready streams' and hooked done streams' groups that hold
    /// no pending entry and have been idle for [`RETIRE_IDLE_LEASES`] leases: those of
    /// workers that died (their entries reclaimed by now).
    pub(super) async fn retire_idle(&self) {
        let inner = &self.engine.inner;
        let idle = millis(inner.config.lease * RETIRE_IDLE_LEASES);
        for (stream, group) in self.consumed_groups() {
            let consumers: Result<Value, _> = inner.client.xinfo_consumers(stream, group).await;
            let consumers = match consumers {
                Ok(consumers) => consumers,
                Err(error) => {
                    tracing::debug!(%error, stream, group, "listing consumers failed");
                    continue;
                }
            };
            for consumer in idle_consumers(consumers, idle) {
                if consumer == self.consumer {
                    continue;
                }
                match self.retire_consumer(stream, group, &consumer).await {
                    Ok(true) => tracing::info!(
                        stream,
                        group,
                        consumer,
                        "removed the consumer of a worker that is gone"
                    ),
                    Ok(false) => {}
                    Err(error) => {
                        tracing::debug!(%error, stream, group, consumer, "removing an idle consumer failed")
                    }
                }
            }
        }
    }

    /// `retire.lua` for `consumer` of `group` on `stream`: whether it is gone (it held no
    /// pending entry).
    async fn retire_consumer(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
    ) -> Result<bool, RedisError> {
        let removed = scripts::call(&RETIRE, &self.engine.inner.client, || {
            (
                vec![stream.to_owned()],
                vec![Value::from(group), Value::from(consumer)],
            )
        })
        .await?;
        Ok(removed.as_u64() == Some(1))
    }
}

/// Lists the version of `flow`'s graph this engine has among the workflow's versions, with the
/// graph and its layout (as JSON), unless it is there (a read, which Redis answers even when it
/// is out of memory): every engine as it connects (a service alone submits requests pinned to
/// its version, which another version's service reads and migrates with that layout), and each
/// worker as it starts. If Redis is out of memory and the version is new, the engine runs all
/// the same, and says that its version is not listed (`GET /flow/{name}/versions`, `…/workers`)
/// until it starts again.
pub(in crate::redis) async fn add_version(
    client: &fred::prelude::Client,
    flow: &crate::redis::Flow,
) -> Result<(), RedisError> {
    check_partitions(client, flow).await?;
    let home = flow.keys.home();
    let (key, version) = (&home.versions, flow.hash.as_str());
    let known: bool = client.sismember(key, version).await?;
    if known {
        return Ok(());
    }
    let graph = serde_json::to_string(&crate::redis::protocol::StoredVersion::of(&flow.plan))
        .map_err(|e| RedisError::Protocol(format!("the graph as JSON: {e}")))?;
    let written: Result<(), fred::error::Error> = async {
        let () = client
            .set(home.graph_of(version), graph, None, None, false)
            .await?;
        let _: u64 = client.sadd(key, version).await?;
        Ok(())
    }
    .await;
    match written {
        Ok(()) => Ok(()),
        Err(error) if is_oom(&error) => {
            tracing::warn!(
                key,
                version,
                "Redis is out of memory: this engine's version is not listed with the workflow's versions"
            );
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Records how many partitions `flow` is split into, unless a process did before (a read,
/// then `SET NX`), and fails if it recorded another number. If Redis is out of memory and
/// none is recorded, the engine runs all the same (the next to start records it).
async fn check_partitions(
    client: &fred::prelude::Client,
    flow: &crate::redis::Flow,
) -> Result<(), RedisError> {
    let key = &flow.keys.home().partitions;
    let configured = flow.keys.all().len() as u16;
    let mut recorded: Option<String> = client.get(key).await?;
    if recorded.is_none() {
        let set: Result<Option<String>, fred::error::Error> = client
            .set(
                key,
                configured.to_string(),
                None,
                Some(fred::types::SetOptions::NX),
                true,
            )
            .await;
        match set {
            Ok(before) => recorded = before,
            Err(error) if is_oom(&error) => {
                tracing::warn!(
                    key,
                    "Redis is out of memory: the workflow's number of partitions is not recorded"
                );
            }
            Err(error) => return Err(error.into()),
        }
    }
    match recorded {
        Some(recorded) if recorded != configured.to_string() => Err(RedisError::Partitions {
            flow: flow.plan.flow().to_owned(),
            key: key.clone(),
            recorded,
            configured,
        }),
        _ => Ok(()),
    }
}

/// Creates consumer group `group` of the stream at `key` from entry `from` (and the stream
/// with it), unless the group exists. While Redis is out of memory it refuses `XGROUP CREATE`
/// even for a group that exists: then it asks whether the group exists (a read, which it
/// answers), and if not, waits for memory, saying so, until `stopping` (then it returns `Ok`,
/// the group uncreated).
pub(in crate::redis) async fn create_group(
    client: &fred::prelude::Client,
    key: &str,
    group: &str,
    from: &str,
    stopping: &CancellationToken,
) -> Result<(), RedisError> {
    let mut backoff = Backoff::new();
    let mut waiting: Option<(std::time::Instant, std::time::Instant)> = None;
    loop {
        let created: Result<(), fred::error::Error> =
            client.xgroup_create(key, group, from, true).await;
        let error = match created {
            Ok(()) => return Ok(()),
            Err(e) if e.details().starts_with("BUSYGROUP") => return Ok(()),
            Err(e) if is_oom(&e) => e,
            Err(e) => return Err(e.into()),
        };
        if group_exists(client, key, group).await {
            return Ok(());
        }
        let now = std::time::Instant::now();
        match &mut waiting {
            None => {
                waiting = Some((now, now));
                tracing::warn!(
                    stream = key,
                    group,
                    error = %error,
                    "Redis is out of memory (maxmemory) and the consumer group does not exist \
                     yet: waiting for memory to create it"
                );
            }
            Some((since, reminded)) if now.duration_since(*reminded) >= REMIND_EVERY => {
                *reminded = now;
                tracing::warn!(
                    stream = key,
                    group,
                    for_s = now.duration_since(*since).as_secs(),
                    "still waiting for memory to create the consumer group"
                );
            }
            Some(_) => {}
        }
        // Up to a second between tries: a start is no hot loop.
        let wait = backoff.next() * 2;
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stopping.cancelled() => return Ok(()),
        }
    }
}

/// Whether the stream at `key` has consumer group `group` (`XINFO GROUPS`).
async fn group_exists(client: &fred::prelude::Client, key: &str, group: &str) -> bool {
    let groups: Result<Value, _> = client.xinfo_groups(key).await;
    groups.is_ok_and(|groups| {
        groups
            .into_array()
            .into_iter()
            .filter_map(|info| info::fields(info).remove("name")?.as_string())
            .any(|name| name == group)
    })
}

/// The consumers of an `XINFO CONSUMERS` reply that hold no pending entry and have been idle
/// for at least `idle` ms.
fn idle_consumers(consumers: Value, idle: u64) -> Vec<String> {
    consumers
        .into_array()
        .into_iter()
        .filter_map(|info| {
            let mut fields = info::fields(info);
            let pending = fields.get("pending")?.as_u64()?;
            let quiet = fields.get("idle")?.as_u64()?;
            (pending == 0 && quiet >= idle).then_some(())?;
            fields.remove("name")?.as_string()
        })
        .collect()
}

/// The value of setting `name` in a `CONFIG GET` reply (a map, or a flat array of name and
/// value).
fn config_value(reply: Value, name: &str) -> Option<String> {
    match reply {
        Value::Map(map) => map.inner().into_iter().find_map(|(key, value)| {
            (key.as_str()?.eq_ignore_ascii_case(name)).then(|| value.as_string())?
        }),
        reply => {
            let items = reply.into_array();
            items.chunks(2).find_map(|pair| match pair {
                [key, value] if key.as_string()?.eq_ignore_ascii_case(name) => value.as_string(),
                _ => None,
            })
        }
    }
}

/// How often the reclaimer looks for idle consumers to remove: every other round (a lease).
pub(super) const RETIRE_EVERY_ROUNDS: u32 = 2;
