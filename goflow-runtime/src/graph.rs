//! A workflow's graph as data: vertices, edges, `each` bodies, a stable structural hash, and
//! renderings as Mermaid and Graphviz DOT.

use std::fmt::Write as _;

use serde::Serialize;

pub use crate::node::NodeOptions;

/// The shape of a workflow as written in `workflow!`. Sub-workflows appear as one vertex
/// holding their own graph.
///
/// A conditional (`check ? { Pass => a, Fail => b -> c, Skip => {} } -> merge`) appears as
/// [`EdgeKind::Arm`] edges from its vertex to each arm's entries (to the merge vertex itself
/// for an empty arm such as `Skip`) and [`EdgeKind::Merge`] edges from each other arm's exit
/// to the merge vertex, all naming their arm's variant: the merge vertex has one incoming edge
/// per arm. A for-each (`list -> each { a -> b } =>
/// gather`) appears as [`EdgeKind::Scatter`] edges from its source to the body's entries, one
/// [`EdgeKind::Gather`] edge from the body's exit to the gathering vertex, and a
/// [`GraphEach`] listing the body's vertices.
#[derive(Debug, Serialize)]
pub struct Graph {
    name: &'static str,
    vertices: Vec<GraphVertex>,
    edges: Vec<GraphEdge>,
    each: Vec<GraphEach>,
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

/// An edge of a [`Graph`]: `to` takes the output of `from` (for an arm edge, the payload of
/// its variant; for a scatter edge, one item of it at a time; for a gather edge, all of its
/// per-item outputs at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GraphEdge {
    /// Index of the producing vertex.
    pub from: usize,
    /// Index of the consuming vertex.
    pub to: usize,
    /// For a join (`=>`), which parameter of `to` this edge feeds, from 0; `None` otherwise.
    pub port: Option<usize>,
    /// What the edge is.
    pub kind: EdgeKind,
    /// For [`EdgeKind::Arm`] and [`EdgeKind::Merge`] edges, the variant of the arm they belong
    /// to; `None` otherwise.
    pub variant: Option<&'static str>,
}

/// What a [`GraphEdge`] is. Serialized in snake_case (`"then"`, `"arm"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// `from -> to`.
    Then,
    /// One parameter of a join, `[from, ..] => to` (see [`GraphEdge::port`]).
    Join,
    /// From a conditional's vertex to an entry of one of its arms: taken only when the vertex
    /// outputs the arm's variant, whose payload `to` takes. For an empty arm
    /// (`Variant => {}`), `to` is the vertex after the conditional.
    Arm,
    /// From the exit of an arm to the vertex after the conditional, which takes the output of
    /// the arm that ran.
    Merge,
    /// From a for-each source to an entry of its body, which runs once per item of the
    /// source's output (a `Vec`).
    Scatter,
    /// From the exit of a for-each body to the vertex after `=>`, which takes the `Vec` of the
    /// body's outputs, in item order.
    Gather,
}

impl EdgeKind {
    /// The kind's name, as serialized: `"then"`, `"join"`, `"arm"`, `"merge"`, `"scatter"`
    /// or `"gather"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Then => "then",
            EdgeKind::Join => "join",
            EdgeKind::Arm => "arm",
            EdgeKind::Merge => "merge",
            EdgeKind::Scatter => "scatter",
            EdgeKind::Gather => "gather",
        }
    }
}

