//! [`RedisConfig`]: every setting of the Redis engine.

use std::time::Duration;

/// Settings of a [`RedisEngine`](super::RedisEngine). Start from [`RedisConfig::new`] and set
/// the fields to change:
///
/// ```
/// # use goflow_runtime::redis::RedisConfig;
/// let mut config = RedisConfig::new("redis://127.0.0.1:6379");
/// config.lease = std::time::Duration::from_secs(10);
/// ```
///
/// Its `Debug` shows the URL's password as `***`.
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://host:port/db` (also `rediss://`, with a password, etc.), or a Redis Cluster:
    /// `redis-cluster://host:port?node=host:port&node=…` (each workflow's keys share one
    /// slot, or, split into [`partitions`](Self::partitions), each partition's; see the
    /// README's "Scaling out").
    pub url: String,
    /// The first part of every key's hash tag: `{prefix:flow}`. Default `goflow`.
    pub prefix: String,
    /// How long a worker may hold a delivered entry without renewing it before other workers
    /// may claim it. Default 30 s.
    pub lease: Duration,
    /// How long finished requests' state is kept. Default 24 h, as on the embedded engine.
    pub retention: Duration,
    /// How long an unfinished request's state is kept, as a backstop. Default 7 days.
    pub unfinished_ttl: Duration,
    /// Deliveries of one vertex instance that may be lost with their worker before it is
    /// failed and dead-lettered. Default 3. Only an attempt known to have been running when
    /// its worker died counts (never one that was waiting for a slot, nor a first delivery),
    /// so a vertex that kills every worker fails after this many deaths and two more.
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
    /// Whether a worker may run a vertex's successors before it records the vertex's
    /// completion, and records the run in one script call when it next must (see
    /// [`RunAhead`]). Default [`RunAhead::Off`].
    pub run_ahead: RunAhead,
    /// Whether the scripts append each step to the workflow's events stream, which
    /// `request_events`, `flow_events` and the `…/events` routes follow. Default on; off spares
    /// one Redis command per step (about a tenth of the throughput of Redis-bound workloads,
    /// see BENCHMARKS.md), and following events then fails with
    /// [`EventsOff`](super::EventsOff). Every process of a deployment should agree.
    pub events: bool,
    /// How many partitions each workflow's keys are split into (1 to
    /// [`MAX_PARTITIONS`](Self::MAX_PARTITIONS); the engine refuses to connect otherwise). A
    /// request
    /// belongs to one, by its id; each partition has a hash tag of its own, so that on a Redis
    /// Cluster one workflow's requests spread over several primaries. Default 1 (the keys of
    /// a workflow share `{prefix:flow}`), what one server needs; on a Cluster, about as many
    /// as it has primaries. Every process of a deployment must agree: they check it against
    /// the number recorded in Redis by the first (see the README's "Scaling out").
    pub partitions: u16,
}

/// Whether a Redis worker runs a vertex's successors before it records the vertex's
/// completion ([`RedisConfig::run_ahead`]).
///
/// Running ahead, when the successors a completion makes ready run on what the worker holds
/// (a chain's next vertex, a fan-out's branches, a for-each's items, and a join or a
/// for-each's gather whose every input was produced in the same run) and the worker may keep
/// them as it keeps hand-offs, the worker starts them without recording the completion. It
/// records the whole run (each vertex's output, attempt, worker and times, each join's count
/// of arrivals) in one script call when it next must: at the exit, at a join some of whose
/// inputs Redis recorded, before a failure, when one of its attempts has run for 50 ms, or
/// once the run is 50 ms or 64 attempts long. A chain of quick vertices, a kyc diamond or a
/// small for-each thus costs one script call instead of one per vertex.
///
/// What it gives up, in either mode: the request's state and events lag behind the run (by up
/// to 50 ms); a request stopped while a run is under way records the run's vertices as
/// skipped, not cancelled (Redis never heard that they started); and a worker that dies loses
/// the run, whose vertices then run again from its first (as any attempt whose completion was
/// not recorded does: at-least-once, as ever). An entry reclaimed from a dead worker never
/// runs ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RunAhead {
    /// Every completion is recorded, in one script call, before what it makes ready starts.
    #[default]
    Off,
    /// Runs ahead, reading the request's status (one `HGET`) before it starts anything: a
    /// pause or a stop committed before the read holds it back, as the completion script
    /// would (it parks or drops it), so a paused request starts nothing new, as with `Off`.
    Checked,
    /// Runs ahead without reading the status: one command and one round trip fewer per vertex
    /// started (about twice the throughput of `Checked` on a chain of quick vertices), but a
    /// pause parks only from the worker's next record on: what it starts before, for up to
    /// 50 ms, still runs.
    Unchecked,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so that a new setting cannot be left out.
        let Self {
            url,
            prefix,
            lease,
            retention,
            unfinished_ttl,
            max_lost_deliveries,
            batch,
            hand_off_ahead,
            retry_poll,
            command_timeout,
            inline_output_limit,
            inline_input_limit,
            run_ahead,
            events,
            partitions,
        } = self;
        f.debug_struct("RedisConfig")
            .field("url", &crate::secret::redact_url(url))
            .field("prefix", prefix)
            .field("lease", lease)
            .field("retention", retention)
            .field("unfinished_ttl", unfinished_ttl)
            .field("max_lost_deliveries", max_lost_deliveries)
            .field("batch", batch)
            .field("hand_off_ahead", hand_off_ahead)
            .field("retry_poll", retry_poll)
            .field("command_timeout", command_timeout)
            .field("inline_output_limit", inline_output_limit)
            .field("inline_input_limit", inline_input_limit)
            .field("run_ahead", run_ahead)
            .field("events", events)
            .field("partitions", partitions)
            .finish()
    }
}

impl RedisConfig {
    /// The most [`partitions`](Self::partitions) a workflow may be split into: far more than
    /// a Cluster has primaries (each partition costs every worker a read of its own).
    pub const MAX_PARTITIONS: u16 = 1024;

    /// The hash tags of workflow `flow`'s keys under these settings, one per partition,
    /// partition 0 (`{prefix:flow}`) first: every key of a partition starts with its tag, so
    /// that an operator's script can find them (`redis-cli --scan --pattern '<tag>*'`).
    ///
    /// ```
    /// # use goflow_runtime::redis::RedisConfig;
    /// let mut config = RedisConfig::new("redis-cluster://127.0.0.1:7000");
    /// config.partitions = 3;
    /// let tags = config.hash_tags("kyc");
    /// assert_eq!(tags.len(), 3);
    /// assert_eq!(tags[0], "{goflow:kyc}");
    /// assert!(tags[1].starts_with("{goflow:kyc:1."));
    /// ```
    pub fn hash_tags(&self, flow: &str) -> Vec<String> {
        // The tags do not depend on the version.
        super::protocol::Partitions::new(&self.prefix, flow, "", self.partitions)
            .tags()
            .map(str::to_owned)
            .collect()
    }

    /// Default settings for a server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "goflow".to_owned(),
            lease: Duration::from_secs(30),
            retention: crate::embedded::DEFAULT_RETENTION,
            unfinished_ttl: Duration::from_secs(7 * 24 * 3600),
            max_lost_deliveries: 3,
            batch: 64,
            hand_off_ahead: 32,
            retry_poll: Duration::from_millis(50),
            command_timeout: Duration::from_secs(5),
            inline_output_limit: 256,
            inline_input_limit: 256,
            run_ahead: RunAhead::Off,
            events: true,
            partitions: 1,
        }
    }
}
