//! A vertex that aborts every worker process that runs it, among innocent requests on the same
//! workers: each death takes the innocent entries the worker held (running, started and
//! waiting for a slot, read ahead) along with it, and they are reclaimed beside the poison
//! again and again. The poison is failed as lost and dead-lettered; every innocent request
//! completes (none is charged for the poison's deaths often enough to fail).

use std::time::{Duration, Instant};

use goflow::prelude::*;
use goflow::request::{Failure, RequestOutcome};
use goflow::{Engine, RequestId};

use crate::processes::{worker_process, WorkerProcesses};
use crate::support::{self, raw};
use crate::{double, short_lease};

/// The input that aborts the worker process running `errand`.
const POISON: u32 = 666;

/// Aborts its worker process on [`POISON`]; else takes a little while, so that a worker holds
/// many entries (running, and started waiting for a slot) when the poison kills it.
#[node]
async fn errand(n: u32) -> u32 {
    if n == POISON {
        std::process::abort();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    n
}

workflow! {
    /// An errand, then its double.
    pub(crate) Errands = errand -> double;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vertex_that_kills_its_workers_fails_alone_and_the_requests_beside_it_complete() {
    const INNOCENT: u32 = 300;
    let (_server, config, engine, client) = short_lease::<Errands>("innocents").await;
    let mut workers = WorkerProcesses::spawn(2, &config);

    // Two poisons among 300 innocents, submitted at once: each worker holds up to 16 running
    // and 16 started ahead when one dies.
    let mut innocents: Vec<(RequestId, u32)> = Vec::new();
    let mut poisons: Vec<RequestId> = Vec::new();
    for n in 0..INNOCENT {
        if n == 40 || n == 170 {
            poisons.push(engine.submit::<Errands>(&POISON).await.unwrap());
        }
        innocents.push((engine.submit::<Errands>(&n).await.unwrap(), n));
    }

    // Replace every worker that dies, until every request has ended.
    let mut deaths = 0;
    let deadline = Instant::now() + Duration::from_secs(100);
    let mut open: Vec<RequestId> = poisons
        .iter()
        .chain(innocents.iter().map(|(id, _)| id))
        .cloned()
        .collect();
    while !open.is_empty() {
        for child in &mut workers.0 {
            if child.try_wait().unwrap().is_some() {
                deaths += 1;
                *child = worker_process(&config);
            }
        }
        let mut still = Vec::new();
        for id in open {
            let state = engine.status::<Errands>(&id).await.unwrap();
            if !state.status.is_final() {
                still.push(id);
            }
        }
        open = still;
        assert!(
            Instant::now() < deadline,
            "{} requests had not ended within 100 s ({deaths} worker deaths)",
            open.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(deaths >= 2, "the poisons killed {deaths} workers");

    // The poisons failed as lost; every innocent completed with its own output.
    for id in &poisons {
        let outcome = engine.wait::<Errands>(id, crate::LIMIT).await.unwrap();
        match outcome {
            RequestOutcome::Failed(failure) => {
                assert_eq!(failure.vertex, "errand", "{failure:?}");
                assert!(matches!(failure.failure, Failure::Lost(_)), "{failure:?}");
            }
            other => panic!("the poison {id} did not fail: {other:?}"),
        }
    }
    let mut failed = Vec::new();
    for (id, n) in &innocents {
        match engine.wait::<Errands>(id, crate::LIMIT).await.unwrap() {
            RequestOutcome::Completed(output) => assert_eq!(output, n * 2, "{id}"),
            other => failed.push(format!("{n}: {other:?}")),
        }
    }
    assert!(
        failed.is_empty(),
        "{} innocent requests did not complete ({deaths} worker deaths): {failed:?}",
        failed.len()
    );
    // Only the poisons were dead-lettered.
    let dead = format!("{}:dead", support::flow_tag(&config.prefix, Errands::NAME));
    assert_eq!(
        raw::<u64>(&client, "XLEN", vec![dead.as_str().into()]).await,
        poisons.len() as u64
    );
    println!("innocents: {deaths} worker deaths, {INNOCENT} innocent requests completed");
}
