//! [`RedisEngine`] and its builder: the registered workflows (each with its plan and keys),
//! the client connection, and what the client, the workers and the hooks share.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy};

use super::client::Waiters;
use super::protocol::{Partitions, DONE_OUTPUT, DONE_REQUEST, DONE_STATUS};
use super::{RedisConfig, RedisError};
use crate::codec::{Codec, MsgPack};
use crate::engine::{self, Hook, Registered, Registrations};
use crate::error::Error;
use crate::lifecycle::RequestStatus;
use crate::plan::Plan;
use crate::request::Finished;
use crate::request::Limits;
use crate::request_id::RequestId;
use crate::workflow::Workflow;

/// One registered workflow.
pub(crate) struct Flow {
    pub(crate) plan: Arc<Plan>,
    /// Its keys, per partition.
    pub(crate) keys: Partitions,
    /// The plan's structural hash as 16 hex digits, the version of the graph: written on each
    /// request it submits (which is pinned to it), and checked by the workers before they run
    /// any of its vertices.
    pub(crate) hash: String,
    /// The plan's layout, to read its requests' states with.
    pub(crate) layout: Arc<crate::plan::Layout>,
}

pub(crate) struct Inner<C> {
    pub(crate) config: RedisConfig,
    pub(crate) codec: C,
    pub(crate) client: Client,
    pub(crate) flows: HashMap<&'static str, Flow>,
    pub(crate) waiters: Waiters,
    pub(crate) hooks: HashMap<&'static str, Hook>,
    /// The layouts of other versions of the graphs, by the key they were read from: to read
    /// the states of requests pinned to them.
    pub(crate) layouts: Mutex<HashMap<String, Arc<crate::plan::Layout>>>,
}

/// The Redis engine: submits requests, reports their state, and runs workers. Cheap to clone:
/// clones share one connection.
///
/// ```no_run
/// # use goflow_runtime::redis::{RedisConfig, RedisEngine};
/// # async fn f() -> Result<(), goflow_runtime::Error> {
/// let engine = RedisEngine::builder(RedisConfig::new("redis://127.0.0.1:6379"))
///     // .register::<Kyc>()
///     .connect()
///     .await?;
/// # drop(engine); Ok(()) }
/// ```
pub struct RedisEngine<C: Codec = MsgPack> {
    pub(crate) inner: Arc<Inner<C>>,
}

impl<C: Codec> Clone for RedisEngine<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Codec> std::fmt::Debug for RedisEngine<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut flows: Vec<&str> = self.inner.flows.keys().copied().collect();
        flows.sort_unstable();
        f.debug_struct("RedisEngine")
            .field("codec", &C::NAME)
            .field("flows", &flows)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Registers workflows and finish hooks, then connects a [`RedisEngine`]. The embedded
/// engine's builder takes the same calls.
pub struct RedisEngineBuilder<C: Codec = MsgPack> {
    config: RedisConfig,
    registered: Registrations<C>,
}

impl<C: Codec> std::fmt::Debug for RedisEngineBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngineBuilder")
            .field("config", &self.config)
            .field("codec", &C::NAME)
            .field("flows", &self.registered.names())
            .finish_non_exhaustive()
    }
}

impl RedisEngine<MsgPack> {
    /// Starts building an engine with the default codec.
    pub fn builder(config: RedisConfig) -> RedisEngineBuilder<MsgPack> {
        RedisEngineBuilder::new(config, MsgPack)
    }
}

impl<C: Codec> RedisEngineBuilder<C> {
    /// Starts building an engine passing payloads through `codec`; every process sharing the
    /// workflows must use the same.
    pub fn new(config: RedisConfig, codec: C) -> Self {
        Self {
            config,
            registered: Registrations::new(codec),
        }
    }

    /// Bounds what one request may grow to (default [`Limits::DEFAULT`]: 10,000 items per
    /// for-each, 1 MiB per vertex output). Every process sharing the workflows should use the
    /// same: the workers check them.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.registered.limits = limits;
        self
    }

    /// Registers workflow `W`: requests of it can be submitted, and workers run it.
    #[must_use]
    pub fn register<W: Workflow>(mut self) -> Self {
        self.registered.register::<W>();
        self
    }

    /// Runs `hook` when a request of `W` ends (completed, failed or stopped): once per
    /// request, on one of the workers, and registers `W`. Hooks read the completion stream
    /// through a consumer group of their own and acknowledge an event after the hook returns,
    /// so a worker dying mid-hook leaves the event to another worker: use
    /// [`Finished::request_id`] to make the hook's effect idempotent. Events that ended before
    /// the first worker with hooks started are not hooked.
    #[must_use]
    pub fn on_finish<W, F, Fut>(self, hook: F) -> Self
    where
        W: Workflow,
        F: Fn(Finished) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.register::<W>().hook(W::NAME, engine::hook(hook))
    }

    /// Registers `hook` for the workflow named `flow` (registered already).
    pub(crate) fn hook(mut self, flow: &'static str, hook: Hook) -> Self {
        self.registered.hook(flow, hook);
        self
    }

    /// Connects to Redis (failing if it cannot be reached within 10 s) and returns the engine.
    pub async fn connect(self) -> Result<RedisEngine<C>, Error> {
        let partitions = self.config.partitions;
        if !(1..=RedisConfig::MAX_PARTITIONS).contains(&partitions) {
            return Err(Error::engine(RedisError::Setting(format!(
                "RedisConfig::partitions (GOFLOW_REDIS_PARTITIONS) is {partitions}: a workflow \
                 is split into 1 to {} partitions",
                RedisConfig::MAX_PARTITIONS
            ))));
        }
        let client = connect_client(&self.config.url, Some(self.config.command_timeout))
            .await
            .map_err(Error::engine)?;
        let Registered {
            codec,
            plans,
            hooks,
            ..
        } = self.registered.build();
        let flows = plans
            .into_iter()
            .map(|(name, plan)| {
                let hash = plan.version().to_string();
                let keys =
                    Partitions::new(&self.config.prefix, name, &hash, self.config.partitions);
                let layout = Arc::new(plan.layout().clone());
                (
                    name,
                    Flow {
                        plan,
                        keys,
                        hash,
                        layout,
                    },
                )
            })
            .collect::<HashMap<&'static str, Flow>>();
        for flow in flows.values() {
            super::worker::add_version(&client, flow)
                .await
                .map_err(Error::engine)?;
        }
        Ok(RedisEngine {
            inner: Arc::new(Inner {
                config: self.config,
                codec,
                client,
                flows,
                waiters: Waiters::default(),
                hooks,
                layouts: Mutex::default(),
            }),
        })
    }
}

