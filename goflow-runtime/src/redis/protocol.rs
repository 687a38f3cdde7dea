//! The Redis protocol, in one place: the key layout, every field of a request's hash and of
//! the streams' entries, the consumer groups, the control channel, the streams' caps, and the
//! Lua prelude that gives the scripts these names together with the lifecycle core's words and
//! tables. `PROTOCOL.md` beside this file describes the layout and every script's contract; a
//! test checks that it names exactly the fields defined here.
//!
//! A workflow's keys are split into partitions ([`Partitions`]): every key of partition 0
//! carries the hash tag `{prefix:flow}`, every key of partition `p` the tag of its own, and a
//! request's keys are all in its partition, so all keys a script touches live in one Cluster
//! slot. Nothing here ever scans the keyspace: per-request keys are named
//! from the request id and expire; per-flow keys are bounded (entries are deleted when
//! acknowledged, the event streams are capped).

use std::fmt::Write as _;

use crate::lifecycle::{self, Control, RequestStatus, VertexStatus};
use crate::plan::{Instance, Slot, VertexId};

/// The consumer group every worker of every process joins, on each ready stream.
pub(crate) const GROUP: &str = "workers";

/// The consumer group of the finish hooks, on each done stream.
pub(crate) const HOOKS_GROUP: &str = "hooks";

/// About how many events a done stream keeps (`XADD ... MAXLEN ~`).
pub(crate) const DONE_MAXLEN: u64 = 100_000;

/// About how many dead letters a dead-letter stream keeps: as many as the embedded engine.
pub(crate) const DEAD_MAXLEN: u64 = crate::listing::DEAD_LETTERS_KEPT as u64;

/// What follows a workflow's hash tag in the key of a request's hash: `T:req:<id>`.
pub(crate) const KEY_REQUEST: &str = ":req:";

/// What follows a workflow's hash tag in the key of a status's listing index:
/// `T:by:<status>`.
pub(crate) const KEY_BY_STATUS: &str = ":by:";

/// What follows a workflow's hash tag in the key of the index of ended requests: `T:ended`.
pub(crate) const KEY_ENDED: &str = ":ended";

/// What follows a workflow's hash tag in the key of the ready stream of one version of its
/// graph: `T:ready@<hash>`, the 16 hex digits of the graph's structural hash. Each version's
/// workers read their own, so that none is handed an entry of a graph it does not have.
pub(crate) const KEY_READY: &str = ":ready@";

/// What follows a workflow's hash tag in the key of the set of the versions of its graph whose
/// workers have started (their structural hashes): `T:versions`.
pub(crate) const KEY_VERSIONS: &str = ":versions";

/// What follows a workflow's hash tag in the key that records how many partitions it is split
/// into: `T:partitions`.
pub(crate) const KEY_PARTITIONS: &str = ":partitions";

/// What follows a workflow's hash tag in the key of one version's graph as JSON, written by its
/// workers as they start: `T:graph@<hash>`.
pub(crate) const KEY_GRAPH: &str = ":graph@";

/// The suffix of a workflow's events stream (after its hash tag): one entry per step that moved
/// a request or its vertices, capped at about `EVENTS_MAXLEN`.
pub(crate) const KEY_EVENTS: &str = ":events";

/// About how many entries a workflow's events stream keeps.
pub(crate) const EVENTS_MAXLEN: u64 = crate::events::EVENTS_KEPT as u64;

/// The pub/sub channel on which the ends of requests (stopped, or failed) reach the workers,
/// which cancel their running attempts: messages are `<flow> <request id>`.
pub(crate) fn control_channel(prefix: &str) -> String {
    format!("{prefix}:control")
}

/// Where a field lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A field of the request's hash.
    Request,
    /// A prefix of per-instance fields of the request's hash, followed by an instance key.
    Instance,
    /// A prefix of per-entry fields of the request's hash, followed by a ready-stream entry id.
    Entry,
    /// A field of a ready-stream entry.
    Ready,
    /// A field of a done-stream event.
    Done,
    /// A field of a dead-letter-stream entry.
    Dead,
    /// A field of an events-stream entry.
    Event,
}

