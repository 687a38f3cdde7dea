//! The executable form of a workflow: its graph flattened (sub-workflows inlined), each vertex
//! holding a type-erased runner bound to a codec. Both engines schedule from a `Plan`: where
//! each vertex takes its input ([`Feed`]), what its output sets going ([`Plan::advance`]), and
//! which vertex *instances* exist: a vertex inside `each { ... }` runs once per item, as the
//! [`Instance`] at that item's path.

mod builder;
mod instance;
mod layout;
#[cfg(feature = "redis")]
mod migration;
mod progress;

pub use builder::{ArmSpec, Fragment, PlanBuilder, SelectFn};
pub use instance::{Advance, Inputs, Instance, Need, Slot};
pub(crate) use layout::{FeedShape, Layout, Signature};
#[cfg(feature = "redis")]
pub(crate) use migration::Migration;
pub use progress::Progress;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{Codec, CodecError};
use crate::context::Context;
use crate::error::Failure;
use crate::limits::Limits;
use crate::metrics::AttemptKeys;
use crate::node::NodeOptions;
use crate::workflow::Workflow;

/// Index of a vertex in a [`Plan`].
pub type VertexId = usize;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Runs one attempt of a node: decodes its input parts, calls it, encodes its output.
type Runner = Arc<dyn Fn(&[Bytes], Context) -> BoxFuture<Result<Bytes, Failure>> + Send + Sync>;

/// Picks the arm of a conditional from its vertex's encoded output (an enum): the arm's index
/// and the variant's encoded payload.
type Selector = Arc<dyn Fn(&[u8]) -> Result<(usize, Bytes), CodecError> + Send + Sync>;

/// Splits a for-each source's encoded collection into its items, each encoded on its own.
type Splitter = Arc<dyn Fn(&[u8]) -> Result<Vec<Bytes>, CodecError> + Send + Sync>;

/// Frames encoded items as the encoding of the sequence of them (the codec's `tuple`).
type Framer = Arc<dyn Fn(&[Bytes]) -> Bytes + Send + Sync>;

/// Where a vertex takes its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// The request's input: the plan's entry vertex.
    Request,
    /// The outputs of these vertices at the same item path, in order: one parent (`a -> b`),
    /// or the parameters of a join (`[a, b] => c`). Empty only while the plan is being built.
    All(Vec<VertexId>),
    /// The first of these vertices' outputs that exists: the vertex after a conditional, fed by
    /// whichever arm ran. The conditional's own vertex comes last when an arm is empty (its
    /// payload passes straight through), so the output of an arm that ran always wins.
    First(Vec<VertexId>),
    /// One item of the collection produced by a for-each source: the entry of an `each` body.
    Item(VertexId),
    /// The outputs of every instance of a for-each body's exit, in item order, as one
    /// sequence: the vertex after `each { ... } =>`.
    Gather(VertexId),
}

/// What becomes of a vertex's output.
#[derive(Clone)]
enum Route {
    /// It is stored and its successors are told.
    Plain,
    /// A conditional: the output picks one arm, which runs with the variant's payload.
    Branch { select: Selector, arms: Vec<Arm> },
    /// A for-each source: each item of the output starts one instance of the body.
    Each {
        split: Splitter,
        body: Vec<VertexId>,
        gather: VertexId,
    },
}

/// One arm of a conditional.
#[derive(Clone)]
struct Arm {
    /// The vertices that take the payload: the arm's entries, or the merge vertex for an empty
    /// arm.
    targets: Vec<VertexId>,
    /// The vertices of the arm at the conditional's item path, marked skipped when another
    /// arm runs.
    vertices: Vec<VertexId>,
}

/// One vertex of a [`Plan`].
pub struct PlanVertex {
    path: Arc<str>,
    node: &'static str,
    /// The node's input and output types, as the compiler names them.
    types: (&'static str, &'static str),
    options: NodeOptions,
    depth: usize,
    feed: Feed,
    successors: Vec<VertexId>,
    route: Route,
    run: Runner,
    /// The keys of its attempts' metrics.
    meters: AttemptKeys,
}

impl PlanVertex {
    /// The keys of its attempts' metrics.
    pub(crate) fn meters(&self) -> &AttemptKeys {
        &self.meters
    }

    /// The vertex path: its name, prefixed by the names of the sub-workflow vertices it sits
    /// in (`verify/face_match`).
    pub fn path(&self) -> &Arc<str> {
        &self.path
    }

