//! The workflow trait, implemented by `workflow!` for each workflow type it declares.

use std::future::Future;
use std::sync::Arc;

use crate::codec::{Codec, MsgPack};
use crate::embedded;
use crate::error::Error;
use crate::graph::Graph;
use crate::node::Data;
use crate::plan::{Fragment, Plan, PlanBuilder};
use crate::request_id::RequestId;

/// A workflow: a typed DAG of nodes, declared with `workflow!`.
pub trait Workflow: Send + Sync + Sized + 'static {
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

    /// Adds the workflow's vertices and edges to a plan; returns its entry and exit.
    #[doc(hidden)]
    fn build<C: Codec>(plan: &mut PlanBuilder<C>) -> Fragment;

    /// The plan `run_local` executes (default codec), built once.
    #[doc(hidden)]
    fn local_plan() -> &'static Arc<Plan>;

    /// Runs one request to completion on the embedded (in-process) engine.
    ///
    /// Vertices run as tokio tasks, so fan-out branches run in parallel; this must be called
    /// inside a tokio runtime. For many requests, or another codec, use
    /// [`Embedded`](crate::Embedded).
    fn run_local(input: Self::Input) -> impl Future<Output = Result<Self::Output, Error>> + Send {
        embedded::run_typed::<Self, _>(
            Arc::clone(Self::local_plan()),
            MsgPack,
            RequestId::generate(),
            input,
        )
    }
}
