//! What reading a request's stored state needs of its plan: each vertex's path and depth (how
//! many `each` bodies it sits in), in plan order, and the exit. A plan has its own; the Redis
//! engine keeps each version's beside its graph, so that an engine of one version reads, with
//! the right names, the state of a request pinned to another (whose vertex numbers mean other
//! vertices).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Instance, VertexId};

/// The paths and depths of a plan's vertices, and its exit; and, to tell whether a request
/// can move from one version to another (see [`Migration`](super::Migration)), what each
/// vertex runs and how it is fed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Layout {
    vertices: Vec<(Arc<str>, usize)>,
    exit: VertexId,
    /// Each vertex's [`Signature`], in plan order; empty when not known (a layout of
    /// numbers only, or one written by an earlier goflow).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    signatures: Vec<Signature>,
}

/// What a vertex is, besides its place: what a request's progress there means. Two vertices of
/// two versions with the same path and the same signature hold the same thing for a request,
/// so its state there carries over. Feeds name their parents by path, so that signatures
/// compare across versions whose vertex numbers differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Signature {
    /// The node it runs.
    pub(crate) node: Arc<str>,
    /// The node's input type, as the compiler names it.
    pub(crate) input: Arc<str>,
    /// The node's output type, as the compiler names it.
    pub(crate) output: Arc<str>,
    /// Where it takes its input.
    pub(crate) feed: FeedShape,
    /// What its output sets going: `plain`, `branch` (a conditional) or `each` (a for-each
    /// source).
    pub(crate) route: Arc<str>,
}

/// A [`Feed`](super::Feed) with its parents named by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "from", rename_all = "snake_case")]
pub(crate) enum FeedShape {
    /// The request's input.
    Request,
    /// The outputs of these vertices, in order.
    All(Vec<Arc<str>>),
    /// The first of these vertices' outputs that exists (the vertex after a conditional).
    First(Vec<Arc<str>>),
    /// One item of this for-each source's collection.
    Item(Arc<str>),
    /// The outputs of every instance of this for-each body's exit.
    Gather(Arc<str>),
}

impl FeedShape {
    /// The parents named, in order.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn parents(&self) -> &[Arc<str>] {
        match self {
            FeedShape::Request => &[],
            FeedShape::All(from) | FeedShape::First(from) => from,
            FeedShape::Item(from) | FeedShape::Gather(from) => std::slice::from_ref(from),
        }
    }
}

impl Layout {
    pub(crate) fn new(
        vertices: Vec<(Arc<str>, usize)>,
        exit: VertexId,
        signatures: Vec<Signature>,
    ) -> Self {
        Self {
            vertices,
            exit,
            signatures,
        }
    }

    /// The path of vertex `vertex`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn path(&self, vertex: VertexId) -> &Arc<str> {
        &self.vertices[vertex].0
    }

    /// The vertex at `path`, if there is one.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn find(&self, path: &str) -> Option<VertexId> {
        self.vertices.iter().position(|(p, _)| &**p == path)
    }

    #[cfg(test)]
    pub(crate) fn signatures_mut(&mut self) -> &mut [Signature] {
        &mut self.signatures
    }

    /// Vertex `vertex`'s signature, if known.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn signature(&self, vertex: VertexId) -> Option<&Signature> {
        self.signatures.get(vertex)
    }

    /// A layout of `len` vertices known by their numbers only (`#3`), none in an `each` body,
    /// the last the exit: how the state of a request is read whose version's layout is not
    /// known (none of its workers could write it).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn unnamed(len: usize) -> Self {
        Self {
            vertices: (0..len).map(|i| (Arc::from(format!("#{i}")), 0)).collect(),
            exit: len.saturating_sub(1),
            signatures: Vec::new(),
        }
    }

    /// How many vertices.
    #[allow(clippy::len_without_is_empty)]
    pub(crate) fn len(&self) -> usize {
        self.vertices.len()
    }

    /// The depth of vertex `vertex`: how many `each` bodies it sits in.
    pub(crate) fn depth(&self, vertex: VertexId) -> usize {
        self.vertices[vertex].1
    }

    /// The exit vertex.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn exit(&self) -> VertexId {
        self.exit
    }

    /// The name of `instance`: its vertex's path, followed by its item index in each `each`
    /// around it (`verify[3]`).
    pub(crate) fn name_of(&self, instance: &Instance) -> Arc<str> {
        let path = &self.vertices[instance.vertex].0;
        if instance.items.is_empty() {
            return Arc::clone(path);
        }
        let mut name = path.to_string();
        for item in &instance.items {
            name.push_str(&format!("[{item}]"));
        }
        Arc::from(name)
    }
}
