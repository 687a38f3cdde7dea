//! `Workflow::graph()`: a workflow's shape as data (conditionals and for-each included), its
//! structural hash, and its renderings as Mermaid, Graphviz DOT and JSON.

use std::time::Duration;

use goflow::graph::{Graph, GraphEdge, GraphVertex, NodeOptions, VertexKind};
use goflow::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[node]
async fn fetch(n: u32) -> u32 {
    n
}

#[node]
async fn left(n: u32) -> u32 {
    n + 1
}

#[node]
async fn right(n: u32) -> u32 {
    n + 2
}

#[node]
async fn extra(n: u32) -> u32 {
    n + 3
}

#[node]
async fn merge(x: u32, y: u32) -> u32 {
    x * 10 + y
}

#[node(name = "custom_name", retries = 3, timeout = "5s", backoff = "250ms")]
async fn renamed(n: u32) -> u32 {
    n
}

workflow! {
    /// The diamond.
    Diamond = fetch -> [left, right] => merge;
    /// The same shape under another type name.
    DiamondAgain = fetch -> [left, right] => merge;
    /// The same vertices and edges, but the join takes them in the other order.
    DiamondSwapped = { fetch -> [left, right]; [right, left] => merge; };
    /// The diamond, declared as a braced body.
    DiamondBraced = { fetch -> [left, right]; [left, right] => merge; };
    /// A chain inside a group.
    ChainGroup = fetch -> [left -> extra, right] => merge;
    Aliased = fetch -> left -> fetch as again -> left as left2;
    AliasedOtherwise = fetch -> left -> fetch as once_more -> left as left2;
    FraudSweep = fetch -> renamed;
    KYCCheck = fetch;
    /// `Diamond` as a vertex, once under its own name and once aliased.
    WithSub = fetch -> Diamond -> Diamond as second -> extra;
}

fn names(graph: &Graph) -> Vec<&'static str> {
    graph.vertices().iter().map(|v| v.name).collect()
}

fn node_of(vertex: &GraphVertex) -> &'static str {
    match vertex.kind {
        VertexKind::Node { node, .. } => node,
        VertexKind::Flow { graph } => {
            panic!("`{}` runs the workflow `{}`", vertex.name, graph.name())
        }
    }
}

fn sorted_edges(graph: &Graph) -> Vec<(usize, usize, Option<usize>)> {
    let mut edges: Vec<_> = graph
        .edges()
        .iter()
        .map(|e| (e.from, e.to, e.port))
        .collect();
    edges.sort_unstable();
    edges
}

#[test]
fn workflow_names_are_snake_case() {
    assert_eq!(Diamond::NAME, "diamond");
    assert_eq!(DiamondAgain::NAME, "diamond_again");
    assert_eq!(FraudSweep::NAME, "fraud_sweep");
    assert_eq!(KYCCheck::NAME, "kyc_check");
    assert_eq!(Diamond::graph().name(), Diamond::NAME);
    assert_eq!(FraudSweep::graph().name(), "fraud_sweep");
}

#[test]
fn vertices_edges_entry_and_exit() {
    let graph = Diamond::graph();
    assert_eq!(names(graph), ["fetch", "left", "right", "merge"]);
    assert_eq!(
        sorted_edges(graph),
        [(0, 1, None), (0, 2, None), (1, 3, Some(0)), (2, 3, Some(1))]
    );
    for edge in [
        GraphEdge::then(0, 1),
        GraphEdge::then(0, 2),
        GraphEdge::join(1, 3, 0),
        GraphEdge::join(2, 3, 1),
    ] {
        assert!(graph.edges().contains(&edge), "{edge:?} missing");
    }
    assert_eq!(graph.edges().len(), 4);
    assert_eq!(graph.entry().name, "fetch");
    assert_eq!(graph.exit().name, "merge");
    // The same `'static` graph every time.
    assert!(std::ptr::eq(graph, Diamond::graph()));
}

#[test]
fn join_ports_follow_the_declared_order() {
    let graph = DiamondSwapped::graph();
    assert_eq!(names(graph), ["fetch", "left", "right", "merge"]);
    assert_eq!(
        sorted_edges(graph),
        [(0, 1, None), (0, 2, None), (1, 3, Some(1)), (2, 3, Some(0))]
    );
}

