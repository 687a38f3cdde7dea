//! Conditionals and for-each expand to warning-free code under the strict lints of `lints.rs`,
//! with the prelude names shadowed as in `hygiene.rs`.

#![deny(
    warnings,
    unused_qualifications,
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic
)]
#![allow(dead_code, non_camel_case_types)]

use goflow::prelude::*;
use serde::{Deserialize, Serialize};

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
struct Sized;
struct Into;
struct Future;
struct Arc;
struct Duration;
mod core {}
mod std {}

/// A verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Verdict {
    /// Yes.
    Pass(u64),
    /// No.
    Fail(u64),
    /// Maybe.
    Skip(u64),
}

/// One only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Single {
    /// The one.
    Only(u64),
}

#[node]
async fn classify(x: u64) -> Verdict {
    match x % 3 {
        0 => Verdict::Pass(x),
        1 => Verdict::Fail(x),
        _ => Verdict::Skip(x),
    }
}

#[node]
async fn single(x: u64) -> Single {
    Single::Only(x)
}

#[node]
async fn double(x: u64) -> u64 {
    x * 2
}

#[node]
async fn items(x: u64) -> ::std::vec::Vec<u64> {
    (0..x).collect()
}

#[node]
async fn sum(xs: ::std::vec::Vec<u64>) -> u64 {
    xs.iter().sum()
}

workflow! {
    /// Conditional.
    pub Cond = classify ? { Pass => double, Fail => double as d2 -> double as d3, Skip => {} } -> double as last;
    /// For-each.
    pub Each = items -> each { double -> classify ? { Pass => double as d2, Fail => {}, Skip => {} } -> double as d3 } => sum;
    /// One arm.
    pub One = single ? { Only => double } -> double as d2;
    /// A group entering at one vertex twice.
    pub Dup = items -> each { [double, double -> double as d4] => add2 } => sum;
    /// The same in an arm.
    pub DupArm = single ? { Only => [double, double -> double as d4] => add2 } -> double as d5;
    /// Nested.
    pub Nest = items -> each { Cond } => sum -> One;
}

#[node]
async fn add2(x: u64, y: u64) -> u64 {
    x + y
}

#[tokio::test]
async fn branches_pass_strict_lints_with_prelude_names_shadowed() {
    assert!(matches!(
        Each::run_local(4).await,
        ::core::result::Result::Ok(36)
    ));
    // 3 -> Pass(3) -> 6 -> 12; 4 -> Fail(4) -> 8 -> 16 -> 32; 5 -> Skip(5) -> 10
    assert!(matches!(
        Cond::run_local(3).await,
        ::core::result::Result::Ok(12)
    ));
    assert!(matches!(
        Cond::run_local(4).await,
        ::core::result::Result::Ok(32)
    ));
    assert!(matches!(
        Cond::run_local(5).await,
        ::core::result::Result::Ok(10)
    ));
    // items 0..3 through Cond: 0 -> 0, 1 -> 8, 2 -> 4: 12 -> One: 24 -> 48
    assert!(matches!(
        Nest::run_local(3).await,
        ::core::result::Result::Ok(48)
    ));
    assert!(matches!(
        Nest::run_local(0).await,
        ::core::result::Result::Ok(0)
    ));
}
