//! Two builds of one workflow, `rollout`, for a rolling deploy (the `rollout` binary runs
//! either): version 1 is `fetch -> slow -> finish`; version 2 adds `enrich` before `finish`, so
//! the vertex numbers of the two graphs mean other vertices, and a request of version 1 run
//! on version 2's graph would come out wrong. A request's output says which graph ran it:
//! `"v1:<input>"` or `"v2:<input>+enriched"`.
//!
//! Inputs starting with `slow` take 8 s in `slow`, long enough to stop the old build's
//! processes while such requests are under way.

use std::time::Duration;

use goflow::prelude::*;

/// Takes the input as it is.
#[node]
pub async fn fetch(input: String) -> String {
    input
}

/// Works on it: 8 s for an input starting with `slow`.
#[node]
pub async fn slow(input: String) -> String {
    if input.starts_with("slow") {
        tokio::time::sleep(Duration::from_secs(8)).await;
    }
    input
}

/// Version 2's addition.
#[node]
pub async fn enrich(input: String) -> String {
    format!("{input}+enriched")
}

/// Version 1's last step.
#[node(name = "finish-v1")]
pub async fn finish_v1(input: String) -> String {
    format!("v1:{input}")
}

/// Version 2's last step.
#[node(name = "finish-v2")]
pub async fn finish_v2(input: String) -> String {
    format!("v2:{input}")
}

/// The first build.
pub mod v1 {
    use super::*;

    workflow! {
        /// Fetches, works, finishes (version 1).
        pub Rollout = fetch -> slow -> finish_v1 as finish;
    }
}

/// The second build: `enrich` added in the middle.
pub mod v2 {
    use super::*;

    workflow! {
        /// Fetches, works, enriches, finishes (version 2).
        pub Rollout = fetch -> slow -> enrich -> finish_v2 as finish;
    }
}
