//! The executable form of a workflow: its graph flattened (sub-workflows inlined), each vertex
//! holding a type-erased runner bound to a codec. Both engines schedule from a `Plan`: where
//! each vertex takes its input ([`Feed`]), what its output sets going ([`Plan::advance`]), and
//! which vertex *instances* exist: a vertex inside `each { ... }` runs once per item, as the
//! [`Instance`] at that item's path.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{Codec, CodecError};
use crate::context::Context;
use crate::error::Failure;
use crate::node::{Data, Node, NodeOptions};
use crate::workflow::Workflow;

/// Index of a vertex in a [`Plan`].
pub type VertexId = usize;

/// Where a vertex added to a plan takes its input (`entry`) and gives its output (`exit`): the
/// same vertex for a node, the entry and exit vertices for an inlined sub-workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// The vertex that receives the fragment's input.
    pub entry: VertexId,
    /// The vertex whose output is the fragment's output.
    pub exit: VertexId,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Runs one attempt of a node: decodes its input parts, calls it, encodes its output.
type Runner = Arc<dyn Fn(&[Bytes], Context) -> BoxFuture<Result<Bytes, Failure>> + Send + Sync>;

/// Picks the arm of a conditional from its vertex's encoded output (an enum): the arm's index
/// and the variant's encoded payload.
type Selector = Arc<dyn Fn(&[u8]) -> Result<(usize, Bytes), CodecError> + Send + Sync>;

/// Splits a for-each source's encoded collection into its items, each encoded on its own.
type Splitter = Arc<dyn Fn(&[u8]) -> Result<Vec<Bytes>, CodecError> + Send + Sync>;

/// What `workflow!` generates for a conditional: decodes the conditional vertex's output with
/// the codec and returns the index of the arm of its variant and the variant's encoded payload.
pub type SelectFn<C> = fn(&C, &[u8]) -> Result<(usize, Bytes), CodecError>;

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
    options: NodeOptions,
    depth: usize,
    feed: Feed,
    successors: Vec<VertexId>,
    route: Route,
    run: Runner,
}

impl PlanVertex {
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

    /// Starts one attempt on encoded input parts (one per parameter, or one holding the whole
    /// input). The future is not yet guarded against panics or timeouts: see `exec`.
    pub(crate) fn start(&self, parts: &[Bytes], ctx: Context) -> BoxFuture<Result<Bytes, Failure>> {
        (self.run)(parts, ctx)
    }
}

