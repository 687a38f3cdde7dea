//! Differential test of the two engines: random DAGs (chains, fan-outs with joins, conditionals,
//! for-each bodies, nested), run on the embedded engine and on the Redis engine with the same
//! completion order, must make the same instances ready at every step and end in the same
//! state.
//!
//! Every node waits at a gate of its own (per request and vertex instance) until the test
//! releases it. The test drives a request step by step: it waits until every instance the
//! engine made ready has reached its gate (its state shows no instance queued or running that
//! is not waiting there), records that ready set, releases one instance chosen at random, and
//! waits until its end is recorded. The embedded engine's run records the sequence; the Redis
//! engine's run replays the same choices and must show the same ready set at each step. Then
//! the final states must agree: the request's status, output and failure, and each instance's
//! status and attempts. Which conditional arm runs, how many items a for-each has and which
//! vertex fails follow from the request's input, so each shape runs with a few inputs.

mod support;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use goflow::__private::Bytes;
use goflow::__private::{ArmSpec, BuildPlan, Fragment, Plan, PlanBuilder};
use goflow::codec::{Codec, CodecError, MsgPack};
use goflow::dsl::Step;
use goflow::graph::{Graph, GraphEdge, GraphVertex};
use goflow::prelude::*;
use goflow::redis::RedisEngineBuilder;
use goflow::request::{RequestState, RequestStatus, VertexStatus};
use goflow::{EmbeddedEngine, Engine, RequestId};
use serde::{Deserialize, Serialize};

/// How many random shapes, and how many inputs each runs with.
const SHAPES: usize = 12;
const INPUTS: u64 = 4;

// ---------------------------------------------------------------------------------------------
// Gates.

/// Instances waiting at their gate, and those released, by (request, instance name).
static WAITING: LazyLock<Mutex<HashSet<(String, String)>>> = LazyLock::new(Mutex::default);
static RELEASED: LazyLock<Mutex<HashSet<(String, String)>>> = LazyLock::new(Mutex::default);

/// Leaves the waiting set when dropped: an attempt cancelled at its gate is no longer there.
struct AtGate((String, String));

impl Drop for AtGate {
    fn drop(&mut self) {
        WAITING.lock().unwrap().remove(&self.0);
    }
}

/// Waits at this attempt's gate until the test releases it.
async fn gate(ctx: &Context) {
    let key = (
        ctx.request_id().as_str().to_owned(),
        ctx.vertex().to_owned(),
    );
    WAITING.lock().unwrap().insert(key.clone());
    let _at = AtGate(key.clone());
    while !RELEASED.lock().unwrap().contains(&key) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn waiting(id: &RequestId) -> BTreeSet<String> {
    WAITING
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| r == id.as_str())
        .map(|(_, v)| v.clone())
        .collect()
}

fn release(id: &RequestId, instance: &str) {
    RELEASED
        .lock()
        .unwrap()
        .insert((id.as_str().to_owned(), instance.to_owned()));
}

// ---------------------------------------------------------------------------------------------
// Payloads and nodes.

/// What flows between vertices: the request's seed, and the vertices it went through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    seed: u64,
    path: Vec<String>,
}

impl Trace {
    fn through(mut self, vertex: &str) -> Self {
        self.path.push(vertex.to_owned());
        self
    }

    /// A number from the seed and a vertex name: the same on both engines.
    fn roll(&self, vertex: &str, modulo: u64) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seed;
        for b in vertex.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h % modulo
    }
}

/// A conditional's choice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Pick {
    /// The first arm.
    Left(Trace),
    /// The second arm.
    Right(Trace),
}

#[node]
async fn tag(ctx: Context, trace: Trace) -> Result<Trace, NodeError> {
    gate(&ctx).await;
    // About one vertex in twenty fails its request, depending on the input (never the entry,
    // which would end the run before it began).
    if ctx.vertex() != "v0" && trace.roll(ctx.vertex(), 20) == 0 {
        return Err(NodeError::permanent(format!("{} fails", ctx.vertex())));
    }
    Ok(trace.through(ctx.vertex()))
}

