//! The runtime of goflow: the traits that `#[node]` and `workflow!` implement, a workflow's
//! graph as data, payload codecs, the execution plan, and the embedded engine.
//!
//! Use it through the `goflow` crate, which re-exports everything here together with the
//! macros. The core (traits, graph, plan, codec) does no I/O; engines are leaves on top.

mod codec;
mod context;
mod embedded;
mod error;
pub mod exec;
mod graph;
mod metrics;
mod millis;
mod node;
mod plan;
#[cfg(feature = "redis")]
pub mod redis;
mod request_id;
#[cfg(feature = "http")]
pub mod service;
mod state;
mod step;
#[cfg(any(feature = "redis", feature = "http"))]
mod trace;
mod workflow;

pub use codec::{Codec, CodecError, Json, MsgPack};
pub use context::Context;
pub use embedded::{execute, Embedded};
pub use error::{Error, Failure, NodeError};
pub use graph::{EdgeKind, Graph, GraphEach, GraphEdge, GraphVertex, VertexKind};
pub use node::{Data, Node, NodeOptions};
pub use plan::{
    Advance, ArmSpec, Feed, Fragment, Inputs, Instance, Need, Plan, PlanBuilder, PlanVertex,
    Progress, SelectFn, Slot, VertexId,
};
pub use request_id::{InvalidRequestId, RequestId, MAX_REQUEST_ID_LEN};
pub use state::{
    RequestFailure, RequestOutcome, RequestState, RequestStatus, Transition, VertexState,
    VertexStatus,
};
pub use step::{Accepts, Collection, Joins, Step};
pub use workflow::Workflow;

/// Support for the code `#[node]` and `workflow!` generate. Not public API: anything here may
/// change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::codec::{Codec, CodecError, MsgPack};
    pub use crate::context::Context;
    pub use crate::error::NodeError;
    pub use crate::graph::{Graph, GraphEdge, GraphVertex, VertexKind};
    pub use crate::node::{Data, Node, NodeOptions};
    pub use crate::plan::{ArmSpec, Fragment, Plan, PlanBuilder};
    pub use crate::step::{accepts, joins, max_nesting, Accepts, Collection, Joins, Step};
    pub use crate::workflow::Workflow;
    pub use bytes::Bytes;
    pub use core::convert::Into;
    pub use core::future::Future;
    pub use core::marker::Send;
    pub use core::option::Option::{self, None, Some};
    pub use core::result::Result::{self, Err, Ok};
    pub use std::boxed::Box;
    pub use std::sync::{Arc, OnceLock};
    pub use std::time::Duration;
    pub use std::vec;
    pub use std::vec::Vec;
}
