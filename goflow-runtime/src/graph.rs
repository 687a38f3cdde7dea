//! A workflow's graph as data: vertices, edges, a stable structural hash, and renderings as
//! Mermaid and Graphviz DOT.

use std::fmt::Write as _;

use serde::Serialize;

use crate::node::NodeOptions;

/// The shape of a workflow as written in `workflow!`. Sub-workflows appear as one vertex
/// holding their own graph.
#[derive(Debug, Serialize)]
pub struct Graph {
    name: &'static str,
    vertices: Vec<GraphVertex>,
    edges: Vec<GraphEdge>,
    entry: usize,
    exit: usize,
    #[serde(serialize_with = "hex")]
    hash: u64,
}

/// One vertex of a [`Graph`].
#[derive(Debug, Serialize)]
pub struct GraphVertex {
    /// The vertex name: the node's name in the DSL, or the alias after `as`.
    pub name: &'static str,
    /// What runs there.
    #[serde(flatten)]
    pub kind: VertexKind,
}

/// What a vertex runs.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VertexKind {
    /// A node.
    Node {
        /// The node's name (its `name = "..."` option, else its function's name).
        node: &'static str,
        /// Its retries, timeout and backoff.
        options: NodeOptions,
    },
    /// A workflow used as a vertex.
    Flow {
        /// The sub-workflow's graph.
        graph: &'static Graph,
    },
}

/// An edge of a [`Graph`]: `to` takes the output of `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GraphEdge {
    /// Index of the producing vertex.
    pub from: usize,
    /// Index of the consuming vertex.
    pub to: usize,
    /// For a join (`=>`), which parameter of `to` this edge feeds, from 0; `None` for `->`.
    pub port: Option<usize>,
}

impl Graph {
    /// Builds a graph; called by the code `workflow!` generates.
    pub fn new(
        name: &'static str,
        vertices: Vec<GraphVertex>,
        edges: Vec<GraphEdge>,
        entry: usize,
        exit: usize,
    ) -> Self {
        let hash = structural_hash(&vertices, &edges, entry, exit);
        Self {
            name,
            vertices,
            edges,
            entry,
            exit,
            hash,
        }
    }

    /// The workflow's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The vertices, in order of first mention in the DSL.
    pub fn vertices(&self) -> &[GraphVertex] {
        &self.vertices
    }

    /// The edges.
    pub fn edges(&self) -> &[GraphEdge] {
        &self.edges
    }

    /// The vertex that receives the workflow's input.
    pub fn entry(&self) -> &GraphVertex {
        &self.vertices[self.entry]
    }

    /// The vertex whose output is the workflow's output.
    pub fn exit(&self) -> &GraphVertex {
        &self.vertices[self.exit]
    }

    /// A hash of the shape (vertex names, what each runs, edges; sub-workflows by their own
    /// hash), stable across builds, platforms and releases of goflow. Two deployments with the
    /// same hash run the same graph, which is what the Redis engine checks before resuming
    /// in-flight requests after an upgrade.
    pub fn structural_hash(&self) -> u64 {
        self.hash
    }

    /// Renders the graph as a Mermaid flowchart. Sub-workflows are subroutine-shaped vertices;
    /// join edges are labelled with the parameter they feed (from 1).
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for (i, vertex) in self.vertices.iter().enumerate() {
            let label = mermaid_escape(&vertex.label());
            let _ = match vertex.kind {
                VertexKind::Node { .. } => writeln!(out, "    v{i}[\"{label}\"]"),
                VertexKind::Flow { .. } => writeln!(out, "    v{i}[[\"{label}\"]]"),
            };
        }
        for edge in &self.edges {
            let _ = match edge.port {
                None => writeln!(out, "    v{} --> v{}", edge.from, edge.to),
                Some(port) => writeln!(out, "    v{} -->|{}| v{}", edge.from, port + 1, edge.to),
            };
        }
        out
    }

    /// Renders the graph in Graphviz DOT. Sub-workflows use the `component` shape; join edges
    /// are labelled with the parameter they feed (from 1).
    pub fn to_dot(&self) -> String {
        let mut out = format!(
            "digraph \"{}\" {{\n    rankdir=LR;\n",
            dot_escape(self.name)
        );
        for (i, vertex) in self.vertices.iter().enumerate() {
            let label = dot_escape(&vertex.label());
            let shape = match vertex.kind {
                VertexKind::Node { .. } => "box",
                VertexKind::Flow { .. } => "component",
            };
            let _ = writeln!(out, "    v{i} [label=\"{label}\", shape={shape}];");
        }
        for edge in &self.edges {
            let _ = match edge.port {
                None => writeln!(out, "    v{} -> v{};", edge.from, edge.to),
                Some(port) => writeln!(
                    out,
                    "    v{} -> v{} [label=\"{}\"];",
                    edge.from,
                    edge.to,
                    port + 1
                ),
            };
        }
        out.push_str("}\n");
        out
    }
}

