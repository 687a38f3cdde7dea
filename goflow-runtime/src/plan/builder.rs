//! [`PlanBuilder`], which the code `workflow!` generates drives to assemble a
//! [`Plan`](super::Plan). Kept apart from the plan because only construction needs it: the
//! wiring of feeds, successors and routes, and the pass that works out which vertices each
//! conditional's arms hold.

use std::sync::Arc;

use bytes::Bytes;

use super::{Arm, Feed, PlanVertex, Route, Runner, VertexId};
use crate::codec::{Codec, CodecError};
use crate::context::Context;
use crate::error::Failure;
use crate::limits::Limits;
use crate::metrics::AttemptKeys;
use crate::node::{Data, Node};
use crate::workflow::Workflow;

/// Where a vertex added to a plan takes its input (`entry`) and gives its output (`exit`): the
/// same vertex for a node, the entry and exit vertices for an inlined sub-workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// The vertex that receives the fragment's input.
    pub entry: VertexId,
    /// The vertex whose output is the fragment's output.
    pub exit: VertexId,
}

/// What `workflow!` generates for a conditional: decodes the conditional vertex's output with
/// the codec and returns the index of the arm of its variant and the variant's encoded payload.
pub type SelectFn<C> = fn(&C, &[u8]) -> Result<(usize, Bytes), CodecError>;

/// A conditional waiting for [`finish`](PlanBuilder::finish) to work out which vertices each
/// arm holds.
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

/// Assembles a [`Plan`](super::Plan); driven by the code `workflow!` generates.
pub struct PlanBuilder<C> {
    codec: C,
    limits: Limits,
    /// The workflow and the version of its graph, which label its vertices' metrics.
    flow: &'static str,
    version: Arc<str>,
    vertices: Vec<PlanVertex>,
    scope: Vec<&'static str>,
    depth: usize,
    branches: Vec<PendingBranch>,
}

impl<C: Codec> std::fmt::Debug for PlanBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanBuilder")
            .field("codec", &C::NAME)
            .field("vertices", &self.vertices)
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

impl<C: Codec> PlanBuilder<C> {
    /// An empty builder of version `version` of `flow`, whose vertices will encode with
    /// `codec`.
    pub(super) fn new(codec: C, limits: Limits, flow: &'static str, version: Arc<str>) -> Self {
        Self {
            codec,
            limits,
            flow,
            version,
            vertices: Vec::new(),
            scope: Vec::new(),
            depth: 0,
            branches: Vec::new(),
        }
    }

    /// The wired vertices, once the workflow is built: `entry` takes the request's input, and
    /// each conditional knows which vertices its arms hold.
    pub(super) fn finish(mut self, entry: VertexId) -> Vec<PlanVertex> {
        self.vertices[entry].feed = Feed::Request;
        self.finish_branches();
        self.vertices
    }

    /// Adds a vertex named `vertex` running node `N`.
    pub fn node<N: Node>(&mut self, vertex: &'static str) -> Fragment {
        let codec = self.codec.clone();
        let max_output = self.limits.max_output_bytes;
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
                let output = N::call(input, ctx).await?.encode_with(&codec)?;
                if output.len() > max_output {
                    return Err(Failure::Limit(format!(
                        "an output of {} bytes, more than the limit of {max_output} (Limits::max_output_bytes)",
                        output.len()
                    )));
                }
                Ok(output)
            })
        });
        let path = if self.scope.is_empty() {
            Arc::from(vertex)
        } else {
            Arc::from(format!("{}/{vertex}", self.scope.join("/")))
        };
        let id = self.vertices.len();
        self.vertices.push(PlanVertex {
            meters: AttemptKeys::new(self.flow, &self.version, &path),
            path,
            node: N::NAME,
            types: (
                std::any::type_name::<N::Input>(),
                std::any::type_name::<N::Output>(),
            ),
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
