//! On a Redis Cluster of 3 primaries: KYC requests of four workflows (each workflow's keys in a
//! hash slot of their own, so on the primary that serves it), three worker processes, one
//! SIGKILLed mid-run. Every request completes once, and nothing is left behind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use goflow::prelude::*;
use goflow::redis::RedisEngine;
use goflow::request::RequestOutcome;
use goflow::{Engine, RequestId};

use crate::processes::WorkerProcesses;
use crate::support::cluster::{cli, RedisCluster};
use crate::support::{self, pending_by_consumer, raw, raw_client, wait_until};
use crate::{detect, expected, get_image, kyc, score, verdict, Kyc};

workflow! {
    /// The KYC workflow under other names: each workflow's keys share a hash tag of their own,
    /// so the four are spread over the cluster's primaries as their tags hash.
    pub(crate) KycEast = get_image -> [detect, score] => verdict;
    pub(crate) KycWest = get_image -> [detect, score] => verdict;
    pub(crate) KycNorth = get_image -> [detect, score] => verdict;
}

/// The four workflows' names, in the order requests are submitted to them.
const FLOWS: [&str; 4] = [Kyc::NAME, KycEast::NAME, KycWest::NAME, KycNorth::NAME];

async fn submit(engine: &RedisEngine, flow: &str, user: &String) -> RequestId {
    let submitted = match flow {
        f if f == Kyc::NAME => engine.submit::<Kyc>(user).await,
        f if f == KycEast::NAME => engine.submit::<KycEast>(user).await,
        f if f == KycWest::NAME => engine.submit::<KycWest>(user).await,
        _ => engine.submit::<KycNorth>(user).await,
    };
    submitted.expect("submit")
}

async fn outcome(
    engine: &RedisEngine,
    flow: &str,
    id: &RequestId,
    limit: Duration,
) -> RequestOutcome<String> {
    let outcome = match flow {
        f if f == Kyc::NAME => engine.wait::<Kyc>(id, limit).await,
        f if f == KycEast::NAME => engine.wait::<KycEast>(id, limit).await,
        f if f == KycWest::NAME => engine.wait::<KycWest>(id, limit).await,
        _ => engine.wait::<KycNorth>(id, limit).await,
    };
    outcome.expect("wait")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyc_flows_of_four_workflows_survive_a_worker_killed_mid_run_on_a_cluster() {
    const REQUESTS: usize = 2000;
    let cluster = RedisCluster::start(3, 0);
    let mut config = support::config_at(&cluster.url(), "crash-cluster");
    config.lease = Duration::from_secs(1);
    let engine = kyc(config.clone())
        .register::<KycEast>()
        .register::<KycWest>()
        .register::<KycNorth>()
        .connect()
        .await
        .expect("connect to the cluster");
    let client = raw_client(&config.url).await;
    let tags: Vec<String> = FLOWS
        .iter()
        .map(|flow| support::flow_tag(&config.prefix, flow))
        .collect();

    let mut workers = WorkerProcesses::spawn(3, &config);
    let mut requests = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        let flow = FLOWS[i % FLOWS.len()];
        let user = format!("user-{i:04}");
        requests.push((flow, submit(&engine, flow, &user).await, user));
    }

    // Kill one worker while it holds entries: some done, most still to go.
    let done_streams: Vec<String> = tags.iter().map(|tag| format!("{tag}:done")).collect();
    wait_until(
        "a quarter of the requests complete",
        Duration::from_secs(60),
        async || {
            let mut done = 0;
            for stream in &done_streams {
                done += raw::<u64>(&client, "XLEN", vec![stream.as_str().into()]).await;
            }
            done >= (REQUESTS / 4) as u64
        },
    )
    .await;
    let (victim, lost) = workers.kill_first_holding::<Kyc>(&client, &config).await;

    // Every request completes with its own output.
    let deadline = Instant::now() + Duration::from_secs(90);
    for (flow, id, user) in &requests {
        let left = deadline.saturating_duration_since(Instant::now());
        match outcome(&engine, flow, id, left).await {
            RequestOutcome::Completed(output) => assert_eq!(output, expected(user), "{id}"),
            other => panic!("request {id} of {flow} ({user}) did not complete: {other:?}"),
        }
    }

    // Each request completed once, nothing was dead-lettered, and nothing is left in a ready
    // stream or pending.
    let mut completions: HashMap<String, usize> = HashMap::new();
    for stream in &done_streams {
        for (_, entry) in support::stream_entries(&client, stream).await {
            assert_eq!(entry.get("st").map(String::as_str), Some("completed"));
            *completions.entry(entry["r"].clone()).or_default() += 1;
        }
    }
    assert_eq!(completions.len(), REQUESTS);
    assert!(
        completions.values().all(|&n| n == 1),
        "a request completed twice"
    );
    for (flow, tag) in FLOWS.iter().zip(&tags) {
        assert_eq!(
            raw::<u64>(&client, "XLEN", vec![format!("{tag}:dead").into()]).await,
            0,
            "dead letters of {flow}"
        );
        let ready = support::ready_stream_named(&client, &config.prefix, flow)
            .await
            .expect("a ready stream");
        assert_eq!(
            raw::<u64>(&client, "XLEN", vec![ready.as_str().into()]).await,
            0,
            "{ready}"
        );
        let pending = pending_by_consumer(&client, &ready).await;
        assert!(pending.values().all(|&n| n == 0), "{ready}: {pending:?}");
    }
    // The survivors are still serving.
    for child in &mut workers.0[1..] {
        assert!(
            child.try_wait().unwrap().is_none(),
            "a surviving worker exited"
        );
    }
    // Where the workflows' keys are: each workflow's on one primary, as its tag hashes.
    let holding = cluster
        .nodes
        .iter()
        .filter(|node| cli(node.port(), &["DBSIZE"]).trim() != "0")
        .count();
    println!(
        "cluster crash: the killed worker ({victim}) held {lost} entries; the keys of {} \
         workflows are on {holding} of {} primaries",
        FLOWS.len(),
        cluster.primaries()
    );
}
