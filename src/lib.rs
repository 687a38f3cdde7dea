//! # goflow
//!
//! Typed workflow DAGs, declared with two macros and checked by the compiler, run in-process
//! (the embedded engine) or, with the Redis engine, on a fleet of workers.
//!
//! ```
//! use goflow::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! pub struct Image(String);
//!
//! #[node]
//! async fn get_image(user: String) -> Image {
//!     Image(format!("{user}.png"))
//! }
//!
//! #[node(retries = 2, timeout = "5s")]
//! async fn face_detect(image: Image) -> Result<bool, NodeError> {
//!     Ok(image.0.ends_with(".png"))
//! }
//!
//! #[node]
//! async fn face_match(image: Image) -> Result<f64, std::io::Error> {
//!     Ok(if image.0.starts_with("alice") { 0.97 } else { 0.1 })
//! }
//!
//! #[node]
//! async fn verdict(detected: bool, score: f64) -> String {
//!     if detected && score > 0.9 { "verified".into() } else { "rejected".into() }
//! }
//!
//! workflow! {
//!     /// Checks a user's image.
//!     pub Verify = get_image -> [face_detect, face_match] => verdict;
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), goflow::Error> {
//! assert_eq!(Verify::run_local("alice".to_owned()).await?, "verified");
//! assert_eq!(Verify::NAME, "verify");
//! # Ok(()) }
//! ```
//!
//! The node functions stay callable as written; `#[node]` adds a type of the same name (in the
//! type namespace) that `workflow!` uses. See the README for the whole DSL, the compile errors
//! it reports, and how goflow maps to the Go original.

pub use goflow_macros::node;
pub use goflow_runtime::{
    codec, dsl, embedded, graph, request, Context, EmbeddedEngine, Engine, Error, Node, NodeError,
    RequestId, Workflow,
};

#[cfg(feature = "redis")]
pub use goflow_runtime::redis;

#[cfg(feature = "http")]
pub use goflow_runtime::service;

/// Declares workflows: typed DAGs of nodes, checked at compile time.
///
/// ```text
/// workflow! {
///     /// Docs and attributes are kept.
///     pub Kyc = get_kyc_image -> [face_detect, face_match] => mark_profile;
///     pub Diamond = { start -> [left, right]; [left, right] => join; };
///     pub Outer = get_image -> Kyc -> mark_profile;        // a workflow as a vertex
///     pub Chain = inc -> dbl -> inc as inc2 -> dbl as dbl2;  // `as`: another vertex, same fn
///     pub Verify = face_detect -> check_face ? {              // a conditional
///         Pass => face_match,
///         Fail => create_user -> notify,
///         Skip => {},
///     } -> generate_result;
///     pub Sweep = get_users -> each { verify -> mark } => summarize; // a for-each
/// }
/// ```
///
/// - `a -> b`: `b` takes `a`'s output. `a -> [b, c]`: `b` and `c` each take it, in parallel.
/// - `[b, c] => d`: `d` takes `b`'s and `c`'s outputs as its parameters, in that order.
///   Branches may be chains: `a -> [b -> c, d] => e`.
/// - A braced body `{ ...; ...; }` allows any DAG; the same name is the same vertex.
/// - `v ? { Variant => arm, .. } -> merge`: `v` outputs an enum; the arm of its variant runs
///   with the variant's one-field payload (`{}` passes it straight on), and `merge` takes the
///   output of the arm that ran. The arms cover every variant, like a `match`.
/// - `v -> each { body } => gather`: `v` outputs a `Vec<T>`; the body runs once per item and
///   `gather` takes the `Vec` of its outputs, in item order (empty for an empty `Vec`).
/// - The vertices of an arm or a body belong to it: their names are not used elsewhere.
/// - Each workflow becomes a type implementing [`Workflow`], named in snake_case (`Kyc` is
///   `"kyc"`), with its graph as data and `run_local` on the embedded engine.
///
/// Cycles, self-loops, edge type mismatches, join arity mismatches, `[b, c] -> d`, vertices
/// with un-joined predecessors, unknown nodes, duplicate workflow names, missing or unknown
/// arms, arms or bodies whose types do not fit, and `each` over something other than a `Vec`
/// are compile errors pointing at the DSL tokens; all of them are reported in one build.
#[macro_export]
macro_rules! workflow {
    ($($tokens:tt)*) => {
        $crate::__private::workflow! { crate = $crate; $($tokens)* }
    };
}

/// Everything a file declaring nodes and workflows needs: the macros, [`Workflow`],
/// [`Context`], [`NodeError`], and [`RunLocal`](embedded::RunLocal) for `Kyc::run_local`.
pub mod prelude {
    pub use crate::embedded::RunLocal;
    pub use crate::{node, workflow, Context, NodeError, Workflow};
}

/// Support for the generated code. Not public API: anything here may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use goflow_macros::workflow;
    pub use goflow_runtime::__private::*;
}
