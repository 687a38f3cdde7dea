//! The workflow trait, implemented by `workflow!` for each workflow type it declares.

use std::sync::Arc;

use crate::codec::Codec;
use crate::graph::Graph;
use crate::node::Data;
use crate::plan::{Fragment, Plan, PlanBuilder};

/// A workflow: a typed DAG of nodes, declared with `workflow!`.
///
/// Run one with an engine ([`EmbeddedEngine`](crate::EmbeddedEngine) in-process, or the Redis
/// engine across processes), or with [`RunLocal::run_local`](crate::RunLocal::run_local).
pub trait Workflow: BuildPlan + Send + Sync + Sized + 'static {
    /// The workflow's name: the type name in snake_case (`FraudSweep` → `"fraud_sweep"`).
    const NAME: &'static str;
    /// The workflow's doc comment in `workflow!`, trimmed; empty without one.
    const DESCRIPTION: &'static str = "";
    /// What a request takes: the input of the entry vertex.
    type Input: Data;
    /// What a request produces: the output of the exit vertex.
    type Output: Data;

    /// The workflow's shape as data.
    fn graph() -> &'static Graph;
}

/// How a workflow turns into a [`Plan`]: written by `workflow!` beside [`Workflow`]. A
/// supertrait of its own so that `Workflow` shows only what users read; not public API.
#[doc(hidden)]
pub trait BuildPlan {
    /// Adds the workflow's vertices and edges to a plan; returns its entry and exit.
    fn build<C: Codec>(plan: &mut PlanBuilder<C>) -> Fragment;

    /// The plan `run_local` executes (default codec), built once.
    fn local_plan() -> &'static Arc<Plan>;

    /// The JSON Schemas of the input and the output, for the types that implement
    /// `schemars::JsonSchema` (with the `http` feature).
    fn schemas() -> (Option<serde_json::Value>, Option<serde_json::Value>) {
        (None, None)
    }
}