#[node]
async fn join2(ctx: Context, a: Trace, b: Trace) -> Trace {
    gate(&ctx).await;
    Trace {
        seed: a.seed,
        path: [a.path, b.path, vec![ctx.vertex().to_owned()]].concat(),
    }
}

#[node]
async fn join3(ctx: Context, a: Trace, b: Trace, c: Trace) -> Trace {
    gate(&ctx).await;
    Trace {
        seed: a.seed,
        path: [a.path, b.path, c.path, vec![ctx.vertex().to_owned()]].concat(),
    }
}

#[node]
async fn choose(ctx: Context, trace: Trace) -> Pick {
    gate(&ctx).await;
    let left = trace.roll(ctx.vertex(), 2) == 0;
    let trace = trace.through(ctx.vertex());
    if left {
        Pick::Left(trace)
    } else {
        Pick::Right(trace)
    }
}

#[node]
async fn fan(ctx: Context, trace: Trace) -> Vec<Trace> {
    gate(&ctx).await;
    let items = trace.roll(ctx.vertex(), 4);
    let trace = trace.through(ctx.vertex());
    (0..items)
        .map(|i| trace.clone().through(&format!("#{i}")))
        .collect()
}

#[node]
async fn gather(ctx: Context, items: Vec<Trace>) -> Trace {
    gate(&ctx).await;
    Trace {
        seed: items.first().map_or(0, |t| t.seed),
        path: items
            .into_iter()
            .flat_map(|t| t.path)
            .chain([ctx.vertex().to_owned()])
            .collect(),
    }
}

/// The arm of a [`choose`] vertex's output, with its payload.
fn select<C: Codec>(codec: &C, bytes: &[u8]) -> Result<(usize, Bytes), CodecError> {
    match codec.decode::<Pick>(bytes)? {
        Pick::Left(trace) => Ok((0, codec.encode(&trace)?)),
        Pick::Right(trace) => Ok((1, codec.encode(&trace)?)),
    }
}

// ---------------------------------------------------------------------------------------------
// Random shapes.

#[derive(Debug, Clone)]
enum Shape {
    Leaf,
    Chain(Vec<Shape>),
    /// A source, 2 or 3 branches, a join.
    Fanout(Vec<Shape>),
    /// A conditional: its left arm, and its right arm (or none: the payload goes straight on).
    Cond(Box<Shape>, Option<Box<Shape>>),
    /// A for-each source, its body, the gather.
    Each(Box<Shape>),
}

fn shape(rng: &mut fastrand::Rng, depth: u32) -> Shape {
    // The outermost shape is never a single vertex; the innermost always is.
    let pick = match depth {
        0 => rng.u32(3..10),
        1 | 2 => rng.u32(0..10),
        _ => 0,
    };
    match pick {
        0..=2 => Shape::Leaf,
        3 | 4 => Shape::Chain(
            (0..rng.usize(2..=3))
                .map(|_| shape(rng, depth + 1))
                .collect(),
        ),
        5 | 6 => Shape::Fanout(
            (0..rng.usize(2..=3))
                .map(|_| shape(rng, depth + 1))
                .collect(),
        ),
        7 | 8 => Shape::Cond(
            Box::new(shape(rng, depth + 1)),
            rng.bool().then(|| Box::new(shape(rng, depth + 1))),
        ),
        _ => Shape::Each(Box::new(shape(rng, depth + 1))),
    }
}

/// A random workflow: the shape of seed `S`, wrapped in an entry and an exit vertex.
#[derive(Debug)]
pub struct Random<const S: usize>;

const NAMES: [&str; SHAPES] = [
    "random0", "random1", "random2", "random3", "random4", "random5", "random6", "random7",
    "random8", "random9", "random10", "random11",
];

fn shape_of(seed: usize) -> Shape {
    let mut rng = fastrand::Rng::with_seed(seed as u64 * 7919 + 13);
    Shape::Chain(vec![Shape::Leaf, shape(&mut rng, 0), Shape::Leaf])
}