impl GraphVertex {
    /// Builds a vertex; called by the code `workflow!` generates.
    pub fn new(name: &'static str, kind: VertexKind) -> Self {
        Self { name, kind }
    }

    /// `name`, plus what runs there when that differs from the name.
    fn label(&self) -> String {
        let runs = match self.kind {
            VertexKind::Node { node, .. } => node,
            VertexKind::Flow { graph } => graph.name,
        };
        if runs == self.name {
            self.name.to_owned()
        } else {
            format!("{}: {runs}", self.name)
        }
    }
}

impl GraphEdge {
    /// A `->` edge.
    pub const fn then(from: usize, to: usize) -> Self {
        Self {
            from,
            to,
            port: None,
        }
    }

    /// A join edge feeding parameter `port` of `to`.
    pub const fn join(from: usize, to: usize, port: usize) -> Self {
        Self {
            from,
            to,
            port: Some(port),
        }
    }
}

/// FNV-1a over a canonical text of the shape: tiny, dependency-free, and stable by definition
/// (std's `Hash` makes no promise across releases).
fn structural_hash(
    vertices: &[GraphVertex],
    edges: &[GraphEdge],
    entry: usize,
    exit: usize,
) -> u64 {
    let mut text = format!("entry={entry};exit={exit};");
    for vertex in vertices {
        let _ = match vertex.kind {
            VertexKind::Node { node, .. } => write!(text, "v:{}:node:{node};", vertex.name),
            VertexKind::Flow { graph } => {
                write!(text, "v:{}:flow:{:016x};", vertex.name, graph.hash)
            }
        };
    }
    for edge in edges {
        let _ = match edge.port {
            None => write!(text, "e:{}>{}:None;", edge.from, edge.to),
            Some(port) => write!(text, "e:{}>{}:Some({port});", edge.from, edge.to),
        };
    }
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn hex<S: serde::Serializer>(hash: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{hash:016x}"))
}

fn mermaid_escape(text: &str) -> String {
    text.replace('"', "#quot;")
}

fn dot_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &'static str) -> GraphVertex {
        GraphVertex::new(
            name,
            VertexKind::Node {
                node: name,
                options: NodeOptions::DEFAULT,
            },
        )
    }

    fn kyc() -> Graph {
        Graph::new(
            "kyc",
            vec![node("get"), node("detect"), node("matched"), node("mark")],
            vec![
                GraphEdge::then(0, 1),
                GraphEdge::then(0, 2),
                GraphEdge::join(1, 3, 0),
                GraphEdge::join(2, 3, 1),
            ],
            0,
            3,
        )
    }

    #[test]
    fn hash_is_stable_and_structural() {
        // Pinned: a change here breaks deployed graphs' identity, so it must be deliberate.
        assert_eq!(kyc().structural_hash(), kyc().structural_hash());
        assert_eq!(
            format!("{:016x}", kyc().structural_hash()),
            "85d8e8eb52689bcb"
        );
        let swapped = Graph::new(
            "kyc",
            vec![node("get"), node("detect"), node("matched"), node("mark")],
            vec![
                GraphEdge::then(0, 1),
                GraphEdge::then(0, 2),
                GraphEdge::join(2, 3, 0),
                GraphEdge::join(1, 3, 1),
            ],
            0,
            3,
        );
        assert_ne!(swapped.structural_hash(), kyc().structural_hash());
    }

    #[test]
    fn renders_mermaid_with_join_ports() {
        let text = kyc().to_mermaid();
        assert!(text.starts_with("flowchart LR\n"), "{text}");
        assert!(text.contains("    v0[\"get\"]\n"), "{text}");
        assert!(text.contains("    v0 --> v1\n"), "{text}");
        assert!(text.contains("    v2 -->|2| v3\n"), "{text}");
    }

    #[test]
    fn renders_dot_and_escapes_quotes() {
        let graph = Graph::new("a\"b", vec![node("x")], vec![], 0, 0);
        let text = graph.to_dot();
        assert!(text.starts_with("digraph \"a\\\"b\" {"), "{text}");
        assert!(text.contains("v0 [label=\"x\", shape=box];"), "{text}");
        assert!(kyc().to_dot().contains("v1 -> v3 [label=\"1\"];"));
    }
}
