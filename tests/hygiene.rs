//! The macros' expansions use absolute paths: shadowing prelude names (as serde's `test_gen.rs`
//! and the proc-macro workshop do) must not break them.

#![allow(dead_code, non_camel_case_types)]

use goflow::prelude::*;
use serde::{Deserialize, Serialize};

// Shadow everything a careless expansion would pick up from the prelude.
struct Result;
struct Ok;
struct Err;
struct Option;
struct Some;
struct None;
struct Box;
struct Vec;
struct String;
struct Send;
struct Sync;
struct Into;
struct Future;
struct Arc;
struct Duration;
mod core {}
mod std {}

/// A number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Number(u64);

#[node(retries = 1, timeout = "1s", backoff = "1ms")]
async fn double(x: Number) -> ::core::result::Result<Number, NodeError> {
    ::core::result::Result::Ok(Number(x.0 * 2))
}

#[node]
async fn add(ctx: Context, x: Number, y: Number) -> Number {
    let _ = ctx.attempt();
    Number(x.0 + y.0)
}

#[node]
async fn io_fallible(x: Number) -> ::std::io::Result<Number> {
    ::std::io::Result::Ok(x)
}

workflow! {
    pub Doubled = double -> [io_fallible, double as again] => add;
    pub Outer = Doubled -> double as last;
}

#[tokio::test]
async fn expansions_resolve_with_prelude_names_shadowed() {
    let out = Outer::run_local(Number(3)).await.map(|n| n.0);
    assert_eq!(out.ok(), ::core::option::Option::Some(36));
}