/// Builds a shape into a plan (when given one) and into its graph, in one walk: vertex `n` of
/// the graph is vertex `n` of the plan, as the plan numbers its vertices in the order they are
/// added.
struct Build<'a, C: Codec> {
    plan: Option<&'a mut PlanBuilder<C>>,
    vertices: Vec<GraphVertex>,
    edges: Vec<GraphEdge>,
}

impl<C: Codec> Build<'_, C> {
    fn vertex<N: Step>(&mut self) -> Fragment {
        let id = self.vertices.len();
        let name: &'static str = Box::leak(format!("v{id}").into_boxed_str());
        self.vertices.push(GraphVertex::new(name, N::describe()));
        match self.plan.as_deref_mut() {
            Some(plan) => N::add_to(plan, name),
            None => Fragment {
                entry: id,
                exit: id,
            },
        }
    }

    /// Applies `wire` to the plan, if there is one.
    fn wire(&mut self, wire: impl FnOnce(&mut PlanBuilder<C>)) {
        if let Some(plan) = self.plan.as_deref_mut() {
            wire(plan);
        }
    }

    fn then(&mut self, from: Fragment, to: Fragment) {
        self.wire(|plan| plan.connect(from, to));
        self.edges.push(GraphEdge::then(from.exit, to.entry));
    }

    fn shape(&mut self, shape: &Shape) -> Fragment {
        match shape {
            Shape::Leaf => self.vertex::<tag>(),
            Shape::Chain(parts) => {
                let mut parts = parts.iter();
                let first = self.shape(parts.next().expect("a chain has parts"));
                let mut last = first;
                for part in parts {
                    let next = self.shape(part);
                    self.then(last, next);
                    last = next;
                }
                Fragment {
                    entry: first.entry,
                    exit: last.exit,
                }
            }
            Shape::Fanout(branches) => {
                let source = self.vertex::<tag>();
                let branches: Vec<Fragment> = branches
                    .iter()
                    .map(|branch| {
                        let branch = self.shape(branch);
                        self.then(source, branch);
                        branch
                    })
                    .collect();
                let join = if branches.len() == 2 {
                    self.vertex::<join2>()
                } else {
                    self.vertex::<join3>()
                };
                self.wire(|plan| plan.join(&branches, join));
                for (port, branch) in branches.iter().enumerate() {
                    self.edges
                        .push(GraphEdge::join(branch.exit, join.entry, port));
                }
                Fragment {
                    entry: source.entry,
                    exit: join.exit,
                }
            }
            Shape::Cond(left, right) => {
                let chooser = self.vertex::<choose>();
                let left = self.shape(left);
                let right = right.as_ref().map(|right| self.shape(right));
                let merge = self.vertex::<tag>();
                let arms = [
                    ArmSpec {
                        entries: std::slice::from_ref(&left),
                        exit: Some(left),
                    },
                    match &right {
                        Some(right) => ArmSpec {
                            entries: std::slice::from_ref(right),
                            exit: Some(*right),
                        },
                        None => ArmSpec {
                            entries: &[],
                            exit: None,
                        },
                    },
                ];
                self.wire(|plan| plan.branch(chooser, select::<C>, &arms, merge));
                self.edges
                    .push(GraphEdge::arm(chooser.exit, left.entry, "Left"));
                self.edges
                    .push(GraphEdge::merge(left.exit, merge.entry, "Left"));
                match right {
                    Some(right) => {
                        self.edges
                            .push(GraphEdge::arm(chooser.exit, right.entry, "Right"));
                        self.edges
                            .push(GraphEdge::merge(right.exit, merge.entry, "Right"));
                    }
                    None => self
                        .edges
                        .push(GraphEdge::arm(chooser.exit, merge.entry, "Right")),
                }
                Fragment {
                    entry: chooser.entry,
                    exit: merge.exit,
                }
            }
            Shape::Each(body) => {
                let source = self.vertex::<fan>();
                self.wire(PlanBuilder::enter_each);
                let body = self.shape(body);
                self.wire(PlanBuilder::leave_each);
                let gathering = self.vertex::<gather>();
                self.wire(|plan| plan.each::<Trace>(source, &[body], body, gathering));
                self.edges.push(GraphEdge::scatter(source.exit, body.entry));
                self.edges
                    .push(GraphEdge::gather(body.exit, gathering.entry));
                Fragment {
                    entry: source.entry,
                    exit: gathering.exit,
                }
            }
        }
    }
}

