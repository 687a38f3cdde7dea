//! The Redis engine: runs the same workflows as the embedded engine, across any number of
//! worker processes on any number of hosts, with Redis streams as the transport and a Redis
//! hash per request as the state store.
//!
//! # Guarantees
//!
//! - **Delivery is at least once; a vertex's effect is exactly once.** Each ready vertex
//!   instance (a vertex, or one run of a vertex inside `each { ... }` for one item) is an entry
//!   of its workflow's ready stream, read through a consumer group. Running it ends in one Lua
//!   script that records what its output sets going ([`Plan::advance`]: outputs, a for-each's
//!   items, the untaken arms of a conditional), enqueues the instances whose inputs are now
//!   complete (or completes the request), and acknowledges and deletes the entry. An instance
//!   delivered twice finds itself done and changes nothing, so a join or a gather fires
//!   exactly once. [`Context::idempotency_key`](crate::Context::idempotency_key) lets nodes
//!   make their own side effects idempotent.
//! - **Hand-off.** That script also starts, for the worker that ran the instance, the
//!   instances it makes ready, as many as the worker has free slots for: the finished
//!   instance's own entry carries them, staying pending for that worker instead of being
//!   acknowledged (the request hash names the instances it carries; a reclaiming worker's
//!   start script answers them), so a lease covers them from the first moment and a dead
//!   worker's are reclaimed like any others. The worker runs them without a read or a start
//!   script, which makes a chain one script per vertex, and a chain or a diamond keeps one
//!   entry from end to end. The rest are queued as usual. Each carried instance lets go of the
//!   entry when its attempt ends; the last one acknowledges it.
//! - **Run at once.** A request's first entry carries its input when it is small
//!   ([`RedisConfig::inline_input_limit`]), and the worker that reads it runs the entry vertex
//!   at once rather than first asking (in a start script) whether it may and for its input:
//!   its completion records its start (or the attempt does, once it runs long, or before it
//!   records a failure). A pause or stop that comes before any worker has read the entry takes
//!   it back from the stream, so that a paused request's entry vertex is parked and a stopped
//!   one's never runs; once read, it runs like any running vertex. A delivery lost with its
//!   worker before it recorded anything still counts against `max_lost_deliveries`.
//! - **No lost work.** An entry is acknowledged only by that final script. Entries of a worker
//!   that died (running or prefetched) are claimed by the survivors once their lease has
//!   expired (`XAUTOCLAIM`); long attempts renew their lease. Lost deliveries do not use up
//!   the node's retries, but are bounded ([`RedisConfig::max_lost_deliveries`]): an instance
//!   that kills its worker every time is failed and dead-lettered instead of looping.
//! - **Retries** wait their backoff in a sorted set (no busy retry, no worker blocked), then
//!   re-enter the stream. Timeouts cancel the attempt; panics are caught (see
//!   [`exec::attempt`](crate::exec::attempt)).
//! - **Pause, resume and stop** are scripts too, so they race safely with completions: an
//!   instance finishing while its request is paused parks the instances it makes ready, and
//!   resume enqueues each parked instance exactly once. Stop ends the request at once and
//!   cancels its running attempts through their context.
//! - **State** lives in one hash per request, readable with [`RedisEngine::status`]; finished
//!   requests expire after [`RedisConfig::retention`]. Nothing scans the keyspace; all keys of
//!   a workflow share the hash tag `{prefix:flow}`.
//!
//! # Keys and fields
//!
//! Per workflow (`keys.rs`), with `T` = `{prefix:flow}`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `T:ready` | stream | ready instances: `r` request id, `v` instance key, `tp` traceparent, and on a request's first entry maybe `i` its input |
//! | `T:delayed` | sorted set | retries by due time (ms): `request instance traceparent` |
//! | `T:done` | stream (capped) | request ends: `r`, `st` (`completed`, `failed`, `stopped`) |
//! | `T:dead` | stream (capped) | instances failed for good: `r`, `v`, `failure` (JSON) |
//! | `T:req:<id>` | hash | one request's state (below); expires |
//! | `T:parked:<id>` | list | keys of the instances parked while the request is paused |
//!
//! An instance is named by its key ([`Instance::key`]): the vertex index (`5`), followed
//! inside `each` bodies by the item index in each body around it, outermost first (`5.3.7`).
//! Errors, spans and [`RequestState`] use its display name instead ([`Plan::name_of`]:
//! `sweep/verify[3]`). The request hash holds:
//!
//! - the request: `st` status, `ct`/`ut`/`ft` created/updated/finished (ms), `h` plan hash,
//!   `tp` traceparent, `out` output, `err` failure (JSON), `ev` the failed instance's key, `q`
//!   the first entry's id and instance when it carries the input (until a pause or stop takes
//!   it back);
//! - values (named in `keys::fields`): `in` the input, `o:<key>` an instance's output (a
//!   conditional's: the chosen variant's payload), `o:<key>#<n>` item `n` of the collection a
//!   for-each source produced;
//! - counters (also in `keys::fields`): `n:<key>` inputs arrived at a join or a gather,
//!   `c:<key>` the number of items a gathering instance waits for;
//! - per instance: `s:<key>` status (`queued`, `running`, `retrying`, `parked`, `done`,
//!   `failed`, `cancelled`, `skipped`), `a:<key>` attempts started, `f:<key>` recorded failed
//!   attempts, `t0:<key>`/`t1:<key>` started/finished (ms), `w:<key>` worker, `e:<key>` last
//!   failure (JSON).
//!
//! [`Plan::advance`]: crate::Plan::advance
//! [`Plan::name_of`]: crate::Plan::name_of
//! [`Instance::key`]: crate::Instance::key

