//! The executable form of a workflow: its graph flattened (sub-workflows inlined), each vertex
//! holding a type-erased runner bound to a codec. Both engines schedule from a `Plan`: which
//! vertex feeds which parameter of which, and when a join is complete.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::codec::Codec;
use crate::context::Context;
use crate::error::Failure;
use crate::node::{Data as _, Node, NodeOptions};
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

/// One vertex of a [`Plan`].
pub struct PlanVertex {
    path: Arc<str>,
    node: &'static str,
    options: NodeOptions,
    inputs: Vec<VertexId>,
    successors: Vec<VertexId>,
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

    /// The vertices whose outputs are this vertex's parameters, in order; empty for the entry.
    pub fn inputs(&self) -> &[VertexId] {
        &self.inputs
    }

    /// The vertices that take this vertex's output.
    pub fn successors(&self) -> &[VertexId] {
        &self.successors
    }

    /// Starts one attempt on encoded input parts (one per parameter, or one holding the whole
    /// input). The future is not yet guarded against panics or timeouts: see `exec`.
    pub(crate) fn start(&self, parts: &[Bytes], ctx: Context) -> BoxFuture<Result<Bytes, Failure>> {
        (self.run)(parts, ctx)
    }
}

/// A workflow ready to execute: flattened and bound to a codec.
pub struct Plan {
    flow: &'static str,
    hash: u64,
    vertices: Vec<PlanVertex>,
    entry: VertexId,
    exit: VertexId,
}

impl Plan {
    /// Flattens workflow `W` into a plan whose vertices encode with `codec`.
    pub fn new<W: Workflow, C: Codec>(codec: C) -> Self {
        let mut builder = PlanBuilder {
            codec,
            vertices: Vec::new(),
            scope: Vec::new(),
        };
        let fragment = W::build(&mut builder);
        Self {
            flow: W::NAME,
            hash: W::graph().structural_hash(),
            vertices: builder.vertices,
            entry: fragment.entry,
            exit: fragment.exit,
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

    /// Records that `done` produced its output and returns the successors that thereby have
    /// all their inputs. Each vertex is returned once per request, however its parents
    /// complete, as long as each parent is reported once: engines that may see a parent twice
    /// (redelivery) deduplicate before calling this.
    pub fn ready_after<'a>(
        &'a self,
        done: VertexId,
        arrived: &'a mut Arrivals,
    ) -> impl Iterator<Item = VertexId> + 'a {
        self.vertices[done]
            .successors
            .iter()
            .copied()
            .filter(move |&next| {
                arrived.0[next] += 1;
                arrived.0[next] as usize == self.vertices[next].inputs.len()
            })
    }

    /// Empty arrival counts for one request of this plan.
    pub fn arrivals(&self) -> Arrivals {
        Arrivals(vec![0; self.vertices.len()])
    }
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&str> = self.vertices.iter().map(|v| &*v.path).collect();
        f.debug_struct("Plan")
            .field("flow", &self.flow)
            .field("vertices", &paths)
            .field("entry", &self.entry)
            .field("exit", &self.exit)
            .finish()
    }
}

/// How many parents of each vertex have completed, in one request.
#[derive(Debug, Clone)]
pub struct Arrivals(Vec<u32>);

/// Assembles a [`Plan`]; driven by the code `workflow!` generates.
pub struct PlanBuilder<C> {
    codec: C,
    vertices: Vec<PlanVertex>,
    scope: Vec<&'static str>,
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
            inputs: Vec::new(),
            successors: Vec::new(),
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

    /// `from -> to`: the entry of `to` takes the output of `from`.
    pub fn connect(&mut self, from: Fragment, to: Fragment) {
        self.join(&[from], to);
    }

    /// `[from...] => to`: the entry of `to` takes the outputs of `from`, in order, as its
    /// parameters.
    pub fn join(&mut self, from: &[Fragment], to: Fragment) {
        let target = &mut self.vertices[to.entry];
        debug_assert!(
            target.inputs.is_empty(),
            "`workflow!` declares each input once"
        );
        target.inputs = from.iter().map(|f| f.exit).collect();
        for f in from {
            self.vertices[f.exit].successors.push(to.entry);
        }
    }
}