/// The graph of shape `seed`, built once.
fn graph_of(seed: usize) -> &'static Graph {
    static GRAPHS: LazyLock<Mutex<HashMap<usize, &'static Graph>>> = LazyLock::new(Mutex::default);
    let mut graphs = GRAPHS.lock().unwrap();
    graphs.entry(seed).or_insert_with(|| {
        let mut build = Build::<MsgPack> {
            plan: None,
            vertices: Vec::new(),
            edges: Vec::new(),
        };
        let whole = build.shape(&shape_of(seed));
        let (vertices, edges) = (build.vertices, build.edges);
        Box::leak(Box::new(Graph::new(
            NAMES[seed],
            vertices,
            edges,
            whole.entry,
            whole.exit,
        )))
    })
}

impl<const S: usize> Workflow for Random<S> {
    const NAME: &'static str = NAMES[S];
    type Input = Trace;
    type Output = Trace;

    fn graph() -> &'static Graph {
        graph_of(S)
    }
}

impl<const S: usize> BuildPlan for Random<S> {
    fn build<C: Codec>(plan: &mut PlanBuilder<C>) -> Fragment {
        let mut build = Build {
            plan: Some(plan),
            vertices: Vec::new(),
            edges: Vec::new(),
        };
        build.shape(&shape_of(S))
    }

    fn local_plan() -> &'static Arc<Plan> {
        static PLANS: LazyLock<Mutex<HashMap<usize, &'static Arc<Plan>>>> =
            LazyLock::new(Mutex::default);
        let mut plans = PLANS.lock().unwrap();
        plans
            .entry(S)
            .or_insert_with(|| Box::leak(Box::new(Arc::new(Plan::new::<Self, MsgPack>(MsgPack)))))
    }
}

macro_rules! each_shape {
    ($apply:ident) => {
        $apply!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    };
}

fn register_all(builder: RedisEngineBuilder) -> RedisEngineBuilder {
    macro_rules! register {
        ($($s:literal),*) => { builder $(.register::<Random<$s>>())* };
    }
    each_shape!(register)
}

// ---------------------------------------------------------------------------------------------
// Driving a request step by step.

/// One run of a request: the ready set at each step and the instance released from it, and
/// the final state.
#[derive(Debug)]
struct Run {
    steps: Vec<(BTreeSet<String>, String)>,
    state: RequestState,
}

/// What of a final state both engines must agree on: the request's status, failure and
/// output, and each instance's status and attempts (not times nor workers).
fn comparable(state: &RequestState) -> impl PartialEq + std::fmt::Debug {
    let vertices: Vec<(String, VertexStatus, u32)> = state
        .vertices
        .iter()
        .map(|v| (v.vertex.clone(), v.status, v.attempts))
        .collect();
    let output: Option<Trace> = state
        .output
        .as_ref()
        .map(|bytes| MsgPack.decode(bytes).expect("a trace"));
    (state.status, state.failure.clone(), output, vertices)
}