mod client;
mod hooks;
mod keys;
mod scripts;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy};

pub use self::hooks::Finished;
// The state types are shared with the embedded engine; re-exported here for convenience.
pub use self::worker::Worker;
pub use crate::state::{
    RequestFailure, RequestOutcome, RequestState, RequestStatus, Transition, VertexState,
    VertexStatus,
};

use self::keys::FlowKeys;
use crate::codec::{Codec, CodecError, MsgPack};
use crate::plan::Plan;
use crate::request_id::RequestId;
pub(crate) use crate::state::now_ms;
use crate::workflow::Workflow;

/// Settings of a [`RedisEngine`].
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db` (also `rediss://`, with a password, etc.).
    pub url: String,
    /// The first part of every key's hash tag: `{prefix:flow}`. Default `goflow`.
    pub prefix: String,
    /// How long a worker may hold a delivered entry without renewing it before other workers
    /// may claim it. Default 30 s.
    pub lease: Duration,
    /// How long finished requests' state is kept. Default 24 h.
    pub retention: Duration,
    /// How long an unfinished request's state is kept, as a backstop. Default 7 days.
    pub unfinished_ttl: Duration,
    /// Deliveries of one vertex that may be lost with their worker before the vertex is
    /// failed and dead-lettered. Default 3.
    pub max_lost_deliveries: u32,
    /// Most entries one worker reads at once. Default 64.
    pub batch: usize,
    /// How many of the instances a completion makes ready it hands to its own worker beyond
    /// the worker's free slots (they wait there for one, their lease renewed; the rest go to
    /// the ready stream for any worker). Default 32: a fan-out or for-each of up to 32 items
    /// stays on the worker that made it ready, which spares each item a read and a start
    /// script; wider ones spread. Lower it when a few wide fan-outs of slow nodes should
    /// spread over many idle workers; 1 hands off only what fits, or a chain's next vertex.
    pub hand_off_ahead: usize,
    /// How often due retries are moved back to the ready streams. Default 50 ms.
    pub retry_poll: Duration,
    /// How long a command may wait for Redis (queued while it is unreachable, say) before it
    /// fails. Default 5 s. Blocking reads use connections of their own, without it.
    pub command_timeout: Duration,
    /// The largest encoded output (bytes) that a completed request's done event carries, so
    /// that a client waiting for it has the outcome without reading the request's state.
    /// Larger outputs are only in the state. Default 256; 0 never carries one. The done
    /// stream keeps about 100,000 events, so this bounds its memory too.
    pub inline_output_limit: usize,
    /// The largest encoded input (bytes) that a request's ready entry carries besides its
    /// state. The worker that reads such an entry runs the entry vertex at once, instead of
    /// first asking Redis whether it may and for its input (a round trip, about a sixth of an
    /// idle request's latency); its completion records its start. Larger inputs are only in
    /// the state. Default 256; 0 never carries one.
    pub inline_input_limit: usize,
}

impl RedisConfig {
    /// Default settings for a server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "goflow".to_owned(),
            lease: Duration::from_secs(30),
            retention: Duration::from_secs(24 * 3600),
            unfinished_ttl: Duration::from_secs(7 * 24 * 3600),
            max_lost_deliveries: 3,
            batch: 64,
            hand_off_ahead: 32,
            retry_poll: Duration::from_millis(50),
            command_timeout: Duration::from_secs(5),
            inline_output_limit: 256,
            inline_input_limit: 256,
        }
    }
}

/// An error talking to Redis or using the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Redis could not be reached, or refused a command.
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    /// The workflow was not registered with this engine.
    #[error("workflow `{0}` is not registered with this engine")]
    UnknownFlow(String),
    /// A payload could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Redis answered something the engine did not expect (a bug, or keys written by
    /// something else).
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
}

/// One registered workflow.
pub(crate) struct Flow {
    pub(crate) plan: Arc<Plan>,
    pub(crate) keys: FlowKeys,
    pub(crate) hash: String,
}

pub(crate) struct Inner<C> {
    pub(crate) config: RedisConfig,
    pub(crate) codec: C,
    pub(crate) client: Client,
    pub(crate) flows: HashMap<&'static str, Flow>,
    pub(crate) waiters: client::Waiters,
    pub(crate) hooks: HashMap<&'static str, hooks::Hook>,
}