    /// The node it runs.
    pub fn node(&self) -> &'static str {
        self.node
    }

    /// The node's options.
    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    /// How many `each` bodies it sits in: the length of its instances' item paths.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Where it takes its input.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// The vertices that may take this vertex's output (for a conditional, the targets of
    /// every arm; for a for-each source, the body's entries).
    pub fn successors(&self) -> &[VertexId] {
        &self.successors
    }

    /// What it is besides its place, for comparing it with a vertex of another version (see
    /// [`Signature`]); `all` being every vertex of its plan.
    fn signature(&self, all: &[PlanVertex]) -> Signature {
        let path = |v: &VertexId| Arc::clone(&all[*v].path);
        let feed = match &self.feed {
            Feed::Request => FeedShape::Request,
            Feed::All(from) => FeedShape::All(from.iter().map(path).collect()),
            Feed::First(from) => FeedShape::First(from.iter().map(path).collect()),
            Feed::Item(source) => FeedShape::Item(path(source)),
            Feed::Gather(exit) => FeedShape::Gather(path(exit)),
        };
        let route = match self.route {
            Route::Plain => "plain",
            Route::Branch { .. } => "branch",
            Route::Each { .. } => "each",
        };
        Signature {
            node: Arc::from(self.node),
            input: Arc::from(self.types.0),
            output: Arc::from(self.types.1),
            feed,
            route: Arc::from(route),
        }
    }

    /// Starts one attempt on encoded input parts (one per parameter, or one holding the whole
    /// input). The future is not yet guarded against panics or timeouts: see `exec`.
    pub(crate) fn start(&self, parts: &[Bytes], ctx: Context) -> BoxFuture<Result<Bytes, Failure>> {
        (self.run)(parts, ctx)
    }
}

/// A workflow ready to execute: flattened, bound to a codec and to its [`Limits`].
pub struct Plan {
    flow: &'static str,
    /// The graph the plan was built from.
    graph: &'static crate::graph::Graph,
    /// Its vertices' paths and depths.
    layout: Layout,
    hash: u64,
    /// The hash as 16 hex digits: the version of the graph.
    version: Arc<str>,
    limits: Limits,
    vertices: Vec<PlanVertex>,
    entry: VertexId,
    exit: VertexId,
    frame: Framer,
}

impl Plan {
    /// Flattens workflow `W` into a plan whose vertices encode with `codec`, with the default
    /// [`Limits`].
    pub fn new<W: Workflow, C: Codec>(codec: C) -> Self {
        Self::with_limits::<W, C>(codec, Limits::DEFAULT)
    }

    /// [`new`](Self::new) with other limits.
    pub fn with_limits<W: Workflow, C: Codec>(codec: C, limits: Limits) -> Self {
        let version: Arc<str> = Arc::from(format!("{:016x}", W::graph().structural_hash()));
        let mut builder = PlanBuilder::new(codec.clone(), limits, W::NAME, Arc::clone(&version));
        let fragment = W::build(&mut builder);
        let vertices = builder.finish(fragment.entry);
        let layout = Layout::new(
            vertices
                .iter()
                .map(|v| (Arc::clone(&v.path), v.depth))
                .collect(),
            fragment.exit,
            vertices.iter().map(|v| v.signature(&vertices)).collect(),
        );
        Self {
            flow: W::NAME,
            graph: W::graph(),
            layout,
            hash: W::graph().structural_hash(),
            version,
            limits,
            vertices,
            entry: fragment.entry,
            exit: fragment.exit,
            frame: Arc::new(move |parts| codec.tuple(parts)),
        }
    }