/// Runs request `id` of `W` on `engine`, releasing at each step the instance `choose` picks
/// from the ready set (given the step number).
async fn drive<W: Workflow<Input = Trace>>(
    engine: &impl Engine,
    id: &RequestId,
    input: Trace,
    mut choose: impl FnMut(usize, &BTreeSet<String>) -> String,
) -> Run {
    assert!(engine.submit_as::<W>(id.clone(), &input).await.unwrap());
    let mut steps = Vec::new();
    loop {
        // At rest: every instance queued or running waits at its gate, or the request ended.
        let mut ready = BTreeSet::new();
        let mut ended = None;
        support::wait_until(
            "the ready instances reach their gates",
            Duration::from_secs(60),
            async || {
                let state = engine.status::<W>(id).await.unwrap();
                if state.status.is_final() {
                    ended = Some(state);
                    return true;
                }
                let busy: BTreeSet<String> = state
                    .vertices
                    .iter()
                    .filter(|v| matches!(v.status, VertexStatus::Queued | VertexStatus::Running))
                    .map(|v| v.vertex.clone())
                    .collect();
                ready = waiting(id);
                !busy.is_empty() && busy == ready
            },
        )
        .await;
        if let Some(state) = ended {
            return Run { steps, state };
        }
        let released = choose(steps.len(), &ready);
        assert!(
            ready.contains(&released),
            "{released} is not ready: {ready:?}"
        );
        release(id, &released);
        steps.push((ready, released.clone()));
        support::wait_until(
            "the released instance ends",
            Duration::from_secs(60),
            async || {
                let state = engine.status::<W>(id).await.unwrap();
                state.status.is_final()
                    || state
                        .vertices
                        .iter()
                        .any(|v| v.vertex == released && v.status.is_final())
            },
        )
        .await;
    }
}

/// Runs shape `W` with every input on both engines and compares; returns how each run ended.
async fn compare<W: Workflow<Input = Trace, Output = Trace>>(
    embedded: &EmbeddedEngine,
    redis: &goflow::redis::RedisEngine,
) -> Vec<RequestStatus> {
    let mut ends = Vec::new();
    for n in 0..INPUTS {
        let input = Trace {
            seed: Trace {
                seed: n,
                path: Vec::new(),
            }
            .roll(W::NAME, u64::MAX),
            path: Vec::new(),
        };
        let mut rng = fastrand::Rng::with_seed(n + 97 * W::NAME.len() as u64);
        let first = drive::<W>(
            embedded,
            &RequestId::generate(),
            input.clone(),
            |_, ready| {
                let ready: Vec<&String> = ready.iter().collect();
                ready[rng.usize(..ready.len())].clone()
            },
        )
        .await;
        let order: Vec<String> = first
            .steps
            .iter()
            .map(|(_, chosen)| chosen.clone())
            .collect();
        let second = drive::<W>(redis, &RequestId::generate(), input, |step, _| {
            order.get(step).cloned().unwrap_or_default()
        })
        .await;
        let ready = |run: &Run| run.steps.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>();
        assert_eq!(
            ready(&first),
            ready(&second),
            "{} input {n}: the engines made different instances ready (embedded first)",
            W::NAME
        );
        assert_eq!(
            comparable(&first.state),
            comparable(&second.state),
            "{} input {n}: the engines ended in different states (embedded first)\n{:#?}",
            W::NAME,
            W::graph().to_mermaid()
        );
        assert!(first.state.vertices.iter().all(|v| v.status.is_final()));
        println!(
            "{} input {n}: {} steps, {} instances, ended {}",
            W::NAME,
            first.steps.len(),
            first.state.vertices.len(),
            first.state.status
        );
        ends.push(first.state.status);
    }
    ends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_dags_make_the_same_instances_ready_and_end_alike_on_both_engines() {
    let embedded = EmbeddedEngine::new();
    let harness =
        support::engines::RedisHarness::start_with("differential", register_all, 32).await;
    let mut ends = Vec::new();
    macro_rules! compare_all {
        ($($s:literal),*) => { $( ends.extend(compare::<Random<$s>>(&embedded, &harness.engine).await); )* };
    }
    each_shape!(compare_all);
    harness.finish().await;
    // The shapes and inputs exercise both ends a request can reach on its own.
    for status in [RequestStatus::Completed, RequestStatus::Failed] {
        assert!(ends.contains(&status), "no run ended {status}: {ends:?}");
    }
}