/// One `each { ... }` body of a [`Graph`]: vertices that run once per item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphEach {
    /// Index of the vertex whose output (a `Vec`) the body runs over.
    pub source: usize,
    /// Index of the vertex that takes the `Vec` of the body's outputs.
    pub gather: usize,
    /// Index (in [`Graph::each`]) of the body this one is nested in, if any.
    pub parent: Option<usize>,
    /// The vertices directly in this body, in order; those of nested bodies are listed there.
    pub vertices: Vec<usize>,
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
        let hash = structural_hash(&vertices, &edges, &[], entry, exit);
        Self {
            name,
            vertices,
            edges,
            each: Vec::new(),
            entry,
            exit,
            hash,
        }
    }

    /// Adds an `each` body over the output of vertex `source`, gathered by vertex `gather`,
    /// nested in body `parent`, holding `vertices` directly; called by the code `workflow!`
    /// generates.
    pub fn with_each(
        mut self,
        source: usize,
        gather: usize,
        parent: Option<usize>,
        vertices: Vec<usize>,
    ) -> Self {
        self.each.push(GraphEach {
            source,
            gather,
            parent,
            vertices,
        });
        self.hash = structural_hash(
            &self.vertices,
            &self.edges,
            &self.each,
            self.entry,
            self.exit,
        );
        self
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

    /// The `each` bodies, in order of appearance; an enclosing body comes after the bodies
    /// nested in it.
    pub fn each(&self) -> &[GraphEach] {
        &self.each
    }

    /// The innermost `each` body that vertex `vertex` is in (an index in
    /// [`each`](Self::each)), if any.
    pub fn each_of(&self, vertex: usize) -> Option<usize> {
        self.each.iter().position(|e| e.vertices.contains(&vertex))
    }

    /// The vertex that receives the workflow's input.
    pub fn entry(&self) -> &GraphVertex {
        &self.vertices[self.entry]
    }

    /// The vertex whose output is the workflow's output.
    pub fn exit(&self) -> &GraphVertex {
        &self.vertices[self.exit]
    }

    /// A hash of the shape (vertex names, what each runs, edges with their kinds and variants,
    /// `each` bodies; sub-workflows by their own hash), stable across builds, platforms and
    /// releases of goflow. Two deployments with the
    /// same hash run the same graph, which is what the Redis engine checks before resuming
    /// in-flight requests after an upgrade.
    pub fn structural_hash(&self) -> u64 {
        self.hash
    }

    /// Renders the graph as a Mermaid flowchart. Sub-workflows are subroutine-shaped vertices;
    /// join edges are labelled with the parameter they feed (from 1); arm edges with their
    /// variant; scatter and gather edges are thick; each
    /// `each` body is a subgraph titled `for each`.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for line in self.layout() {
            let _ = match line {
                Layout::Vertex(i, indent) => {
                    let vertex = &self.vertices[i];
                    let label = mermaid_escape(&vertex.label());
                    match vertex.kind {
                        VertexKind::Node { .. } => writeln!(out, "{indent}v{i}[\"{label}\"]"),
                        VertexKind::Flow { .. } => writeln!(out, "{indent}v{i}[[\"{label}\"]]"),
                    }
                }
                Layout::Open(body, indent) => {
                    writeln!(out, "{indent}subgraph each{body} [\"for each\"]")
                }
                Layout::Close(indent) => writeln!(out, "{indent}end"),
            };
        }
        for edge in &self.edges {
            let (from, to) = (edge.from, edge.to);
            let _ = match (edge.kind, edge.port, edge.variant) {
                (EdgeKind::Scatter | EdgeKind::Gather, _, _) => {
                    writeln!(out, "    v{from} ==> v{to}")
                }
                (EdgeKind::Arm, _, Some(variant)) => {
                    writeln!(out, "    v{from} -->|{variant}| v{to}")
                }
                (_, Some(port), _) => writeln!(out, "    v{from} -->|{}| v{to}", port + 1),
                _ => writeln!(out, "    v{from} --> v{to}"),
            };
        }
        out
    }

    /// Renders the graph in Graphviz DOT. Sub-workflows use the `component` shape; join edges
    /// are labelled with the parameter they feed (from 1); arm edges with their variant; scatter and gather edges are bold; each `each` body is
    /// a dashed cluster labelled `for each`.
    pub fn to_dot(&self) -> String {
        let mut out = format!(
            "digraph \"{}\" {{\n    rankdir=LR;\n",
            dot_escape(self.name)
        );
        for line in self.layout() {
            let _ = match line {
                Layout::Vertex(i, indent) => {
                    let vertex = &self.vertices[i];
                    let label = dot_escape(&vertex.label());
                    let shape = match vertex.kind {
                        VertexKind::Node { .. } => "box",
                        VertexKind::Flow { .. } => "component",
                    };
                    writeln!(out, "{indent}v{i} [label=\"{label}\", shape={shape}];")
                }
                Layout::Open(body, indent) => writeln!(
                    out,
                    "{indent}subgraph cluster_each{body} {{\n{indent}    label=\"for each\";\n{indent}    style=dashed;"
                ),
                Layout::Close(indent) => writeln!(out, "{indent}}}"),
            };
        }
        for edge in &self.edges {
            let (from, to) = (edge.from, edge.to);
            let _ = match (edge.kind, edge.port, edge.variant) {
                (EdgeKind::Scatter | EdgeKind::Gather, _, _) => {
                    writeln!(out, "    v{from} -> v{to} [style=bold];")
                }
                (EdgeKind::Arm, _, Some(variant)) => {
                    writeln!(out, "    v{from} -> v{to} [label=\"{variant}\"];")
                }
                (_, Some(port), _) => {
                    writeln!(out, "    v{from} -> v{to} [label=\"{}\"];", port + 1)
                }
                _ => writeln!(out, "    v{from} -> v{to};"),
            };
        }
        out.push_str("}\n");
        out
    }

    /// How renderings list the vertices: those outside every `each` body, then each body
    /// (its own vertices, then the bodies nested in it), with indentation.
    fn layout(&self) -> Vec<Layout> {
        let mut lines = Vec::new();
        self.lay_out(None, "    ", &mut lines);
        lines
    }

    fn lay_out(&self, body: Option<usize>, indent: &str, lines: &mut Vec<Layout>) {
        for i in 0..self.vertices.len() {
            if self.each_of(i) == body {
                lines.push(Layout::Vertex(i, indent.to_owned()));
            }
        }
        for (b, each) in self.each.iter().enumerate() {
            if each.parent == body {
                lines.push(Layout::Open(b, indent.to_owned()));
                self.lay_out(Some(b), &format!("{indent}    "), lines);
                lines.push(Layout::Close(indent.to_owned()));
            }
        }
    }
}