/// One run of a vertex within a request: the vertex, and the item it runs for in each `each`
/// body around it (outermost first; empty outside any).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Instance {
    vertex: VertexId,
    items: Vec<u32>,
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
    fn next(&self, vertex: VertexId, depth: usize, item: Option<u32>) -> Self {
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
        Some(Self { vertex, items })
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
    /// every item the source produced, framed as one sequence ([`Plan::frame`]).
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

/// What one completed instance sets going: computed by [`Plan::advance`], applied by the
/// engine atomically (the Redis engine in one script).
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

/// A workflow ready to execute: flattened and bound to a codec.
pub struct Plan {
    flow: &'static str,
    hash: u64,
    vertices: Vec<PlanVertex>,
    entry: VertexId,
    exit: VertexId,
    frame: Framer,
}

impl Plan {
    /// Flattens workflow `W` into a plan whose vertices encode with `codec`.
    pub fn new<W: Workflow, C: Codec>(codec: C) -> Self {
        let mut builder = PlanBuilder {
            codec: codec.clone(),
            vertices: Vec::new(),
            scope: Vec::new(),
            depth: 0,
            branches: Vec::new(),
        };
        let fragment = W::build(&mut builder);
        builder.vertices[fragment.entry].feed = Feed::Request;
        builder.finish_branches();
        Self {
            flow: W::NAME,
            hash: W::graph().structural_hash(),
            vertices: builder.vertices,
            entry: fragment.entry,
            exit: fragment.exit,
            frame: Arc::new(move |parts| codec.tuple(parts)),
        }
    }

    /// The workflow's name.
    pub fn flow(&self) -> &'static str {
        self.flow
    }

    /// The workflow graph's [structural hash](crate::Graph::structural_hash).
    pub fn structural_hash(&self) -> u64 {
        self.hash
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
        let path = &self.vertices[instance.vertex].path;
        if instance.items.is_empty() {
            return Arc::clone(path);
        }
        let mut name = path.to_string();
        for item in &instance.items {
            name.push_str(&format!("[{item}]"));
        }
        Arc::from(name)
    }

    /// Frames encoded values as one encoded sequence, with the plan's codec.
    pub fn frame(&self, parts: &[Bytes]) -> Bytes {
        (self.frame)(parts)
    }

    /// What an engine must gather to start `instance`.
    pub fn inputs_of(&self, instance: &Instance) -> Inputs {
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

    /// What the completion of `done` with `output` sets going: what to store, which instances
    /// get an arrival, which are skipped. Each instance must be reported once; engines that
    /// may see one twice (redelivery) deduplicate before calling this.
    ///
    /// Fails when a conditional's output or a for-each's collection cannot be decoded with
    /// the plan's codec, which fails the vertex.
    pub fn advance(&self, done: &Instance, output: Bytes) -> Result<Advance, CodecError> {
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
                let count = u32::try_from(items.len()).map_err(|_| {
                    CodecError::decode("plan", &"a for-each collection has more than 2^32 items")
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

/// The in-memory progress of one request: stored values and arrival counts. The embedded
/// engine keeps one per request; the Redis engine keeps the same in the request's hash.
#[derive(Debug, Default)]
pub struct Progress {
    values: HashMap<Slot, Bytes>,
    arrived: HashMap<Instance, u32>,
    sizes: HashMap<Instance, u32>,
}

impl Progress {
    /// Progress of a request with this input.
    pub fn new(input: Bytes) -> Self {
        let mut progress = Self::default();
        progress.values.insert(Slot::Input, input);
        progress
    }

    /// Applies an [`Advance`] (skipped instances aside, which only the request's state
    /// records) and returns the instances that thereby have all their inputs.
    pub fn apply(&mut self, advance: Advance) -> Vec<Instance> {
        self.values.extend(advance.store);
        self.sizes.extend(advance.sizes);
        let mut ready = Vec::new();
        for (instance, need) in advance.arrivals {
            let need = match need {
                Need::One => 1,
                Need::Count(n) => n,
                Need::Size => self.sizes.get(&instance).copied().unwrap_or(0),
            };
            let arrived = self.arrived.entry(instance.clone()).or_default();
            *arrived += 1;
            // Exactly at the need, as the Redis engine counts, so an instance is ready once.
            // An empty for-each's gather arrives once, with a size of 0.
            if *arrived == need.max(1) {
                ready.push(instance);
            }
        }
        ready
    }

    /// The encoded input parts of a ready instance; `None` if one is missing (an engine bug).
    pub fn inputs(&self, plan: &Plan, instance: &Instance) -> Option<Vec<Bytes>> {
        match plan.inputs_of(instance) {
            Inputs::Slots(slots) => slots.iter().map(|s| self.values.get(s).cloned()).collect(),
            Inputs::FirstOf(slots) => slots
                .iter()
                .find_map(|s| self.values.get(s).cloned())
                .map(|part| vec![part]),
            Inputs::Gather { exit, items } => {
                let count = self
                    .sizes
                    .get(&Instance::new(instance.vertex, items.clone()))
                    .copied()?;
                let parts = (0..count)
                    .map(|n| self.values.get(&Inputs::gathered(exit, &items, n)).cloned())
                    .collect::<Option<Vec<Bytes>>>()?;
                Some(vec![plan.frame(&parts)])
            }
        }
    }
}

/// A conditional waiting for [`Plan::new`] to work out which vertices each arm holds.
struct PendingBranch {
    vertex: VertexId,
    merge: VertexId,
}

/// One arm of a conditional, as `workflow!` declares it to [`PlanBuilder::branch`].
#[derive(Debug, Clone, Copy)]
pub struct ArmSpec<'a> {
    /// The fragments that take the variant's payload; empty for an arm that passes it
    /// straight to the merge vertex.
    pub entries: &'a [Fragment],
    /// The fragment whose output is the arm's output; `None` for an empty arm.
    pub exit: Option<Fragment>,
}

/// Assembles a [`Plan`]; driven by the code `workflow!` generates.
pub struct PlanBuilder<C> {
    codec: C,
    vertices: Vec<PlanVertex>,
    scope: Vec<&'static str>,
    depth: usize,
    branches: Vec<PendingBranch>,
}

impl<C: Codec> PlanBuilder<C> {
    /// Adds a vertex named `vertex` running node `N`.
    pub fn node<N: Node>(&mut self, vertex: &'static str) -> Fragment {
        let codec = self.codec.clone();
        let run: Runner = Arc::new(move |parts: &[Bytes], ctx: Context| {
            // Decoding happens before the future exists, so a retry re-decodes from the same
            // shared bytes instead of cloning the parts.
            let decoded = match parts {
                [whole] => N::Input::decode_with(&codec, whole),
                _ => N::Input::decode_with(&codec, &codec.tuple(parts)),
            };
            let input = match decoded {
                Ok(input) => input,
                Err(error) => return Box::pin(std::future::ready(Err(Failure::from(error)))),
            };
            let codec = codec.clone();
            Box::pin(async move {
                let output = N::call(input, ctx).await?;
                Ok(output.encode_with(&codec)?)
            })
        });
        let path = if self.scope.is_empty() {
            Arc::from(vertex)
        } else {
            Arc::from(format!("{}/{vertex}", self.scope.join("/")))
        };
        let id = self.vertices.len();
        self.vertices.push(PlanVertex {
            path,
            node: N::NAME,
            options: N::options(),
            depth: self.depth,
            feed: Feed::All(Vec::new()),
            successors: Vec::new(),
            route: Route::Plain,
            run,
        });
        Fragment {
            entry: id,
            exit: id,
        }
    }

    /// Inlines workflow `W` as the vertex named `vertex`: its vertices' paths get the prefix
    /// `vertex/`.
    pub fn subflow<W: Workflow>(&mut self, vertex: &'static str) -> Fragment {
        self.scope.push(vertex);
        let fragment = W::build(self);
        self.scope.pop();
        fragment
    }

    /// Vertices added from now until [`leave_each`](Self::leave_each) form the body of an
    /// `each`: they run once per item.
    pub fn enter_each(&mut self) {
        self.depth += 1;
    }

    /// Ends the body begun by [`enter_each`](Self::enter_each).
    pub fn leave_each(&mut self) {
        self.depth -= 1;
    }

    /// `from -> to`: the entry of `to` takes the output of `from`.
    pub fn connect(&mut self, from: Fragment, to: Fragment) {
        self.join(&[from], to);
    }

    /// `[from...] => to`: the entry of `to` takes the outputs of `from`, in order, as its
    /// parameters.
    pub fn join(&mut self, from: &[Fragment], to: Fragment) {
        self.feed(to.entry, Feed::All(from.iter().map(|f| f.exit).collect()));
        for f in from {
            self.vertices[f.exit].successors.push(to.entry);
        }
    }

    /// `from ? { Variant => arm, ... } -> merge`: `select` (generated by `workflow!` from the
    /// arms' variants) picks the arm for `from`'s output and encodes the variant's payload,
    /// which the arm's entries take; `merge` takes the output of the arm that ran. Arms are in
    /// the order of the indices `select` returns.
    pub fn branch(
        &mut self,
        from: Fragment,
        select: SelectFn<C>,
        arms: &[ArmSpec<'_>],
        merge: Fragment,
    ) {
        let vertex = from.exit;
        let mut feeds = Vec::new();
        let mut passes = false;
        let mut planned = Vec::new();
        for arm in arms {
            let targets = match arm.exit {
                Some(exit) => {
                    for entry in arm.entries {
                        self.feed(entry.entry, Feed::All(vec![vertex]));
                    }
                    self.vertices[exit.exit].successors.push(merge.entry);
                    feeds.push(exit.exit);
                    arm.entries.iter().map(|f| f.entry).collect()
                }
                None => {
                    passes = true;
                    vec![merge.entry]
                }
            };
            for &target in &targets {
                if !self.vertices[vertex].successors.contains(&target) {
                    self.vertices[vertex].successors.push(target);
                }
            }
            planned.push(Arm {
                targets,
                vertices: Vec::new(),
            });
        }
        if passes {
            feeds.push(vertex);
        }
        self.feed(merge.entry, Feed::First(feeds));
        let codec = self.codec.clone();
        self.vertices[vertex].route = Route::Branch {
            select: Arc::new(move |bytes| select(&codec, bytes)),
            arms: planned,
        };
        self.branches.push(PendingBranch {
            vertex,
            merge: merge.entry,
        });
    }

    /// `from -> each { body } => gather`: `from` outputs a `Vec<T>`; each item starts one
    /// instance of the body (whose entries must have been added between
    /// [`enter_each`](Self::enter_each) and [`leave_each`](Self::leave_each)), and `gather`
    /// takes the outputs of the body's exit, in item order, as a `Vec`.
    pub fn each<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static>(
        &mut self,
        from: Fragment,
        body: &[Fragment],
        body_exit: Fragment,
        gather: Fragment,
    ) {
        let source = from.exit;
        let depth = self.vertices[source].depth;
        for entry in body {
            debug_assert_eq!(self.vertices[entry.entry].depth, depth + 1);
            self.feed(entry.entry, Feed::Item(source));
            self.vertices[source].successors.push(entry.entry);
        }
        self.feed(gather.entry, Feed::Gather(body_exit.exit));
        self.vertices[body_exit.exit].successors.push(gather.entry);
        let codec = self.codec.clone();
        self.vertices[source].route = Route::Each {
            split: Arc::new(move |bytes| {
                let items: Vec<T> = codec.decode(bytes)?;
                items.iter().map(|item| codec.encode(item)).collect()
            }),
            body: body.iter().map(|f| f.entry).collect(),
            gather: gather.entry,
        };
    }

    fn feed(&mut self, vertex: VertexId, feed: Feed) {
        let target = &mut self.vertices[vertex];
        debug_assert!(
            target.feed == Feed::All(Vec::new()),
            "`workflow!` declares each input once"
        );
        target.feed = feed;
    }

    /// Works out, once the whole plan is wired, which vertices each arm of each conditional
    /// holds: those reached from the arm's targets at the conditional's depth, up to the merge.
    fn finish_branches(&mut self) {
        for branch in std::mem::take(&mut self.branches) {
            let depth = self.vertices[branch.vertex].depth;
            let Route::Branch { arms, .. } = &self.vertices[branch.vertex].route else {
                continue;
            };
            let reached: Vec<Vec<VertexId>> = arms
                .iter()
                .map(|arm| self.reach(&arm.targets, branch.merge, depth))
                .collect();
            if let Route::Branch { arms, .. } = &mut self.vertices[branch.vertex].route {
                for (arm, vertices) in arms.iter_mut().zip(reached) {
                    arm.vertices = vertices;
                }
            }
        }
    }

    fn reach(&self, from: &[VertexId], stop: VertexId, depth: usize) -> Vec<VertexId> {
        let mut seen = Vec::new();
        let mut todo: Vec<VertexId> = from.to_vec();
        while let Some(v) = todo.pop() {
            if v == stop || seen.contains(&v) || self.vertices[v].depth != depth {
                continue;
            }
            seen.push(v);
            todo.extend(&self.vertices[v].successors);
            if let Route::Each { gather, .. } = &self.vertices[v].route {
                todo.push(*gather);
            }
        }
        seen.sort_unstable();
        seen
    }
}
