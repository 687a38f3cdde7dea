//! The vocabulary the engines schedule with: an [`Instance`] (one run of a vertex at an item
//! path), the [`Slot`]s that hold a request's values, the [`Inputs`] and [`Need`] of an
//! instance, and the [`Advance`] a completion sets going. Plain data, so both engines (and
//! the Redis keys) share one meaning of each.

use bytes::Bytes;

use super::VertexId;

/// One run of a vertex within a request: the vertex, and the item it runs for in each `each`
/// body around it (outermost first; empty outside any).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Instance {
    pub(super) vertex: VertexId,
    pub(super) items: Vec<u32>,
}

impl Instance {
    /// The only instance of a vertex outside any `each` body.
    pub fn root(vertex: VertexId) -> Self {
        Self {
            vertex,
            items: Vec::new(),
        }
    }

    /// The instance of `vertex` at the item path `items`.
    pub fn new(vertex: VertexId, items: Vec<u32>) -> Self {
        Self { vertex, items }
    }

    /// The vertex.
    pub fn vertex(&self) -> VertexId {
        self.vertex
    }

    /// The item path.
    pub fn items(&self) -> &[u32] {
        &self.items
    }

    /// The instance of `vertex` (at `depth`) that this one's item path leads to: the same
    /// path, cut to `depth`, or extended by `item` when `vertex` is one level deeper.
    pub(super) fn next(&self, vertex: VertexId, depth: usize, item: Option<u32>) -> Self {
        let mut items = self.items.clone();
        items.truncate(depth);
        items.extend(item);
        Self { vertex, items }
    }

    /// A compact, stable text form (`5`, or `5.3.7` for vertex 5 at items 3 then 7): what the
    /// Redis engine stores and enqueues.
    pub fn key(&self) -> String {
        let mut key = self.vertex.to_string();
        for item in &self.items {
            key.push('.');
            key.push_str(&item.to_string());
        }
        key
    }

    /// Parses [`key`](Self::key).
    pub fn parse_key(key: &str) -> Option<Self> {
        let mut parts = key.split('.');
        let vertex = parts.next()?.parse().ok()?;
        let items = parts
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<u32>>>()?;
        let instance = Self { vertex, items };
        // Only the canonical spelling: `05` or `+5` would name the same instance as `5`.
        (instance.key() == key).then_some(instance)
    }
}

/// Where an engine keeps one value of a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The request's input.
    Input,
    /// The output of an instance (for a conditional's vertex: the chosen variant's payload).
    Output(Instance),
    /// Item `n` of the collection a for-each source instance produced.
    Item(Instance, u32),
}

/// What an engine must gather to start an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inputs {
    /// These values, one part each, in order.
    Slots(Vec<Slot>),
    /// The first of these values that exists, as the one part.
    FirstOf(Vec<Slot>),
    /// The outputs of the instances of `exit` at `items` followed by each item index, for
    /// every item the source produced, framed as one sequence
    /// ([`Plan::frame`](super::Plan::frame)).
    Gather {
        /// The body's exit vertex.
        exit: VertexId,
        /// The item path of the gathering instance.
        items: Vec<u32>,
    },
}

impl Inputs {
    /// The output slot of item `n` of a gather.
    pub fn gathered(exit: VertexId, items: &[u32], n: u32) -> Slot {
        let mut path = items.to_vec();
        path.push(n);
        Slot::Output(Instance::new(exit, path))
    }
}

/// How many arrivals an instance needs before it can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// This one: a single input.
    One,
    /// This many: the parents of a join.
    Count(u32),
    /// One per item of the for-each that feeds it, a number recorded in [`Advance::sizes`]
    /// when the source completed.
    Size,
}

impl Need {
    /// How many arrivals an instance with this need waits for, `size` being the number of
    /// items of the for-each that feeds it (for [`Need::Size`]; `None` if it is not known):
    /// at least one, as an empty for-each's gather arrives once. An instance is ready at the
    /// arrival that reaches it, exactly, so that it is ready once.
    pub fn arrivals(self, size: Option<u32>) -> Option<u32> {
        match self {
            Need::One => Some(1),
            Need::Count(n) => Some(n.max(1)),
            Need::Size => size.map(|n| n.max(1)),
        }
    }
}

/// What one completed instance sets going: computed by
/// [`Plan::advance`](super::Plan::advance), applied by the engine atomically (the Redis
/// engine in one script).
#[derive(Debug, Default)]
pub struct Advance {
    /// Values to store.
    pub store: Vec<(Slot, Bytes)>,
    /// Instances that will never run: the other arms of a conditional.
    pub skipped: Vec<Instance>,
    /// For a for-each source: the gathering instance and how many items it waits for.
    pub sizes: Vec<(Instance, u32)>,
    /// Instances that receive one arrival, and what they need in all.
    pub arrivals: Vec<(Instance, Need)>,
    /// The request's exit completed: its output is the request's output.
    pub completes: bool,
}
