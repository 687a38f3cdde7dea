//! What can stand as a vertex of a workflow (a node, or a whole workflow), and the traits that
//! `workflow!` uses to let rustc check every edge of the graph.

use crate::codec::Codec;
use crate::graph::VertexKind;
use crate::node::{Data, Node};
use crate::plan::{Fragment, PlanBuilder};

/// A vertex of a workflow: a node, or a workflow used as a sub-workflow.
///
/// Implemented for every [`Node`], and by `workflow!` for workflows.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a node or a workflow",
    label = "not a `#[node]` function or a workflow of `workflow!`",
    note = "a vertex of a workflow names an `async fn` marked `#[node]` (which adds a type of its name), or a workflow declared with `workflow!`"
)]
pub trait Step: 'static {
    /// What the vertex takes.
    type Input: Data;
    /// What the vertex produces.
    type Output: Data;
    /// How deeply workflows nest inside this vertex: 0 for a node, one more than its deepest
    /// vertex for a workflow. A workflow that contains itself, directly or through others,
    /// cannot compute this constant, which turns the cycle into a compile error.
    const NESTING: usize;

    /// Adds this vertex, named `vertex`, to a plan under construction.
    fn add_to<C: Codec>(plan: &mut PlanBuilder<C>, vertex: &'static str) -> Fragment;

    /// What the vertex is, for the workflow's graph.
    fn describe() -> VertexKind;
}

impl<N: Node> Step for N {
    type Input = N::Input;
    type Output = N::Output;
    const NESTING: usize = 0;

    fn add_to<C: Codec>(plan: &mut PlanBuilder<C>, vertex: &'static str) -> Fragment {
        plan.node::<N>(vertex)
    }

    fn describe() -> VertexKind {
        VertexKind::Node {
            node: N::NAME,
            options: N::options(),
        }
    }
}

/// `Self` can take a `T` through a single edge (`a -> b` requires `b: Accepts<A's output>`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot take `{T}` as its input",
    label = "expects another input type than `{T}`",
    note = "in `a -> b`, the parameter of `b` must have exactly the output type of `a`"
)]
pub trait Accepts<T> {}

/// `Self` can be the join of `N` branches whose outputs are `T`, a tuple in branch order
/// (`[b, c] => d` requires `d: Joins<2, (B, C)>`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot join {N} branches with outputs `{T}`",
    label = "does not take {N} parameters of types `{T}`",
    note = "`[b, c] => d` calls `d` with the outputs of `b` and `c` as its parameters, in that order: the number and types of `d`'s parameters must match the branches"
)]
pub trait Joins<const N: usize, T> {}

/// Used by `workflow!`: compiles only when `S` can take `T` through a single edge.
pub const fn accepts<S: Accepts<T> + ?Sized, T>() {}

/// Used by `workflow!`: compiles only when `S` can join `N` branches of output types `T`.
pub const fn joins<S: Joins<N, T> + ?Sized, const N: usize, T>() {}

/// `max` usable in the constant [`Step::NESTING`].
pub const fn max_nesting(depths: &[usize]) -> usize {
    let mut max = 0;
    let mut i = 0;
    while i < depths.len() {
        if depths[i] > max {
            max = depths[i];
        }
        i += 1;
    }
    max
}

/// A collection that `each { ... }` can run a body over, once per item.
#[diagnostic::on_unimplemented(
    message = "`each` runs over a `Vec`, but the vertex before it outputs `{Self}`",
    label = "outputs `{Self}`, not a `Vec<T>`",
    note = "in `a -> each {{ b }} => c`, `a` must output a `Vec<T>`: `b` then runs once per item, taking a `T`, and `c` takes the `Vec` of `b`'s outputs, in item order"
)]
pub trait Collection {
    /// The type of one item.
    type Item: Data;
}

impl<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static> Collection for Vec<T> {
    type Item = T;
}
