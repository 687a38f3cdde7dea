//! Micro-benchmarks of the hot path: payload codecs, the join rule, and the embedded engine per
//! request and per vertex.
//!
//! ```sh
//! cargo bench --bench micro
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use goflow::__private::{Instance, Plan, Progress};
use goflow::codec::{Codec, Json, MsgPack};
use goflow::prelude::*;
use goflow::{EmbeddedEngine, Engine, Workflow};
use serde::{Deserialize, Serialize};

/// A KYC-sized payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// Whose.
    pub user_id: String,
    /// The verdict.
    pub kyc_verified: bool,
    /// Why.
    pub reason: String,
    /// Scores of the checks.
    pub scores: Vec<f64>,
}

fn profile() -> Profile {
    Profile {
        user_id: "user-123456".into(),
        kyc_verified: true,
        reason: "1 face(s), match score 0.97".into(),
        scores: vec![0.97, 0.88, 0.91],
    }
}

#[node]
async fn one(x: u32) -> u32 {
    x + 1
}

#[node]
async fn left(x: u32) -> u32 {
    x + 1
}

#[node]
async fn right(x: u32) -> u32 {
    x + 2
}

#[node]
async fn both(a: u32, b: u32) -> u32 {
    a + b
}

workflow! {
    pub Single = one;
    pub Chain10 = one -> one as s2 -> one as s3 -> one as s4 -> one as s5
        -> one as s6 -> one as s7 -> one as s8 -> one as s9 -> one as s10;
    pub Diamond = one -> [left, right] => both;
}

fn codec<C: Codec>(c: &mut Criterion, codec: &C) {
    let value = profile();
    let encoded = codec.encode(&value).unwrap();
    let mut group = c.benchmark_group(format!("codec/{}", C::NAME));
    group.bench_function("encode", |b| b.iter(|| codec.encode(&value).unwrap()));
    group.bench_function("decode", |b| {
        b.iter(|| codec.decode::<Profile>(&encoded).unwrap())
    });
    group.finish();
}

fn codecs(c: &mut Criterion) {
    codec(c, &MsgPack);
    codec(c, &Json);
}

fn join_rule(c: &mut Criterion) {
    let plan = Plan::new::<Diamond, _>(MsgPack);
    let output = MsgPack.encode(&1u32).unwrap();
    // The scheduling step of the embedded engine (the Redis engine computes the same
    // `advance` and applies it in its completion script): the entry fans out, the join fires
    // on its second parent.
    c.bench_function("plan/advance (diamond, one request)", |b| {
        b.iter(|| {
            let mut progress = Progress::new(output.clone());
            let entry = Instance::root(plan.entry());
            let advance = plan.advance(&entry, output.clone()).unwrap();
            let ready = progress.apply(advance);
            let mut joined = 0;
            for branch in ready {
                let advance = plan.advance(&branch, output.clone()).unwrap();
                joined += progress.apply(advance).len();
            }
            assert_eq!(joined, 1);
        })
    });
}

fn embedded(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = EmbeddedEngine::new();
    let mut group = c.benchmark_group("embedded");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("request of one vertex", |b| {
        b.to_async(&runtime)
            .iter(|| async { engine.run::<Single>(1).await.unwrap() })
    });
    group.bench_function("request of ten vertices (chain10)", |b| {
        b.to_async(&runtime)
            .iter(|| async { engine.run::<Chain10>(1).await.unwrap() })
    });
    group.bench_function("request of a diamond (fan-out, join)", |b| {
        b.to_async(&runtime)
            .iter(|| async { engine.run::<Diamond>(1).await.unwrap() })
    });
    group.finish();
    assert_eq!(Single::NAME, "single");
}

criterion_group!(benches, codecs, join_rule, embedded);
criterion_main!(benches);