    /// The workflow's name.
    pub fn flow(&self) -> &'static str {
        self.flow
    }

    /// The workflow's graph, as `workflow!` declared it.
    pub fn graph(&self) -> &'static crate::graph::Graph {
        self.graph
    }

    /// The workflow graph's [structural hash](crate::graph::Graph::structural_hash).
    pub fn structural_hash(&self) -> u64 {
        self.hash
    }

    /// The version of the workflow's graph: its structural hash as 16 hex digits, as requests
    /// are pinned to it (`"version"` in their state).
    pub fn version(&self) -> &Arc<str> {
        &self.version
    }

    /// All vertices, sub-workflows inlined.
    pub fn vertices(&self) -> &[PlanVertex] {
        &self.vertices
    }

    /// One vertex.
    pub fn vertex(&self, id: VertexId) -> &PlanVertex {
        &self.vertices[id]
    }

    /// The vertex that receives the workflow input.
    pub fn entry(&self) -> VertexId {
        self.entry
    }

    /// The vertex whose output is the workflow output.
    pub fn exit(&self) -> VertexId {
        self.exit
    }

    /// The display name of an instance: the vertex path, then each item index in brackets
    /// (`sweep/verify[3]`). This is the name in errors, spans and the request's state.
    pub fn name_of(&self, instance: &Instance) -> Arc<str> {
        self.layout.name_of(instance)
    }

    /// Its vertices' paths and depths, and its exit.
    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Frames encoded values as one encoded sequence, with the plan's codec.
    pub fn frame(&self, parts: &[Bytes]) -> Bytes {
        (self.frame)(parts)
    }

    /// What an engine must gather to start `instance`.
    pub fn inputs_of(&self, instance: &Instance) -> Inputs {
        if let Some(slot) = self.sole_input(instance) {
            return Inputs::Slots(vec![slot]);
        }
        let vertex = &self.vertices[instance.vertex];
        let at = |parent: VertexId| Slot::Output(instance.next(parent, vertex.depth, None));
        match &vertex.feed {
            Feed::Request => Inputs::Slots(vec![Slot::Input]),
            Feed::All(parents) => Inputs::Slots(parents.iter().map(|&p| at(p)).collect()),
            Feed::First(parents) => Inputs::FirstOf(parents.iter().map(|&p| at(p)).collect()),
            Feed::Item(source) => {
                let (&item, outer) = instance
                    .items
                    .split_last()
                    .expect("a body entry has an item path");
                Inputs::Slots(vec![Slot::Item(
                    Instance::new(*source, outer.to_vec()),
                    item,
                )])
            }
            Feed::Gather(exit) => Inputs::Gather {
                exit: *exit,
                items: instance.items.clone(),
            },
        }
    }

    /// The one value `instance` starts on when it has a single input (the entry, each vertex
    /// of a chain): the common case, which the embedded engine looks up without building the
    /// list of [`inputs_of`](Self::inputs_of).
    pub(super) fn sole_input(&self, instance: &Instance) -> Option<Slot> {
        let vertex = &self.vertices[instance.vertex];
        match &vertex.feed {
            Feed::Request => Some(Slot::Input),
            Feed::All(parents) => match parents.as_slice() {
                [parent] => Some(Slot::Output(instance.next(*parent, vertex.depth, None))),
                _ => None,
            },
            _ => None,
        }
    }

    /// What the completion of `done` with `output` sets going: what to store, which instances
    /// get an arrival, which are skipped. Each instance must be reported once; engines that
    /// may see one twice (redelivery) deduplicate before calling this.
    ///
    /// Fails (which fails the vertex) when a conditional's output or a for-each's collection
    /// cannot be decoded with the plan's codec, or a collection has more items than the
    /// plan's [`Limits::max_items`].
    pub fn advance(&self, done: &Instance, output: Bytes) -> Result<Advance, Failure> {
        let vertex = &self.vertices[done.vertex];
        let mut advance = Advance {
            completes: done.vertex == self.exit && done.items.is_empty(),
            ..Advance::default()
        };
        match &vertex.route {
            Route::Plain => {
                advance.store.push((Slot::Output(done.clone()), output));
                for &next in &vertex.successors {
                    self.arrive(
                        &mut advance,
                        done.next(next, self.vertices[next].depth, None),
                    );
                }
            }
            Route::Branch { select, arms } => {
                let (chosen, payload) = select(&output)?;
                advance.store.push((Slot::Output(done.clone()), payload));
                for (i, arm) in arms.iter().enumerate() {
                    if i == chosen {
                        for &target in &arm.targets {
                            self.arrive(&mut advance, done.next(target, vertex.depth, None));
                        }
                    } else {
                        advance.skipped.extend(
                            arm.vertices
                                .iter()
                                .map(|&v| done.next(v, vertex.depth, None)),
                        );
                    }
                }
            }
            Route::Each {
                split,
                body,
                gather,
            } => {
                let items = split(&output)?;
                let count = u32::try_from(items.len())
                    .ok()
                    .filter(|&n| n <= self.limits.max_items)
                    .ok_or_else(|| {
                        Failure::Limit(format!(
                            "a for-each over {} items, more than the limit of {} (Limits::max_items)",
                            items.len(),
                            self.limits.max_items
                        ))
                    })?;
                let gathering = done.next(*gather, vertex.depth, None);
                advance.sizes.push((gathering.clone(), count));
                if count == 0 {
                    advance.arrivals.push((gathering, Need::One));
                }
                for (n, item) in (0..count).zip(items) {
                    advance.store.push((Slot::Item(done.clone(), n), item));
                    for &entry in body {
                        advance
                            .arrivals
                            .push((done.next(entry, vertex.depth, Some(n)), Need::One));
                    }
                }
            }
        }
        Ok(advance)
    }

    fn arrive(&self, advance: &mut Advance, next: Instance) {
        let need = match &self.vertices[next.vertex].feed {
            Feed::All(parents) if parents.len() > 1 => Need::Count(parents.len() as u32),
            Feed::Gather(_) => Need::Size,
            _ => Need::One,
        };
        advance.arrivals.push((next, need));
    }
}

impl fmt::Debug for PlanVertex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanVertex")
            .field("path", &self.path)
            .field("node", &self.node)
            .field("depth", &self.depth)
            .field("feed", &self.feed)
            .field("successors", &self.successors)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<&str> = self.vertices.iter().map(|v| &*v.path).collect();
        f.debug_struct("Plan")
            .field("flow", &self.flow)
            .field("vertices", &paths)
            .field("entry", &self.entry)
            .field("exit", &self.exit)
            .finish()
    }
}