#[test]
fn a_chain_inside_a_group() {
    let graph = ChainGroup::graph();
    // In order of first mention.
    assert_eq!(names(graph), ["fetch", "left", "extra", "right", "merge"]);
    assert_eq!(
        sorted_edges(graph),
        [
            (0, 1, None),
            (0, 3, None),
            (1, 2, None),
            (2, 4, Some(0)),
            (3, 4, Some(1)),
        ]
    );
    assert_eq!(graph.entry().name, "fetch");
    assert_eq!(graph.exit().name, "merge");
}

#[test]
fn aliases_are_vertex_names_and_the_node_is_what_runs() {
    let graph = Aliased::graph();
    assert_eq!(names(graph), ["fetch", "left", "again", "left2"]);
    let nodes: Vec<_> = graph.vertices().iter().map(node_of).collect();
    assert_eq!(nodes, ["fetch", "left", "fetch", "left"]);
    assert_eq!(
        sorted_edges(graph),
        [(0, 1, None), (1, 2, None), (2, 3, None)]
    );
    assert_eq!(graph.exit().name, "left2");
}

#[test]
fn node_name_and_options_are_recorded() {
    let graph = FraudSweep::graph();
    assert_eq!(names(graph), ["fetch", "renamed"]);
    match graph.vertices()[1].kind {
        VertexKind::Node { node, options } => {
            assert_eq!(node, "custom_name");
            assert_eq!(
                options,
                NodeOptions::DEFAULT
                    .with_retries(3)
                    .with_timeout(Duration::from_secs(5))
                    .with_backoff(Duration::from_millis(250))
            );
        }
        VertexKind::Flow { .. } => panic!("a node vertex expected"),
    }
    match graph.vertices()[0].kind {
        VertexKind::Node { options, .. } => assert_eq!(options, NodeOptions::DEFAULT),
        VertexKind::Flow { .. } => panic!("a node vertex expected"),
    }
}

#[test]
fn a_single_vertex_workflow() {
    let graph = KYCCheck::graph();
    assert_eq!(names(graph), ["fetch"]);
    assert!(graph.edges().is_empty());
    assert_eq!(graph.entry().name, "fetch");
    assert_eq!(graph.exit().name, "fetch");
}

#[test]
fn structural_hash_depends_on_shape_not_on_the_type_name() {
    let hash = Diamond::graph().structural_hash();
    assert_eq!(hash, DiamondAgain::graph().structural_hash());
    assert_eq!(hash, DiamondBraced::graph().structural_hash());
    assert_ne!(hash, DiamondSwapped::graph().structural_hash());
    assert_ne!(hash, ChainGroup::graph().structural_hash());
    // Aliases are part of the shape: same nodes and edges, other vertex names.
    assert_ne!(
        Aliased::graph().structural_hash(),
        AliasedOtherwise::graph().structural_hash()
    );
}

#[test]
fn structural_hash_is_pinned() {
    // Deployments compare this hash across builds and releases: a change here must be
    // deliberate. Computed over `entry=0;exit=3;v:fetch:node:fetch;...` with 64-bit FNV-1a.
    assert_eq!(
        format!("{:016x}", Diamond::graph().structural_hash()),
        format!("{:016x}", fnv1a(DIAMOND_CANONICAL))
    );
}

/// The canonical text the structural hash of `Diamond` is computed over, as documented by the
/// runtime's graph module: entry, exit, vertices in order, edges in order.
const DIAMOND_CANONICAL: &str = "entry=0;exit=3;\
    v:fetch:node:fetch;v:left:node:left;v:right:node:right;v:merge:node:merge;\
    e:0>1:None;e:0>2:None;e:1>3:Some(0);e:2>3:Some(1);";

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn sub_workflows_are_flow_vertices_holding_their_graph() {
    let graph = WithSub::graph();
    assert_eq!(names(graph), ["fetch", "Diamond", "second", "extra"]);
    for i in [1, 2] {
        match graph.vertices()[i].kind {
            VertexKind::Flow { graph: sub } => {
                assert!(std::ptr::eq(sub, Diamond::graph()));
                assert_eq!(sub.name(), "diamond");
            }
            VertexKind::Node { node, .. } => panic!("vertex {i} runs node `{node}`"),
        }
    }
    assert_eq!(
        sorted_edges(graph),
        [(0, 1, None), (1, 2, None), (2, 3, None)]
    );
}