/// One line of a rendering's vertex list, with its indentation.
enum Layout {
    /// A vertex, by index.
    Vertex(usize, String),
    /// The start of an `each` body, by index.
    Open(usize, String),
    /// The end of the body last opened.
    Close(String),
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
        Self::new(from, to, EdgeKind::Then, None)
    }

    /// A join edge feeding parameter `port` of `to`.
    pub const fn join(from: usize, to: usize, port: usize) -> Self {
        Self {
            port: Some(port),
            ..Self::new(from, to, EdgeKind::Join, None)
        }
    }

    /// An edge from conditional vertex `from` to `to`, an entry of the arm for `variant` (for
    /// an empty arm, the vertex after the conditional).
    pub const fn arm(from: usize, to: usize, variant: &'static str) -> Self {
        Self::new(from, to, EdgeKind::Arm, Some(variant))
    }

    /// An edge from `from`, the exit of the arm for `variant`, to `to`, the vertex after the
    /// conditional.
    pub const fn merge(from: usize, to: usize, variant: &'static str) -> Self {
        Self::new(from, to, EdgeKind::Merge, Some(variant))
    }

    /// An edge from for-each source `from` to `to`, an entry of its body.
    pub const fn scatter(from: usize, to: usize) -> Self {
        Self::new(from, to, EdgeKind::Scatter, None)
    }

    /// An edge from for-each body exit `from` to `to`, the gathering vertex.
    pub const fn gather(from: usize, to: usize) -> Self {
        Self::new(from, to, EdgeKind::Gather, None)
    }

    const fn new(from: usize, to: usize, kind: EdgeKind, variant: Option<&'static str>) -> Self {
        Self {
            from,
            to,
            port: None,
            kind,
            variant,
        }
    }
}

