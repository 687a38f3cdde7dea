//! Procedural macros of goflow: `#[node]` and the engine of `workflow!`.
//!
//! Use them through the `goflow` crate, whose docs describe them in full; the generated code
//! refers to `goflow`'s hidden support module, so this crate alone is not usable.

use proc_macro::TokenStream;

mod duration;
mod errors;
mod names;
mod node;
mod workflow;

/// Turns an `async fn` into a workflow node, keeping the function callable as written.
///
/// See `goflow::node` for the full documentation.
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