impl<C: Codec> RedisEngine<C> {
    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The names of the registered workflows.
    pub fn flows(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.inner.flows.keys().copied()
    }

    pub(crate) fn flow(&self, name: &str) -> Result<&Flow, RedisError> {
        self.inner
            .flows
            .get(name)
            .ok_or_else(|| RedisError::UnknownFlow(name.to_owned()))
    }
}

/// How long a new connection may take. Generous: a loaded host (a busy CI machine, a worker
/// saturated by its own attempts) can take seconds to complete a local handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected client that reconnects on its own, forever, with capped exponential backoff.
/// With `command_timeout`, a command that cannot complete in time (Redis unreachable) fails
/// instead of waiting for the reconnection.
pub(crate) async fn connect_client(
    url: &str,
    command_timeout: Option<Duration>,
) -> Result<Client, RedisError> {
    let config = Config::from_url(url).map_err(|e| {
        fred::error::Error::new(
            fred::error::ErrorKind::Config,
            format!(
                "unusable Redis URL {:?}: {}",
                crate::secret::redact_url(url),
                e.details()
            ),
        )
    })?;
    // Each try waits for the first connection; with a reconnect policy `init` would wait
    // forever for an unreachable server, so the tries are bounded, to give a clear error
    // instead. A refused try is followed by another with a new client (`fail_fast`, fred's
    // default, ends a client whose first connection fails): a server still starting (a
    // container beside this one, a loaded host) is waited for, not reported as down.
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let mut pause = Duration::from_millis(50);
    loop {
        let client = Builder::from_config(config.clone())
            .with_connection_config(|c| {
                c.connection_timeout = CONNECT_TIMEOUT;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = command_timeout.unwrap_or(Duration::ZERO);
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .build()?;
        let task = client.connect();
        let why = match tokio::time::timeout_at(deadline, client.wait_for_connect()).await {
            Ok(Ok(())) => return Ok(client),
            Ok(Err(e)) => format!(": {}", e.details()),
            Err(_) => String::new(),
        };
        task.abort();
        if tokio::time::Instant::now() + pause >= deadline {
            return Err(RedisError::Redis(fred::error::Error::new(
                fred::error::ErrorKind::IO,
                format!(
                    "could not connect to {} within {CONNECT_TIMEOUT:?}{why}",
                    crate::secret::redact_url(url)
                ),
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// The streams `streams` (key, and what the reader keeps beside it), in the groups that one
/// blocking read each reads together: all of them on one server; on a Redis Cluster (`client`
/// clustered), those of one hash slot, as a command's keys must share one (the keys of a
/// workflow's partition share its hash tag: its streams are in one group). Each group is read
/// on a connection of its own, so that a blocked read holds up nothing else.
pub(crate) fn read_groups<T>(client: &Client, streams: Vec<(String, T)>) -> Vec<Vec<(String, T)>> {
    if !client.is_clustered() {
        return vec![streams];
    }
    let mut by_slot: std::collections::BTreeMap<u16, Vec<(String, T)>> = Default::default();
    for (key, value) in streams {
        by_slot
            .entry(fred::util::redis_keyslot(key.as_bytes()))
            .or_default()
            .push((key, value));
    }
    by_slot.into_values().collect()
}

/// A stream entry as read: its id and fields.
pub(crate) type StreamEntry = (String, HashMap<String, Bytes>);

/// The entries read from several streams, by stream key.
pub(crate) type StreamRead = fred::types::streams::XReadResponse<String, String, String, Bytes>;

/// The entries of an `XREAD`/`XREADGROUP` reply, by stream key: none for the nil reply of a
/// read whose `BLOCK` timed out, the normal answer of an idle stream (fred's `*_map` readers
/// fail to parse it).
pub(crate) fn stream_read(reply: fred::prelude::Value) -> Result<StreamRead, RedisError> {
    if reply.is_null() {
        return Ok(StreamRead::default());
    }
    Ok(reply.into_xread_response()?)
}

/// What a done event says.
#[derive(Debug, Clone)]
pub(crate) struct DoneEvent {
    pub(crate) request: RequestId,
    pub(crate) status: RequestStatus,
    /// A completed request's output, when small enough to ride on the event
    /// ([`RedisConfig::inline_output_limit`]).
    pub(crate) output: Option<Bytes>,
}

impl DoneEvent {
    /// `None` for an event that does not name a request and a status.
    pub(crate) fn parse(fields: &HashMap<String, Bytes>) -> Option<Self> {
        let text = |field: &str| fields.get(field).and_then(|v| std::str::from_utf8(v).ok());
        Some(Self {
            request: RequestId::parse(text(DONE_REQUEST)?).ok()?,
            status: text(DONE_STATUS)?.parse().ok()?,
            output: fields.get(DONE_OUTPUT).cloned(),
        })
    }
}