/// The Redis engine: submits requests, reports their state, and runs workers.
///
/// ```no_run
/// # use goflow_runtime::redis::{RedisConfig, RedisEngine};
/// # async fn f() -> Result<(), goflow_runtime::redis::EngineError> {
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

/// Builds the plan of one registered workflow with the engine's codec.
type PlanFor<C> = fn(&C) -> (&'static str, Arc<Plan>);

/// Registers workflows and connects a [`RedisEngine`].
pub struct RedisEngineBuilder<C: Codec = MsgPack> {
    config: RedisConfig,
    codec: C,
    flows: Vec<PlanFor<C>>,
    hooks: HashMap<&'static str, hooks::Hook>,
}

impl RedisEngine<MsgPack> {
    /// Starts building an engine with the default codec.
    pub fn builder(config: RedisConfig) -> RedisEngineBuilder<MsgPack> {
        RedisEngineBuilder {
            config,
            codec: MsgPack,
            flows: Vec::new(),
            hooks: HashMap::new(),
        }
    }
}

impl<C: Codec> RedisEngineBuilder<C> {
    /// Uses another payload codec; every process sharing the workflows must use the same.
    pub fn codec<D: Codec>(self, codec: D) -> RedisEngineBuilder<D> {
        RedisEngineBuilder {
            config: self.config,
            codec,
            flows: Vec::new(),
            hooks: self.hooks,
        }
    }

    /// Registers workflow `W`: requests of it can be submitted, and workers run it.
    pub fn register<W: Workflow>(mut self) -> Self {
        self.flows
            .push(|codec| (W::NAME, Arc::new(Plan::new::<W, C>(codec.clone()))));
        self
    }

    /// Runs `hook` when a request of `W` ends (completed, failed or stopped): once per request,
    /// on one of the workers. Hooks read the completion stream through a consumer group of
    /// their own and acknowledge an event after the hook returns, so a worker dying mid-hook
    /// leaves the event to another worker: use [`Finished::request_id`] to make the hook's
    /// effect idempotent. Events that ended before the first worker with hooks started are
    /// not hooked.
    pub fn on_finish<W, F, Fut>(mut self, hook: F) -> Self
    where
        W: Workflow,
        F: Fn(Finished) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.hooks
            .insert(W::NAME, Arc::new(move |finished| Box::pin(hook(finished))));
        self
    }

    /// Connects to Redis (failing if it cannot be reached within 10 s) and returns the engine.
    pub async fn connect(self) -> Result<RedisEngine<C>, EngineError> {
        let client = connect_client(&self.config.url, Some(self.config.command_timeout)).await?;
        let flows = self
            .flows
            .iter()
            .map(|register| {
                let (name, plan) = register(&self.codec);
                let hash = format!("{:016x}", plan.structural_hash());
                let keys = FlowKeys::new(&self.config.prefix, name);
                (name, Flow { plan, keys, hash })
            })
            .collect();
        Ok(RedisEngine {
            inner: Arc::new(Inner {
                config: self.config,
                codec: self.codec,
                client,
                flows,
                waiters: client::Waiters::default(),
                hooks: self.hooks,
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

    /// Whether Redis answers a `PING`.
    pub async fn ping(&self) -> Result<(), EngineError> {
        self.inner.client.ping::<()>(None).await?;
        Ok(())
    }

    pub(crate) fn flow(&self, name: &str) -> Result<&Flow, EngineError> {
        self.inner
            .flows
            .get(name)
            .ok_or_else(|| EngineError::UnknownFlow(name.to_owned()))
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
) -> Result<Client, EngineError> {
    let config = Config::from_url(url)?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = CONNECT_TIMEOUT;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = command_timeout.unwrap_or(Duration::ZERO);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
        .build()?;
    // `init` waits for the first connection; with a reconnect policy it would wait forever
    // for an unreachable server, so bound it to give a clear error instead.
    client.connect();
    tokio::time::timeout(CONNECT_TIMEOUT, client.wait_for_connect())
        .await
        .map_err(|_| {
            EngineError::Redis(fred::error::Error::new(
                fred::error::ErrorKind::IO,
                format!("could not connect to {url} within {CONNECT_TIMEOUT:?}"),
            ))
        })??;
    Ok(client)
}

/// A stream entry as read: its id and fields.
pub(crate) type StreamEntry = (String, HashMap<String, Bytes>);

/// The entries read from several streams, by stream key.
pub(crate) type StreamRead = fred::types::streams::XReadResponse<String, String, String, Bytes>;

/// The done events read from several streams, by stream key: values as bytes, as an event
/// may carry an encoded output.
pub(crate) type DoneRead = fred::types::streams::XReadResponse<String, String, String, Bytes>;

/// A done event as read: its id and fields.
pub(crate) type DoneEntry = (String, HashMap<String, Bytes>);

/// What a done event (`r`, `st`, and `out` when it carries the output) says.
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
            request: RequestId::parse(text("r")?).ok()?,
            status: RequestStatus::parse(text("st")?)?,
            output: fields.get("out").cloned(),
        })
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
