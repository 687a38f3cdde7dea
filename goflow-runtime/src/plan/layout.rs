//! What reading a request's stored state needs of its plan: each vertex's path and depth (how
//! many `each` bodies it sits in), in plan order, and the exit. A plan has its own; the Redis
//! engine keeps each version's beside its graph, so that an engine of one version reads, with
//! the right names, the state of a request pinned to another (whose vertex numbers mean other
//! vertices).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Instance, VertexId};

/// The paths and depths of a plan's vertices, and its exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Layout {
    vertices: Vec<(Arc<str>, usize)>,
    exit: VertexId,
}

impl Layout {
    pub(crate) fn new(vertices: Vec<(Arc<str>, usize)>, exit: VertexId) -> Self {
        Self { vertices, exit }
    }

    /// A layout of `len` vertices known by their numbers only (`#3`), none in an `each` body,
    /// the last the exit: how the state of a request is read whose version's layout is not
    /// known (none of its workers could write it).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn unnamed(len: usize) -> Self {
        Self {
            vertices: (0..len).map(|i| (Arc::from(format!("#{i}")), 0)).collect(),
            exit: len.saturating_sub(1),
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
