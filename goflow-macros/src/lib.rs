//! Procedural macros of goflow: `#[node]` and the engine of `workflow!`.
//!
//! Use them through the `goflow` crate (`goflow::node`, `goflow::workflow!`): the generated
//! code refers to `goflow`'s hidden support module, so this crate alone is not usable.

use proc_macro::TokenStream;

mod duration;
mod errors;
mod names;
mod node;
mod workflow;

/// Turns an `async fn` into a workflow node, keeping the function callable as written.
///
/// ```ignore
/// use goflow::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// pub struct Image(pub String);
///
/// #[node]
/// async fn get_image(user: String) -> Image {
///     Image(format!("{user}.png"))
/// }
///
/// #[node(name = "face-detect", retries = 2, timeout = "5s", backoff = "200ms")]
/// async fn face_detect(ctx: Context, image: Image) -> Result<bool, NodeError> {
///     if image.0.is_empty() {
///         return Err(NodeError::permanent(format!("{}: no image", ctx.vertex())));
///     }
///     Ok(image.0.ends_with(".png"))
/// }
///
/// #[node]
/// async fn face_match(image: Image) -> Result<f64, std::io::Error> {
///     Ok(if image.0.starts_with("alice") { 0.97 } else { 0.1 })
/// }
///
/// // Two inputs: the join of two branches, in order.
/// #[node]
/// async fn verdict(detected: bool, score: f64) -> String {
///     if detected && score > 0.9 { "verified".into() } else { "rejected".into() }
/// }
///
/// workflow! {
///     pub Verify = get_image -> [face_detect, face_match] => verdict;
/// }
///
/// # async fn run() {
/// assert_eq!(Verify::run_local("alice".to_owned()).await.unwrap(), "verified");
/// assert_eq!(<face_detect as goflow::Node>::NAME, "face-detect");
/// # }
/// ```
///
/// (The example needs the `goflow` crate, so it is not run as this crate's doctest.)
///
/// # Signatures
///
/// A node is a free `async fn` (not a method, not `const`, `unsafe`, `extern` or generic):
///
/// - **Inputs**: one owned parameter, the output of the vertex before it (or the workflow's
///   input); or several, which make a join: `[b, c] => d` calls `d` with the outputs of `b`
///   and `c`, in that order. Parameters are taken by value: a borrowed type (`&str`), an
///   `impl Trait` or a trait object is rejected, with the owned type to write instead.
/// - **Context**: optionally one more parameter of type `Context`, anywhere in the list and
///   not counted as an input: the request id, the vertex's name, the attempt, an
///   idempotency key, cancellation.
/// - **Output**: `T`, or `Result<T, E>` with `E: Into<NodeError>` (any
///   `std::error::Error + Send + Sync + 'static`, or `NodeError` itself); an `Err` fails the
///   attempt, which is retried if the options allow. No return type means `()`.
/// - Every input and output type travels between vertices encoded, so it must be
///   `Serialize + DeserializeOwned + Send + 'static` (derive serde's two traits) and `pub`
///   (a `pub` type in a private module is fine). A type that is not is reported once, at the
///   type in the signature.
///
/// # Options
///
/// `#[node(name = "...", retries = N, timeout = "...", backoff = "...", crate = path)]`, all
/// optional, in any order; every problem with them is reported in one build.
///
/// - `name = "resize"`: the node's name in graphs, metrics and traces (`Node::NAME`);
///   the function's name by default. Not empty.
/// - `retries = 3`: attempts after the first, for failures that may pass (an error not
///   marked permanent, a timeout, a panic). Default 0.
/// - `timeout = "5s"`: how long one attempt may run before it is cancelled; longer than
///   zero. Default: no limit.
/// - `backoff = "100ms"`: the delay before the first retry, doubled for each later one (up
///   to a minute), less a random jitter of up to half. Default 100 ms.
/// - `crate = ::goflow`: the path of the `goflow` crate, for code that re-exports it under
///   another name. Default `::goflow`.
///
/// Durations are whole numbers with a unit, `ns`, `us`, `ms`, `s`, `m` or `h`, and may be
/// compounded: `"250ms"`, `"1m30s"`.
///
/// # What it generates
///
/// - The function, unchanged (only `#[allow(clippy::unused_async)]` is added: a node is
///   `async` by contract even when it never awaits), still callable as written, for tests.
/// - A field-less `pub struct` of the same name, in the type namespace, so it does not clash
///   with the function: the vertex that `workflow!` names. It is hidden from the docs unless
///   the function is `pub`.
/// - `Node` for that struct (and so `Step`, through the runtime's blanket impl): its `Input`
///   (the parameter's type, or the tuple of the parameters' types for a join), `Output`,
///   `NAME`, `ARITY` (the number of inputs), `options()` and `call`, which calls the
///   function and turns its error into a `NodeError`.
/// - `Accepts<Input>`, which `workflow!` checks at every `a -> node`, and for a join
///   `Joins<N, Input>`, checked at every `[..] => node`.
///
/// When the function is rejected, it is still emitted as written, with the struct and
/// complete impls, so that the workflows using it report nothing more than the one mistake.
#[proc_macro_attribute]
pub fn node(args: TokenStream, item: TokenStream) -> TokenStream {
    node::expand(args.into(), &item.into()).into()
}

/// The engine of `goflow::workflow!`, which forwards here with the path of the `goflow` crate.
#[doc(hidden)]
#[proc_macro]
pub fn workflow(input: TokenStream) -> TokenStream {
    workflow::expand(input.into()).into()
}
