//! The runtime of goflow: the traits that `#[node]` and `workflow!` implement, a workflow's
//! graph as data, payload codecs, the execution plan, the lifecycle core, and the engines.
//!
//! Use it through the `goflow` crate, which re-exports this crate's public items together with
//! the macros, and documents them with examples.
//!
//! # Layout
//!
//! At the centre, with no I/O: the traits ([`Node`], [`Workflow`], [`dsl`]), the graph as data
//! ([`graph`]), codecs ([`codec`]), the plan (what each vertex takes and what its output sets
//! going), the lifecycle core (statuses, the control table, the retry policy, the sweep when a
//! request ends; its words are in [`request`]), and the attempt runner. The engines are leaves
//! on top, both behind the one [`Engine`] interface: [`embedded`] in this process, `redis`
//! (feature `redis`) across processes; `service` (feature `http`) serves either over HTTP.

mod bulk;
pub mod codec;
mod context;
pub mod embedded;
mod engine;
mod error;
mod events;
mod exec;
pub mod graph;
mod lifecycle;
mod limits;
mod listing;
mod metrics;
mod node;
mod plan;
#[cfg(feature = "redis")]
pub mod redis;
pub mod request;
mod request_id;
#[cfg(feature = "http")]
mod schema;
#[cfg(any(feature = "redis", feature = "http"))]
mod secret;
#[cfg(feature = "http")]
pub mod service;
mod step;
mod sync;
mod time;
mod trace;
mod workflow;

/// Without the `http` feature, no schema: `schema_of!` is `None`.
#[cfg(not(feature = "http"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __no_schema {
    ($t:ty) => {
        $crate::__private::None::<$crate::__private::JsonValue>
    };
}

pub use context::Context;
pub use embedded::{EmbeddedEngine, RunLocal};
pub use engine::Engine;
pub use error::{Error, NodeError};
pub use node::Node;
pub use request_id::RequestId;
pub use workflow::Workflow;

/// The traits `workflow!` uses to let rustc check every edge of a graph. Users do not
/// implement them; they appear in compile errors, which these docs explain.
pub mod dsl {
    pub use crate::step::{Accepts, Collection, Joins, Step};
}

/// Support for the code `#[node]` and `workflow!` generate, and for goflow's own tests and
/// benchmarks. Not public API: anything here may change in any release.
#[doc(hidden)]
pub mod __private {
    /// `schema_of!(T)`: no schema without the `http` feature.
    #[cfg(not(feature = "http"))]
    pub use crate::__no_schema as schema_of;
    /// `schema_of!(T)`: `T`'s JSON Schema, if it has one (with the `http` feature).
    #[cfg(feature = "http")]
    pub use crate::__schema_of as schema_of;
    pub use crate::codec::{Codec, CodecError, MsgPack};
    pub use crate::context::Context;
    pub use crate::engine::Submitted;
    pub use crate::error::NodeError;
    pub use crate::graph::{Graph, GraphEdge, GraphVertex, VertexKind};
    pub use crate::node::{Data, Node, NodeOptions};
    pub use crate::plan::{
        Advance, ArmSpec, Feed, Fragment, Inputs, Instance, Need, Plan, PlanBuilder, PlanVertex,
        Progress, SelectFn, Slot, VertexId,
    };
    #[cfg(feature = "http")]
    pub use crate::schema::{
        General as SchemaGeneral, Probe as SchemaProbe, Specific as SchemaSpecific,
    };
    pub use crate::step::{accepts, joins, max_nesting, Accepts, Collection, Joins, Step};
    pub use crate::workflow::{BuildPlan, Workflow};
    pub use bytes::Bytes;
    pub use core::convert::Into;
    pub use core::future::Future;
    pub use core::marker::Send;
    pub use core::option::Option::{self, None, Some};
    pub use core::result::Result::{self, Err, Ok};
    pub use serde_json::Value as JsonValue;
    pub use std::boxed::Box;
    pub use std::sync::{Arc, OnceLock};
    pub use std::time::Duration;
    pub use std::vec;
    pub use std::vec::Vec;
}