/// FNV-1a over a canonical text of the shape: tiny, dependency-free, and stable by definition
/// (std's `Hash` makes no promise across releases).
/// Edges of the kinds that predate conditionals and for-each, and graphs without `each`
/// bodies, keep the text (and so the hash) they always had.
fn structural_hash(
    vertices: &[GraphVertex],
    edges: &[GraphEdge],
    each: &[GraphEach],
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
            None => write!(text, "e:{}>{}:None", edge.from, edge.to),
            Some(port) => write!(text, "e:{}>{}:Some({port})", edge.from, edge.to),
        };
        let _ = match (edge.kind, edge.variant) {
            (EdgeKind::Then | EdgeKind::Join, _) => write!(text, ";"),
            (kind, Some(variant)) => write!(text, ":{}({variant});", kind.as_str()),
            (kind, None) => write!(text, ":{};", kind.as_str()),
        };
    }
    for body in each {
        let parent = body
            .parent
            .map_or_else(|| "-".to_owned(), |p| p.to_string());
        let inside: Vec<String> = body.vertices.iter().map(ToString::to_string).collect();
        let _ = write!(
            text,
            "each:{}>{}:{parent}:{};",
            body.source,
            body.gather,
            inside.join(",")
        );
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

    /// `check ? { Pass => a -> b, Skip => {} } -> merge`, plainly wired when `plain`.
    fn conditional(plain: bool) -> Graph {
        let edges = if plain {
            vec![
                GraphEdge::then(0, 1),
                GraphEdge::then(1, 2),
                GraphEdge::join(2, 3, 0),
                GraphEdge::join(0, 3, 1),
            ]
        } else {
            vec![
                GraphEdge::arm(0, 1, "Pass"),
                GraphEdge::then(1, 2),
                GraphEdge::merge(2, 3, "Pass"),
                GraphEdge::arm(0, 3, "Skip"),
            ]
        };
        Graph::new(
            "cond",
            vec![node("check"), node("a"), node("b"), node("merge")],
            edges,
            0,
            3,
        )
    }

    /// `list -> each { a -> each { b } => c } => gather`
    fn nested_each() -> Graph {
        Graph::new(
            "sweep",
            vec![
                node("list"),
                node("a"),
                node("b"),
                node("c"),
                node("gather"),
            ],
            vec![
                GraphEdge::scatter(0, 1),
                GraphEdge::scatter(1, 2),
                GraphEdge::gather(2, 3),
                GraphEdge::gather(3, 4),
            ],
            0,
            4,
        )
        .with_each(1, 3, Some(1), vec![2])
        .with_each(0, 4, None, vec![1, 3])
    }

    #[test]
    fn new_edge_kinds_change_the_hash_and_old_ones_keep_it() {
        assert_ne!(
            conditional(false).structural_hash(),
            conditional(true).structural_hash()
        );
        let variants = Graph::new(
            "cond",
            vec![node("check"), node("a"), node("b"), node("merge")],
            vec![
                GraphEdge::arm(0, 1, "Fail"),
                GraphEdge::then(1, 2),
                GraphEdge::merge(2, 3, "Fail"),
                GraphEdge::arm(0, 3, "Skip"),
            ],
            0,
            3,
        );
        assert_ne!(
            variants.structural_hash(),
            conditional(false).structural_hash()
        );
        // The same edges without bodies, or with other bodies, are other shapes.
        let flat = Graph::new(
            "sweep",
            vec![
                node("list"),
                node("a"),
                node("b"),
                node("c"),
                node("gather"),
            ],
            nested_each().edges,
            0,
            4,
        );
        assert_ne!(flat.structural_hash(), nested_each().structural_hash());
        assert_eq!(
            nested_each().structural_hash(),
            nested_each().structural_hash()
        );
        // `then` and `join` edges hash as they always did: see `hash_is_stable_and_structural`.
        assert_eq!(GraphEdge::then(0, 1).kind, EdgeKind::Then);
        assert_eq!(GraphEdge::join(0, 1, 0).kind, EdgeKind::Join);
    }

    #[test]
    fn bodies_know_their_vertices() {
        let graph = nested_each();
        assert_eq!(graph.each().len(), 2);
        assert_eq!(
            [0, 1, 2, 3, 4].map(|v| graph.each_of(v)),
            [None, Some(1), Some(0), Some(1), None]
        );
        assert_eq!(graph.each()[0].parent, Some(1));
    }

    #[test]
    fn renders_conditionals_and_bodies_in_mermaid() {
        let text = conditional(false).to_mermaid();
        for line in [
            "    v0 -->|Pass| v1\n",
            "    v1 --> v2\n",
            "    v2 --> v3\n",
            "    v0 -->|Skip| v3\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        let text = nested_each().to_mermaid();
        let expected = "flowchart LR
    v0[\"list\"]
    v4[\"gather\"]
    subgraph each1 [\"for each\"]
        v1[\"a\"]
        v3[\"c\"]
        subgraph each0 [\"for each\"]
            v2[\"b\"]
        end
    end
    v0 ==> v1
    v1 ==> v2
    v2 ==> v3
    v3 ==> v4
";
        assert_eq!(text, expected);
    }

    #[test]
    fn renders_conditionals_and_bodies_in_dot() {
        let text = conditional(false).to_dot();
        assert!(text.contains("    v0 -> v1 [label=\"Pass\"];\n"), "{text}");
        assert!(text.contains("    v2 -> v3;\n"), "{text}");
        let text = nested_each().to_dot();
        for line in [
            "    subgraph cluster_each1 {\n        label=\"for each\";\n        style=dashed;\n",
            "        v1 [label=\"a\", shape=box];\n",
            "        subgraph cluster_each0 {\n",
            "            v2 [label=\"b\", shape=box];\n        }\n    }\n",
            "    v0 -> v1 [style=bold];\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }
}
