//! The Redis engine: runs the same workflows as the embedded engine, across any number of
//! worker processes on any number of hosts, with Redis streams as the transport and a Redis
//! hash per request as the state store.
//!
//! # Guarantees
//!
//! - **Delivery is at least once; a vertex's effect is exactly once.** Each ready vertex
//!   instance (a vertex, or one run of a vertex inside `each { ... }` for one item) is an entry
//!   of its workflow's ready stream, read through a consumer group. Running it ends in one Lua
//!   script that records what its output sets going (outputs, a for-each's
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
//!   worker before it recorded anything still counts as an attempt.
//! - **No lost work.** An entry is acknowledged only by that final script. Entries of a worker
//!   that died (running or prefetched) are claimed by the survivors once their lease has
//!   expired (`XAUTOCLAIM`); long attempts renew their lease. Lost deliveries do not use up
//!   the node's retries, but are bounded ([`RedisConfig::max_lost_deliveries`]): an instance
//!   that kills its worker every time is failed and dead-lettered instead of looping.
//! - **A crash is charged to the instance that was running.** Only an attempt known to have
//!   been running when its worker died is charged a lost delivery: a reclaimed entry, started
//!   once its new worker has a slot for it; never an entry that was only waiting (read ahead,
//!   handed off beyond the free slots), nor a first delivery. An instance charged with a loss
//!   then runs alone on its worker, so that a death while it runs is its own, and the requests
//!   beside a vertex that kills its workers complete.
//! - **Out of memory.** While Redis refuses writes (`maxmemory`, `noeviction`), a worker keeps
//!   the entries it holds, renewing their leases, reads no more, and tries the refused scripts
//!   again with backoff; when memory returns it goes on at full speed, and no vertex whose
//!   completion was refused runs again. A worker started then waits for memory instead of
//!   exiting, if it must create a consumer group.
//! - **Consumers** leave the groups at a clean shutdown, and the consumers of dead workers are
//!   removed once they hold nothing and have been idle for three leases.
//! - **Persistence.** All of this holds across a Redis restart only with the append-only file
//!   (`appendonly yes`); a worker warns at start when the server persists nothing.
//! - **Retries** wait their backoff in a sorted set (no busy retry, no worker blocked), then
//!   re-enter the stream; when and how often is the lifecycle core's retry policy, as on the
//!   embedded engine. Timeouts cancel the attempt; a panicking node fails its attempt.
//! - **Pause, resume and stop** are scripts too, so they race safely with completions: an
//!   instance finishing while its request is paused parks the instances it makes ready, and
//!   resume enqueues each parked instance exactly once. Stop ends the request at once and
//!   cancels its running attempts through their context.
//! - **State** lives in one hash per request, readable with
//!   [`Engine::status`](crate::Engine::status); finished requests expire after
//!   [`RedisConfig::retention`]. Once a request has ended, every vertex in its state is
//!   settled (`done`, `failed`, `cancelled` or `skipped`), as on the embedded engine. Nothing
//!   scans the keyspace; all keys of a workflow share the hash tag `{prefix:flow}`, or, split
//!   into [partitions](RedisConfig::partitions), those of each partition a tag of its own.
//! - **One graph per request.** A request is pinned to the version of the graph it was
//!   submitted on (its structural hash): each version has its own ready stream, read only by
//!   the workers built with that graph, so nothing of a request runs on a graph whose vertex
//!   numbers mean other vertices. A request whose version no live worker has waits for one
//!   (`waiting_for`), or moves to another version with [`Engine::migrate`](crate::Engine::migrate)
//!   when its progress carries over (computed from the two graphs).
//!
//! # Protocol
//!
//! The key layout, every field of a request's hash and of the streams' entries, and the
//! contract of every script (its keys, arguments and answers) are described in `PROTOCOL.md`
//! beside this module's source, and defined once in `protocol.rs`: the scripts get every field
//! name and status word from a prelude rendered from it and from the lifecycle core.

mod client;
mod config;
mod engine;
mod error;
mod events;
mod hooks;
mod info;
mod migrate;
mod protocol;
mod scripts;
mod state;
mod worker;

pub use self::config::{RedisConfig, RunAhead};
pub use self::engine::{RedisEngine, RedisEngineBuilder};
pub use self::error::RedisError;
pub use self::events::EventsOff;
pub use self::worker::Worker;

pub(crate) use self::engine::{
    connect_client, read_groups, stream_read, DoneEvent, Flow, Inner, StreamEntry,
};