/// One field of the protocol: its name in Redis, the name Rust and Lua give it, where it
/// lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// The constant's name, in Rust (this module) and in the Lua prelude.
    pub(crate) constant: &'static str,
    /// The field's name (or prefix) in Redis.
    pub(crate) name: &'static str,
    /// Where it lives.
    pub(crate) place: Place,
}

/// Declares each field as a constant of this module and lists them all in [`FIELDS`].
macro_rules! fields {
    ($( $(#[doc = $doc:literal])* $place:ident $constant:ident = $name:literal; )*) => {
        // Some are spelled only by the scripts, through the prelude.
        $( $(#[doc = $doc])* #[allow(dead_code)] pub(crate) const $constant: &str = $name; )*
        /// Every field of the protocol.
        pub(crate) const FIELDS: &[Field] = &[
            $( Field { constant: stringify!($constant), name: $name, place: Place::$place }, )*
        ];
    };
}

fields! {
    /// The request's status (a [`RequestStatus`] word).
    Request REQ_STATUS = "st";
    /// When the request was created (ms).
    Request REQ_CREATED = "ct";
    /// When its state last changed (ms).
    Request REQ_UPDATED = "ut";
    /// When it ended (ms).
    Request REQ_FINISHED = "ft";
    /// The structural hash of the graph it was submitted on (16 hex digits).
    Request REQ_HASH = "h";
    /// The trace context of the span that submitted it.
    Request REQ_TRACEPARENT = "tp";
    /// Its input, encoded.
    Request REQ_INPUT = "in";
    /// Its output, encoded, once completed.
    Request REQ_OUTPUT = "out";
    /// Why it failed (a `RequestFailure` as JSON).
    Request REQ_FAILURE = "err";
    /// The first entry's id and instance (`<entry> <instance>`), while it carries the input and
    /// no worker has read it: a pause or stop takes it back.
    Request REQ_FIRST_ENTRY = "q";
    /// How many times it has been retried.
    Request REQ_RETRIES = "rt";
    /// An instance's status (a [`VertexStatus`] word).
    Instance INST_STATUS = "s:";
    /// Attempts started (lost deliveries included).
    Instance INST_ATTEMPTS = "a:";
    /// Attempts that ended in a recorded failure.
    Instance INST_FAILURES = "f:";
    /// Lost deliveries charged to it: attempts that were running when their worker died
    /// (see `INST_EXPOSED`); more than `max_lost_deliveries` fail it.
    Instance INST_LOST = "l:";
    /// Set while an attempt runs that was started as it began running (a reclaimed delivery,
    /// never one waiting for a slot): the next start of the instance finding it set charges a
    /// lost delivery, as that attempt ended with its worker. Cleared when an attempt fails.
    Instance INST_EXPOSED = "x:";
    /// When its first attempt started (ms).
    Instance INST_STARTED = "t0:";
    /// When it settled (ms).
    Instance INST_FINISHED = "t1:";
    /// The consumer that ran its latest attempt.
    Instance INST_WORKER = "w:";
    /// Its latest failure (a `RequestFailure` as JSON).
    Instance INST_FAILURE = "e:";
    /// Its output, encoded (a conditional's: the chosen variant's payload); followed by
    /// `#<n>`, item `n` of a for-each source's collection.
    Instance INST_OUTPUT = "o:";
    /// Inputs arrived at a join or a gather.
    Instance INST_ARRIVALS = "n:";
    /// How many items a gathering instance waits for.
    Instance INST_SIZE = "c:";
    /// The instances an entry carries once completions handed it on, space-separated.
    Entry ENTRY_CARRIES = "m:";
    /// A ready entry's request id.
    Ready READY_REQUEST = "r";
    /// A ready entry's instance key.
    Ready READY_INSTANCE = "v";
    /// The trace context of the span that enqueued it.
    Ready READY_TRACEPARENT = "tp";
    /// A request's first entry: its input, when small.
    Ready READY_INPUT = "i";
    /// The version of the graph a ready entry's instance key is numbered in (a structural
    /// hash): its request's when it was queued.
    Ready READY_HASH = "h";
    /// A done event's request id.
    Done DONE_REQUEST = "r";
    /// How the request ended (`completed`, `failed`, `stopped`).
    Done DONE_STATUS = "st";
    /// A completed request's output, when small.
    Done DONE_OUTPUT = "out";
    /// A dead letter's request id.
    Dead DEAD_REQUEST = "r";
    /// A dead letter's instance key.
    Dead DEAD_INSTANCE = "v";
    /// A dead letter's failure (a `RequestFailure` as JSON).
    Dead DEAD_FAILURE = "failure";
    /// The request whose step an event entry records.
    Event EVENT_REQUEST = "r";
    /// The request's new status, when the step changed it.
    Event EVENT_STATUS = "st";
    /// The instances the step moved, and their new statuses: `<key> <status> ...`.
    Event EVENT_VERTICES = "v";
}

/// What the engines of one version of a workflow's graph write at `T:graph@<hash>`, as JSON:
/// the graph (as `GET /flow/{name}` gives it) and its plan's layout, with which an engine of
/// another version reads the states of this version's requests.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredVersion {
    pub(crate) graph: serde_json::Value,
    pub(crate) layout: crate::plan::Layout,
}

impl StoredVersion {
    pub(crate) fn of(plan: &crate::plan::Plan) -> Self {
        Self {
            graph: serde_json::to_value(plan.graph()).unwrap_or_default(),
            layout: plan.layout().clone(),
        }
    }
}

/// The keys of one workflow, split into its partitions: a request belongs to one, named by
/// its id ([`Partitions::of`]), and every key a script touches for it is that partition's.
/// Partition 0 has the tag `{prefix:flow}` (the layout of a workflow that is not split) and
/// holds what belongs to the whole workflow: the set of its versions and their graphs.
/// The Cluster's 16,384 slots are seen as `n` equal ranges, split as `redis-cli --cluster
/// create` splits them among `n` primaries; partition `p` has the tag `{prefix:flow:p.k}`,
/// with the first `k` from 0 that puts it in the middle half of the `p`-th range after
/// partition 0's. So on a Cluster whose primaries hold equal ranges of slots, as that command
/// leaves them, the partitions of every workflow are spread evenly over the primaries.
#[derive(Debug, Clone)]
pub(crate) struct Partitions {
    parts: Vec<FlowKeys>,
}

/// How many hash slots a Redis Cluster has.
const SLOTS: u32 = 16_384;

/// The first slot of range `i` of `n` equal ranges of the slots (`SLOTS` for `i == n`), as
/// `redis-cli --cluster create` splits them among `n` primaries (it rounds each range's end).
fn range_start(i: u32, n: u32) -> u32 {
    (f64::from(i * SLOTS) / f64::from(n)).round() as u32
}

/// Which of `n` equal ranges of the slots (see [`range_start`]) holds `slot`.
fn slot_range(slot: u16, n: u32) -> u32 {
    (1..n)
        .filter(|&i| u32::from(slot) >= range_start(i, n))
        .count() as u32
}

impl Partitions {
    /// The keys of workflow `flow`, split into `n` partitions (at least 1), for the engines
    /// of version `version` of its graph (its structural hash, 16 hex digits).
    pub(crate) fn new(prefix: &str, flow: &str, version: &str, n: u16) -> Self {
        let home = format!("{{{prefix}:{flow}}}");
        let n = u32::from(n.max(1));
        let home_range = slot_range(fred::util::redis_keyslot(home.as_bytes()), n);
        let mut parts = vec![FlowKeys::new(home, version)];
        for p in 1..n {
            let range = (home_range + p) % n;
            let (first, end) = (range_start(range, n), range_start(range + 1, n));
            let quarter = (end - first) / 4;
            let middle = first + quarter..(end - quarter).max(first + quarter + 1);
            let tag = (0u32..)
                .map(|k| format!("{{{prefix}:{flow}:{p}.{k}}}"))
                .find(|tag| middle.contains(&u32::from(fred::util::redis_keyslot(tag.as_bytes()))))
                .expect("a tag in every range of slots");
            parts.push(FlowKeys::new(tag, version));
        }
        Self { parts }
    }

    /// The hash tags of the partitions, partition 0 first.
    pub(crate) fn tags(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(|keys| keys.tag.as_str())
    }

    /// Every partition, partition 0 first.
    pub(crate) fn all(&self) -> &[FlowKeys] {
        &self.parts
    }

    /// Partition 0, which also holds the workflow's versions and their graphs.
    pub(crate) fn home(&self) -> &FlowKeys {
        &self.parts[0]
    }

    /// The partition of request `id`: the hash slot of its id (its CRC16, as Redis Cluster
    /// hashes keys; ids hold no braces), modulo the number of partitions.
    pub(crate) fn of(&self, id: &(impl AsRef<str> + ?Sized)) -> &FlowKeys {
        let n = self.parts.len();
        if n == 1 {
            return &self.parts[0];
        }
        let slot = fred::util::redis_keyslot(id.as_ref().as_bytes());
        &self.parts[usize::from(slot) % n]
    }

    /// Request `id`'s state hash, in its partition.
    pub(crate) fn request(&self, id: &(impl AsRef<str> + ?Sized)) -> String {
        self.of(id).request(id)
    }

    /// The vertices parked while request `id` is paused, in its partition.
    pub(crate) fn parked(&self, id: &(impl AsRef<str> + ?Sized)) -> String {
        self.of(id).parked(id)
    }
}

/// The keys of one partition of a workflow.
#[derive(Debug, Clone)]
pub(crate) struct FlowKeys {
    tag: String,
    /// Stream of ready vertices of this version of the graph, read by the consumer group of
    /// the workers that have it.
    pub(crate) ready: String,
    /// Set of the versions of the graph deployed (structural hashes); only partition 0's is
    /// used.
    pub(crate) versions: String,
    /// Sorted set of retries waiting for their backoff, scored by due time (ms).
    pub(crate) delayed: String,
    /// Capped stream of request ends (completed, failed, stopped), for waiters and hooks.
    pub(crate) done: String,
    /// Capped stream of vertices that failed for good, with their failure.
    pub(crate) dead: String,
    /// Sorted set of the ended requests, scored by when they ended (ms): how the listing
    /// indexes forget them as their hashes expire.
    pub(crate) ended: String,
    /// Capped stream of the steps that moved requests and their vertices: the live events.
    pub(crate) events: String,
    /// How many partitions the workflow is split into, as the first process recorded it;
    /// only partition 0's is used.
    pub(crate) partitions: String,
}

impl FlowKeys {
    /// The keys under hash tag `tag` for the engines of version `version` of the graph.
    fn new(tag: String, version: &str) -> Self {
        Self {
            ready: format!("{tag}{KEY_READY}{version}"),
            versions: format!("{tag}{KEY_VERSIONS}"),
            delayed: format!("{tag}:delayed"),
            done: format!("{tag}:done"),
            dead: format!("{tag}:dead"),
            ended: format!("{tag}{KEY_ENDED}"),
            events: format!("{tag}{KEY_EVENTS}"),
            partitions: format!("{tag}{KEY_PARTITIONS}"),
            tag,
        }
    }

    /// The ready stream of version `version` of the graph.
    pub(crate) fn ready_of(&self, version: &str) -> String {
        format!("{}{KEY_READY}{version}", self.tag)
    }

    /// Version `version` of the graph, as JSON.
    pub(crate) fn graph_of(&self, version: &str) -> String {
        format!("{}{KEY_GRAPH}{version}", self.tag)
    }

    /// The request's state hash (the id as a [`RequestId`](crate::RequestId), or as an entry holds it).
    pub(crate) fn request(&self, id: &(impl AsRef<str> + ?Sized)) -> String {
        format!("{}{KEY_REQUEST}{}", self.tag, id.as_ref())
    }

    /// The listing index of the requests in `status`: a sorted set of their ids, scored by
    /// when each was created (ms).
    pub(crate) fn by_status(&self, status: RequestStatus) -> String {
        format!("{}{KEY_BY_STATUS}{status}", self.tag)
    }

    /// The vertices parked while the request is paused.
    pub(crate) fn parked(&self, id: &(impl AsRef<str> + ?Sized)) -> String {
        format!("{}:parked:{}", self.tag, id.as_ref())
    }
}

/// The names of the request hash's per-instance fields. Instances are named by their
/// [key](Instance::key): `5`, or `5.3.7` inside `each` bodies.
pub(crate) mod fields {
    use super::{Instance, Slot, VertexId};

    /// Where a value is stored: the request's input `in`, an instance's output `o:<key>`, item
    /// `n` of a for-each source's collection `o:<key>#<n>`.
    pub(crate) fn slot(slot: &Slot) -> String {
        match slot {
            Slot::Input => super::REQ_INPUT.to_owned(),
            Slot::Output(instance) => format!("{}{}", super::INST_OUTPUT, instance.key()),
            Slot::Item(instance, n) => format!("{}{}#{n}", super::INST_OUTPUT, instance.key()),
        }
    }

    /// How many items a gathering instance waits for: `c:<key>`.
    pub(crate) fn size(instance: &Instance) -> String {
        format!("{}{}", super::INST_SIZE, instance.key())
    }

    /// How many inputs have arrived at a join (or a gather): `n:<key>`.
    pub(crate) fn arrivals(instance: &Instance) -> String {
        format!("{}{}", super::INST_ARRIVALS, instance.key())
    }

    /// The status of an instance: `s:<key>`.
    pub(crate) fn status(instance: &Instance) -> String {
        format!("{}{}", super::INST_STATUS, instance.key())
    }

    /// What the output field of item `n` of a gather starts with: the outputs of the
    /// instances of `exit` at `items` then `n` are this followed by `n`
    /// (`o:<exit>.<items>.`).
    pub(crate) fn gathered_prefix(exit: VertexId, items: &[u32]) -> String {
        format!(
            "{}{}.",
            super::INST_OUTPUT,
            Instance::new(exit, items.to_vec()).key()
        )
    }
}

/// The Lua prelude every script starts with: the protocol's names ([`FIELDS`], the groups,
/// the caps) and the lifecycle core's words and tables, as locals. The scripts spell none of
/// them themselves.
pub(crate) fn lua_prelude() -> String {
    let mut lua = String::from(
        "-- Generated from redis/protocol.rs and lifecycle.rs when the scripts are loaded: the\n\
         -- field names, words and tables every script uses.\n",
    );
    for field in FIELDS {
        let _ = writeln!(lua, "local {} = '{}'", field.constant, field.name);
    }
    // The prefixes of the per-instance fields, longest first, so that the first that a field
    // name starts with is its own.
    let mut prefixes: Vec<&Field> = FIELDS
        .iter()
        .filter(|f| f.place == Place::Instance)
        .collect();
    prefixes.sort_by_key(|f| std::cmp::Reverse(f.name.len()));
    let prefixes: Vec<&str> = prefixes.iter().map(|f| f.constant).collect();
    let _ = writeln!(lua, "local INSTANCE_FIELDS = {{{}}}", prefixes.join(", "));
    let _ = writeln!(lua, "local GROUP = '{GROUP}'");
    let _ = writeln!(lua, "local KEY_REQUEST = '{KEY_REQUEST}'");
    let _ = writeln!(lua, "local KEY_BY_STATUS = '{KEY_BY_STATUS}'");
    let _ = writeln!(lua, "local KEY_ENDED = '{KEY_ENDED}'");
    let _ = writeln!(lua, "local KEY_EVENTS = '{KEY_EVENTS}'");
    let _ = writeln!(lua, "local KEY_READY = '{KEY_READY}'");
    let _ = writeln!(lua, "local EVENTS_MAXLEN = '{EVENTS_MAXLEN}'");
    let _ = writeln!(lua, "local DONE_MAXLEN = '{DONE_MAXLEN}'");
    let _ = writeln!(lua, "local DEAD_MAXLEN = '{DEAD_MAXLEN}'");
    for status in RequestStatus::ALL {
        let word = status.as_str();
        let _ = writeln!(lua, "local RS_{} = '{word}'", word.to_uppercase());
    }
    for status in VertexStatus::ALL {
        let word = status.as_str();
        let _ = writeln!(lua, "local VS_{} = '{word}'", word.to_uppercase());
    }
    let words: Vec<String> = RequestStatus::ALL
        .iter()
        .map(|s| format!("RS_{}", s.as_str().to_uppercase()))
        .collect();
    let _ = writeln!(lua, "local REQUEST_STATUSES = {{{}}}", words.join(", "));
    // The request statuses that have ended, and the instance statuses that are settled.
    let set = |words: Vec<&str>| {
        let items: Vec<String> = words.iter().map(|w| format!("{w} = true")).collect();
        format!("{{{}}}", items.join(", "))
    };
    let ended = RequestStatus::ALL.iter().filter(|s| s.is_final());
    let _ = writeln!(
        lua,
        "local ENDED = {}",
        set(ended.map(|s| s.as_str()).collect())
    );
    let settled = VertexStatus::ALL.iter().filter(|s| s.is_final());
    let _ = writeln!(
        lua,
        "local SETTLED = {}",
        set(settled.map(|s| s.as_str()).collect())
    );
    // The control table: CONTROL[action][status] is the status the action moves to.
    let mut actions = Vec::new();
    for action in Control::ALL {
        let moves: Vec<String> = RequestStatus::ALL
            .iter()
            .filter_map(|from| {
                lifecycle::control(*from, *action).map(|to| format!("{from} = '{to}'"))
            })
            .collect();
        actions.push(format!("{action} = {{{}}}", moves.join(", ")));
    }
    let _ = writeln!(lua, "local CONTROL = {{{}}}", actions.join(", "));
    // ON_START[status]: a request's status once one of its vertices starts; ON_READY[status]:
    // the status of an instance that becomes ready in a request with that status.
    let table = |of: &dyn Fn(RequestStatus) -> &'static str| {
        let items: Vec<String> = RequestStatus::ALL
            .iter()
            .map(|s| format!("{s} = '{}'", of(*s)))
            .collect();
        format!("{{{}}}", items.join(", "))
    };
    let on_start = table(&|s| lifecycle::on_start(s).as_str());
    let on_ready = table(&|s| lifecycle::on_ready(s).as_str());
    let _ = writeln!(lua, "local ON_START = {on_start}");
    let _ = writeln!(lua, "local ON_READY = {on_ready}");
    // ON_END[status]: an instance whose entry or attempt will not go on, its request ended;
    // RERUNS: the instance statuses a retry queues again.
    let ends: Vec<String> = VertexStatus::ALL
        .iter()
        .map(|s| format!("{s} = '{}'", lifecycle::on_end(*s)))
        .collect();
    let _ = writeln!(lua, "local ON_END = {{{}}}", ends.join(", "));
    let reruns = VertexStatus::ALL.iter().filter(|s| lifecycle::reruns(**s));
    let _ = writeln!(
        lua,
        "local RERUNS = {}",
        set(reruns.map(|s| s.as_str()).collect())
    );
    lua
}

/// The prelude for a script whose body (its files, concatenated) is `body`: [`lua_prelude`]
/// less the tables the body never names. A script runs its whole text on every call, prelude
/// included, and building a table costs what the rest of the prelude costs together (measured
/// with `INFO commandstats` on Redis 7.0: the nine tables made up 2.7 µs of an empty script's
/// 5.2 µs), while a name of a string costs next to nothing and stays in, unused or not.
pub(crate) fn lua_prelude_for(body: &str) -> String {
    let mut lua = String::new();
    for line in lua_prelude().lines() {
        let table = line
            .strip_prefix("local ")
            .and_then(|rest| rest.split_once(" = {"))
            .map(|(name, _)| name);
        if table.is_none_or(|name| names(body, name)) {
            lua.push_str(line);
            lua.push('\n');
        }
    }
    lua
}

/// Whether Lua source `body` has the identifier `name` (not merely a longer one containing it).
fn names(body: &str, name: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    body.match_indices(name).any(|(at, _)| {
        let before = body[..at].chars().next_back();
        let after = body[at + name.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Inputs;
    use crate::request_id::RequestId;
    use std::collections::BTreeSet;

    #[test]
    fn field_names() {
        let at = Instance::new(5, vec![3, 7]);
        assert_eq!(fields::slot(&Slot::Input), "in");
        assert_eq!(fields::slot(&Slot::Output(Instance::root(2))), "o:2");
        assert_eq!(fields::slot(&Slot::Output(at.clone())), "o:5.3.7");
        assert_eq!(fields::slot(&Slot::Item(at.clone(), 4)), "o:5.3.7#4");
        assert_eq!(fields::size(&at), "c:5.3.7");
        assert_eq!(fields::arrivals(&Instance::root(4)), "n:4");
        assert_eq!(fields::status(&at), "s:5.3.7");
    }

    #[test]
    fn a_gather_reads_its_items_by_prefix() {
        for items in [vec![], vec![2], vec![2, 9]] {
            let prefix = fields::gathered_prefix(6, &items);
            for n in [0, 1, 12] {
                assert_eq!(
                    format!("{prefix}{n}"),
                    fields::slot(&Inputs::gathered(6, &items, n))
                );
            }
        }
    }

    #[test]
    fn partitions_spread_round_the_slots_and_keep_one_slot_each() {
        let slot = |key: &str| u32::from(fred::util::redis_keyslot(key.as_bytes()));
        let one = Partitions::new("goflow", "kyc", "0123456789abcdef", 1);
        let three = Partitions::new("goflow", "kyc", "0123456789abcdef", 3);
        // Partition 0 keeps the layout of a workflow that is not split.
        assert_eq!(one.home().tag, "{goflow:kyc}");
        assert_eq!(three.home().tag, "{goflow:kyc}");
        // As `redis-cli --cluster create` gives 3 primaries their slots.
        let primary = |slot: u32| match slot {
            0..=5460 => 0,
            5461..=10922 => 1,
            _ => 2,
        };
        assert_eq!(
            (0..SLOTS)
                .map(|s| slot_range(s as u16, 3))
                .collect::<Vec<_>>(),
            (0..SLOTS).map(primary).collect::<Vec<_>>()
        );
        let mut primaries = Vec::new();
        for keys in three.all() {
            primaries.push(primary(slot(&keys.tag)));
            for key in [
                &keys.ready,
                &keys.done,
                &keys.delayed,
                &keys.events,
                &keys.dead,
            ] {
                assert_eq!(slot(key), slot(&keys.tag), "{key}");
            }
        }
        // One partition per primary, for workflows whose partition 0 falls anywhere.
        primaries.sort_unstable();
        assert_eq!(primaries, [0, 1, 2]);
        for flow in (0..200).map(|n| format!("flow-{n}")) {
            let three = Partitions::new("goflow", &flow, "0123456789abcdef", 3);
            let mut primaries: Vec<u32> = three.tags().map(slot).map(primary).collect();
            primaries.sort_unstable();
            assert_eq!(primaries, [0, 1, 2], "{flow}");
        }
        // The same names in every process; requests spread over all partitions, each always
        // in the same one.
        let again = Partitions::new("goflow", "kyc", "0123456789abcdef", 3);
        assert!(three.tags().eq(again.tags()));
        let mut seen = [0; 3];
        for n in 0..300 {
            let id = format!("request-{n}");
            let tag = &three.of(&id).tag;
            assert_eq!(tag, &again.of(&id).tag);
            seen[three.all().iter().position(|k| &k.tag == tag).unwrap()] += 1;
            assert!(three.request(&id).starts_with(tag.as_str()));
        }
        assert!(seen.iter().all(|&n| n > 60), "{seen:?}");
    }

    #[test]
    fn all_keys_of_a_flow_share_one_hash_tag() {
        let keys = Partitions::new("goflow", "kyc", "0123456789abcdef", 1);
        let keys = keys.of("r1");
        let id = RequestId::parse("r1").unwrap();
        for key in [
            keys.ready.clone(),
            keys.ready_of("fedcba9876543210"),
            keys.graph_of("fedcba9876543210"),
            keys.versions.clone(),
            keys.delayed.clone(),
            keys.done.clone(),
            keys.dead.clone(),
            keys.request(&id),
            keys.parked(&id),
        ] {
            assert!(key.starts_with("{goflow:kyc}:"), "{key}");
        }
        assert_eq!(keys.request(&id), "{goflow:kyc}:req:r1");
    }

    #[test]
    fn fields_of_one_place_have_distinct_names() {
        for place in [
            Place::Request,
            Place::Instance,
            Place::Entry,
            Place::Ready,
            Place::Done,
            Place::Dead,
        ] {
            let names: Vec<&str> = FIELDS
                .iter()
                .filter(|f| f.place == place)
                .map(|f| f.name)
                .collect();
            let unique: BTreeSet<&str> = names.iter().copied().collect();
            assert_eq!(names.len(), unique.len(), "{place:?}: {names:?}");
        }
        // In the request's hash, no field name starts with a per-instance or per-entry prefix
        // (a reader tells them apart by prefix).
        let prefixes = FIELDS
            .iter()
            .filter(|f| matches!(f.place, Place::Instance | Place::Entry));
        for prefix in prefixes {
            for field in FIELDS.iter().filter(|f| f.place == Place::Request) {
                assert!(
                    !field.name.starts_with(prefix.name),
                    "{} / {}",
                    field.name,
                    prefix.name
                );
            }
        }
    }

    /// The field tables of `PROTOCOL.md` (rows `| \`name\` | \`CONSTANT\` | ...`) name exactly
    /// the fields defined here, with the same names.
    #[test]
    fn the_protocol_document_names_every_field_as_the_code_does() {
        let document = include_str!("PROTOCOL.md");
        let mut documented = BTreeSet::new();
        for line in document.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if let [_, name, constant, ..] = cells.as_slice() {
                let unquote =
                    |cell: &str| cell.strip_prefix('`')?.strip_suffix('`').map(str::to_owned);
                if let (Some(name), Some(constant)) = (unquote(name), unquote(constant)) {
                    if constant.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                        && constant.contains('_')
                    {
                        documented.insert((constant, name));
                    }
                }
            }
        }
        let defined: BTreeSet<(String, String)> = FIELDS
            .iter()
            .map(|f| (f.constant.to_owned(), f.name.to_owned()))
            .collect();
        assert_eq!(
            documented.difference(&defined).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "documented in PROTOCOL.md but not defined in protocol.rs"
        );
        assert_eq!(
            defined.difference(&documented).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "defined in protocol.rs but not documented in PROTOCOL.md"
        );
    }

    #[test]
    fn a_script_builds_only_the_tables_it_names() {
        let body = "if ENDED[st] then return ON_END_X end\nlocal x = ON_READY[st]\n";
        let lua = lua_prelude_for(body);
        assert!(lua.contains("local ENDED = {"), "{lua}");
        assert!(lua.contains("local ON_READY = {"), "{lua}");
        assert!(!lua.contains("local ON_END = {"), "{lua}");
        assert!(!lua.contains("local CONTROL = {"), "{lua}");
        // The names of strings stay, whether the body uses them or not.
        assert!(lua.contains("local REQ_STATUS = 'st'\n"), "{lua}");
        assert!(lua.contains("local RS_QUEUED = 'queued'\n"), "{lua}");
    }

    #[test]
    fn the_prelude_renders_the_lifecycle_tables() {
        let lua = lua_prelude();
        assert!(lua.contains("local REQ_STATUS = 'st'\n"), "{lua}");
        assert!(lua.contains("local VS_RETRYING = 'retrying'\n"), "{lua}");
        assert!(
            lua.contains("local ENDED = {completed = true, failed = true, stopped = true}\n"),
            "{lua}"
        );
        assert!(
            lua.contains("local CONTROL = {pause = {queued = 'paused', running = 'paused'}, resume = {paused = 'running'}, stop = {queued = 'stopped', running = 'stopped', paused = 'stopped'}, retry = {failed = 'running', stopped = 'running'}, retry_from_start = {failed = 'running', stopped = 'running'}}\n"),
            "{lua}"
        );
        assert!(
            lua.contains("local RERUNS = {parked = true, failed = true, cancelled = true}\n"),
            "{lua}"
        );
        assert!(
            lua.contains("local ON_END = {pending = 'pending', queued = 'cancelled', running = 'cancelled', retrying = 'cancelled', parked = 'parked', done = 'done'"),
            "{lua}"
        );
        assert!(
            lua.contains("ON_READY = {queued = 'queued', running = 'queued', paused = 'parked'"),
            "{lua}"
        );
    }
}
