//! Generated code must be warning-free in a crate that denies warnings and the pedantic lints
//! users commonly enable (thiserror's `test_lints.rs`).

#![deny(
    warnings,
    unused_qualifications,
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic
)]

use goflow::prelude::*;
use serde::{Deserialize, Serialize};

/// A number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Number(pub u64);

/// Doubles.
///
/// # Errors
///
/// Never; the signature shows the fallible form.
#[node(name = "double", retries = 2)]
pub async fn double(x: Number) -> Result<Number, NodeError> {
    Ok(Number(x.0 * 2))
}

#[node]
async fn add(ctx: Context, x: Number, y: Number) -> Number {
    let _ = ctx.request_id();
    Number(x.0 + y.0)
}

workflow! {
    /// Doubles twice and adds.
    pub Sum = double -> [double as left, double as right] => add;
    pub(crate) Undocumented = double -> double as twice;
}

#[tokio::test]
async fn generated_code_passes_strict_lints() {
    let out = Sum::run_local(Number(1)).await.map(|n| n.0);
    assert_eq!(out.ok(), Some(8));
    assert_eq!(Undocumented::NAME, "undocumented");
}