#[test]
fn structural_hash_covers_sub_workflows() {
    workflow! {
        Other = fetch -> DiamondSwapped -> DiamondSwapped as second -> extra;
    }
    // Same outer shape and vertex names but for the first sub-workflow's name and join order.
    assert_ne!(
        Other::graph().structural_hash(),
        WithSub::graph().structural_hash()
    );
}

#[test]
fn mermaid_rendering() {
    let text = Diamond::graph().to_mermaid();
    assert!(text.starts_with("flowchart LR\n"), "{text}");
    for line in [
        "    v0[\"fetch\"]\n",
        "    v3[\"merge\"]\n",
        "    v0 --> v1\n",
        "    v0 --> v2\n",
        "    v1 -->|1| v3\n",
        "    v2 -->|2| v3\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }

    let text = DiamondSwapped::graph().to_mermaid();
    assert!(text.contains("    v2 -->|1| v3\n"), "{text}");
    assert!(text.contains("    v1 -->|2| v3\n"), "{text}");

    // An alias shows what it runs.
    let text = Aliased::graph().to_mermaid();
    assert!(text.contains("    v2[\"again: fetch\"]\n"), "{text}");

    // A sub-workflow is a subroutine-shaped vertex.
    let text = WithSub::graph().to_mermaid();
    assert!(text.contains("    v1[[\"Diamond: diamond\"]]\n"), "{text}");
    assert!(text.contains("    v2[[\"second: diamond\"]]\n"), "{text}");
    assert!(text.contains("    v3[\"extra\"]\n"), "{text}");
}

#[test]
fn dot_rendering() {
    let text = Diamond::graph().to_dot();
    assert!(text.starts_with("digraph \"diamond\" {\n"), "{text}");
    assert!(text.ends_with("}\n"), "{text}");
    for line in [
        "    rankdir=LR;\n",
        "    v0 [label=\"fetch\", shape=box];\n",
        "    v0 -> v1;\n",
        "    v1 -> v3 [label=\"1\"];\n",
        "    v2 -> v3 [label=\"2\"];\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }

    let text = WithSub::graph().to_dot();
    assert!(text.starts_with("digraph \"with_sub\" {\n"), "{text}");
    assert!(
        text.contains("    v2 [label=\"second: diamond\", shape=component];\n"),
        "{text}"
    );
    assert!(
        text.contains("    v3 [label=\"extra\", shape=box];\n"),
        "{text}"
    );
}

#[test]
fn json_has_the_documented_fields() {
    let value = serde_json::to_value(Diamond::graph()).unwrap();
    assert_eq!(value["name"], "diamond");
    assert_eq!(value["entry"], 0);
    assert_eq!(value["exit"], 3);
    assert_eq!(
        value["hash"],
        format!("{:016x}", Diamond::graph().structural_hash())
    );
    assert_eq!(
        value["edges"],
        json!([
            {"from": 0, "to": 1, "port": null, "kind": "then", "variant": null},
            {"from": 0, "to": 2, "port": null, "kind": "then", "variant": null},
            {"from": 1, "to": 3, "port": 0, "kind": "join", "variant": null},
            {"from": 2, "to": 3, "port": 1, "kind": "join", "variant": null},
        ])
    );
    assert_eq!(value["each"], json!([]));
    let vertex = &value["vertices"][0];
    assert_eq!(vertex["name"], "fetch");
    assert_eq!(vertex["kind"], "node");
    assert_eq!(vertex["node"], "fetch");
    assert_eq!(vertex["options"]["retries"], 0);
    assert_eq!(vertex["options"]["timeout_ms"], json!(null));
    assert_eq!(vertex["options"]["backoff_ms"], 100);

    let value = serde_json::to_value(FraudSweep::graph()).unwrap();
    let renamed = &value["vertices"][1];
    assert_eq!(renamed["name"], "renamed");
    assert_eq!(renamed["node"], "custom_name");
    assert_eq!(renamed["options"]["retries"], 3);
    assert_eq!(renamed["options"]["timeout_ms"], 5000);
    assert_eq!(renamed["options"]["backoff_ms"], 250);

    // A sub-workflow vertex holds the sub-workflow's whole graph.
    let value = serde_json::to_value(WithSub::graph()).unwrap();
    let sub = &value["vertices"][2];
    assert_eq!(sub["name"], "second");
    assert_eq!(sub["kind"], "flow");
    assert_eq!(
        sub["graph"],
        serde_json::to_value(Diamond::graph()).unwrap()
    );
    assert_eq!(sub["graph"]["name"], "diamond");
}

#[test]
fn the_doc_comment_is_the_description() {
    assert_eq!(Documented::DESCRIPTION, "First line.\nSecond line.");
    assert_eq!(Undocumented::DESCRIPTION, "");
}

#[node]
async fn documented_step(x: u32) -> u32 {
    x
}

workflow! {
    /// First line.
    /// Second line.
    pub Documented = documented_step;
    pub Undocumented = documented_step as again;
}

// ---------------------------------------------------------------------------------------------
// Conditionals and for-each.

/// How `sort` files a number; each variant carries the arm's input.
#[derive(Debug, Serialize, Deserialize)]
pub enum Sorted {
    /// 1 to 9.
    Small(u32),
    /// 10 or more.
    Big(u32),
    /// 0.
    Zero(u32),
}

#[node]
async fn sort(n: u32) -> Sorted {
    match n {
        0 => Sorted::Zero(0),
        1..10 => Sorted::Small(n),
        _ => Sorted::Big(n),
    }
}

#[node]
async fn range(n: u32) -> Vec<u32> {
    (0..n).collect()
}

#[node]
async fn grid(n: u32) -> Vec<Vec<u32>> {
    vec![(0..n).collect(); n as usize]
}

#[node]
async fn row(xs: Vec<u32>) -> Vec<u32> {
    xs
}

#[node]
async fn sum(xs: Vec<u32>) -> u32 {
    xs.iter().sum()
}

workflow! {
    /// Arms of one vertex, of a chain, and an empty one.
    Branchy = fetch -> sort ? { Small => left, Big => right -> extra, Zero => {} } -> renamed;
    /// The same vertices, the arms the other way round.
    BranchySwapped = fetch -> sort ? { Small => right -> extra, Big => left, Zero => {} } -> renamed;
    Sweep = range -> each { left -> right } => sum;
    /// A for-each in a for-each.
    Grid = grid -> each { row -> each { left } => sum } => sum as total;
}

fn kinds(graph: &Graph) -> Vec<(usize, usize, &'static str, Option<&'static str>)> {
    graph
        .edges()
        .iter()
        .map(|e| (e.from, e.to, e.kind.as_str(), e.variant))
        .collect()
}

#[test]
fn a_conditional_has_arm_and_merge_edges() {
    let graph = Branchy::graph();
    assert_eq!(
        names(graph),
        ["fetch", "sort", "left", "right", "extra", "renamed"]
    );
    assert_eq!(
        kinds(graph),
        [
            (0, 1, "then", None),
            (1, 2, "arm", Some("Small")),
            (1, 3, "arm", Some("Big")),
            (3, 4, "then", None),
            (2, 5, "merge", Some("Small")),
            (4, 5, "merge", Some("Big")),
            // An empty arm goes straight to the merge vertex.
            (1, 5, "arm", Some("Zero")),
        ]
    );
    for edge in [
        GraphEdge::arm(1, 2, "Small"),
        GraphEdge::merge(4, 5, "Big"),
        GraphEdge::arm(1, 5, "Zero"),
    ] {
        assert!(graph.edges().contains(&edge), "{edge:?} missing");
    }
    assert_eq!(graph.entry().name, "fetch");
    assert_eq!(graph.exit().name, "renamed");
    assert!(graph.each().is_empty());

    let value = serde_json::to_value(graph).unwrap();
    assert_eq!(
        value["edges"][1],
        json!({"from": 1, "to": 2, "port": null, "kind": "arm", "variant": "Small"})
    );
    assert_eq!(
        value["edges"][5],
        json!({"from": 4, "to": 5, "port": null, "kind": "merge", "variant": "Big"})
    );
}

#[test]
fn a_for_each_has_scatter_and_gather_edges_and_a_body() {
    let graph = Sweep::graph();
    assert_eq!(names(graph), ["range", "left", "right", "sum"]);
    assert_eq!(
        kinds(graph),
        [
            (0, 1, "scatter", None),
            (1, 2, "then", None),
            (2, 3, "gather", None),
        ]
    );
    assert_eq!(graph.each().len(), 1);
    let body = &graph.each()[0];
    assert_eq!((body.source, body.gather, body.parent), (0, 3, None));
    assert_eq!(body.vertices, [1, 2]);
    assert_eq!(
        [0, 1, 2, 3].map(|v| graph.each_of(v)),
        [None, Some(0), Some(0), None]
    );
    assert_eq!(
        serde_json::to_value(graph).unwrap()["each"],
        json!([{"source": 0, "gather": 3, "parent": null, "vertices": [1, 2]}])
    );
}

#[test]
fn nested_bodies_name_their_parent() {
    let graph = Grid::graph();
    assert_eq!(names(graph), ["grid", "row", "left", "sum", "total"]);
    // The inner body is complete first, so it comes first.
    let [inner, outer] = graph.each() else {
        panic!("two bodies expected: {:?}", graph.each());
    };
    assert_eq!((inner.source, inner.gather, inner.parent), (1, 3, Some(1)));
    assert_eq!(inner.vertices, [2]);
    assert_eq!((outer.source, outer.gather, outer.parent), (0, 4, None));
    assert_eq!(outer.vertices, [1, 3]);
}

#[test]
fn conditionals_and_for_each_change_the_structural_hash() {
    assert_ne!(
        Branchy::graph().structural_hash(),
        BranchySwapped::graph().structural_hash()
    );
    // The same vertices, wired with plain edges and no body.
    let sweep = Sweep::graph();
    let plain = Graph::new(
        "sweep",
        sweep
            .vertices()
            .iter()
            .map(|v| GraphVertex::new(v.name, v.kind))
            .collect(),
        vec![
            GraphEdge::then(0, 1),
            GraphEdge::then(1, 2),
            GraphEdge::then(2, 3),
        ],
        0,
        3,
    );
    assert_ne!(sweep.structural_hash(), plain.structural_hash());
    // With the body but plain edges, still another shape.
    let half = Graph::new(
        "sweep",
        sweep
            .vertices()
            .iter()
            .map(|v| GraphVertex::new(v.name, v.kind))
            .collect(),
        vec![
            GraphEdge::then(0, 1),
            GraphEdge::then(1, 2),
            GraphEdge::then(2, 3),
        ],
        0,
        3,
    )
    .with_each(0, 3, None, vec![1, 2]);
    assert_ne!(sweep.structural_hash(), half.structural_hash());
    assert_ne!(plain.structural_hash(), half.structural_hash());
}

#[test]
fn mermaid_and_dot_render_arms_and_bodies() {
    let text = Branchy::graph().to_mermaid();
    for line in [
        "    v1 -->|Small| v2\n",
        "    v1 -->|Big| v3\n",
        "    v4 --> v5\n",
        "    v1 -->|Zero| v5\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    let text = Sweep::graph().to_mermaid();
    assert!(
        text.contains(
            "    subgraph each0 [\"for each\"]\n        v1[\"left\"]\n        v2[\"right\"]\n    end\n"
        ),
        "{text}"
    );
    assert!(text.contains("    v0 ==> v1\n"), "{text}");
    assert!(text.contains("    v2 ==> v3\n"), "{text}");

    let text = Branchy::graph().to_dot();
    assert!(text.contains("    v1 -> v2 [label=\"Small\"];\n"), "{text}");
    let text = Grid::graph().to_dot();
    for line in [
        "    subgraph cluster_each1 {\n        label=\"for each\";\n        style=dashed;\n",
        "        subgraph cluster_each0 {\n",
        "            v2 [label=\"left\", shape=box];\n",
        "    v3 -> v4 [style=bold];\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
}

#[test]
fn a_body_entered_twice_at_one_vertex_is_wired_once() {
    workflow! {
        Twice = range -> each { [left, left -> right] => merge } => sum;
    }
    let graph = Twice::graph();
    assert_eq!(
        kinds(graph),
        [
            (0, 1, "scatter", None),
            (1, 2, "then", None),
            (1, 3, "join", None),
            (2, 3, "join", None),
            (3, 4, "gather", None),
        ]
    );
    // Building the plan declares each vertex's input once (a debug assertion checks it).
    let plan =
        goflow::__private::Plan::new::<Twice, goflow::codec::MsgPack>(goflow::codec::MsgPack);
    assert_eq!(plan.vertices().len(), 5);
}
