//! On a Redis Cluster of 3 primaries, KYC requests of four workflows:
//! - each workflow split into 3 partitions, so that its requests spread over every primary;
//!   three worker processes, one SIGKILLed mid-run: every request completes once, and nothing
//!   is left behind;
//! - each workflow's keys in one hash slot (one partition), or in 3 (every workflow then has a
//!   partition on each primary), with a replica per primary, the primary of `kyc`'s first
//!   partition SIGKILLed mid-run: once its replica has taken over,
//!   the workers and the engine carry on by themselves; the test reports what the failover
//!   lost (replication is asynchronous: what the primary acknowledged in its last moments but
//!   had not yet sent to its replica is gone);
//! - the slot of one partition moved to another primary while the deployment is idle, as a
//!   reshard moves it: the clients follow, and every request completes once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fred::prelude::Client;
use goflow::prelude::*;
use goflow::redis::{RedisConfig, RedisEngine};
use goflow::request::RequestOutcome;
use goflow::{Engine, RequestId};

use crate::processes::WorkerProcesses;
use crate::support::cluster::{cli, RedisCluster};
use crate::support::{self, pending_by_consumer, raw, raw_client, wait_until};
use crate::{detect, expected, get_image, kyc, score, verdict, Kyc, LIMIT};

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
    let id = RequestId::generate();
    submit_as(engine, flow, &id, user).await.expect("submit");
    id
}

/// Submits `user`'s request to `flow` under `id` (again, if it was: the same id and input are
/// the same request).
async fn submit_as(
    engine: &RedisEngine,
    flow: &str,
    id: &RequestId,
    user: &String,
) -> Result<(), goflow::Error> {
    let id = id.clone();
    match flow {
        f if f == Kyc::NAME => engine.submit_as::<Kyc>(id, user).await,
        f if f == KycEast::NAME => engine.submit_as::<KycEast>(id, user).await,
        f if f == KycWest::NAME => engine.submit_as::<KycWest>(id, user).await,
        _ => engine.submit_as::<KycNorth>(id, user).await,
    }
    .map(|_| ())
}

async fn outcome(
    engine: &RedisEngine,
    flow: &str,
    id: &RequestId,
    limit: Duration,
) -> RequestOutcome<String> {
    try_outcome(engine, flow, id, limit).await.expect("wait")
}

async fn try_outcome(
    engine: &RedisEngine,
    flow: &str,
    id: &RequestId,
    limit: Duration,
) -> Result<RequestOutcome<String>, goflow::Error> {
    match flow {
        f if f == Kyc::NAME => engine.wait::<Kyc>(id, limit).await,
        f if f == KycEast::NAME => engine.wait::<KycEast>(id, limit).await,
        f if f == KycWest::NAME => engine.wait::<KycWest>(id, limit).await,
        _ => engine.wait::<KycNorth>(id, limit).await,
    }
}

/// Settings for `test` on `cluster` (leases of 1 s, each workflow split into `partitions`),
/// an engine of them with the four workflows, and a plain client of the cluster.
async fn four_workflows(
    cluster: &RedisCluster,
    test: &str,
    partitions: u16,
) -> (RedisConfig, RedisEngine, Client) {
    let mut config = support::config_at(&cluster.url(), test);
    config.lease = Duration::from_secs(1);
    config.partitions = partitions;
    let engine = kyc(config.clone())
        .register::<KycEast>()
        .register::<KycWest>()
        .register::<KycNorth>()
        .connect()
        .await
        .expect("connect to the cluster");
    let client = raw_client(&config.url).await;
    (config, engine, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyc_flows_of_four_workflows_survive_a_worker_killed_mid_run_on_a_cluster() {
    const REQUESTS: usize = 2000;
    let cluster = RedisCluster::start(3, 0);
    let (config, engine, client) = four_workflows(&cluster, "crash-cluster", 3).await;
    // Every partition of every workflow.
    let tags: Vec<(&str, String)> = FLOWS
        .iter()
        .flat_map(|flow| {
            config
                .hash_tags(flow)
                .into_iter()
                .map(move |tag| (*flow, tag))
        })
        .collect();

    // All submitted first, so that every worker has a backlog to take from from its start.
    let mut requests = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        let flow = FLOWS[i % FLOWS.len()];
        let user = format!("user-{i:04}");
        requests.push((flow, submit(&engine, flow, &user).await, user));
    }
    let mut workers = WorkerProcesses::spawn(3, &config);

    // Kill one worker while it holds entries (of any of the workflows): some done, most still
    // to go.
    let done_streams: Vec<String> = tags.iter().map(|(_, tag)| format!("{tag}:done")).collect();
    wait_until(
        "the first requests complete",
        Duration::from_secs(60),
        async || {
            let mut done = 0;
            for stream in &done_streams {
                done += raw::<u64>(&client, "XLEN", vec![stream.as_str().into()]).await;
            }
            done >= 20
        },
    )
    .await;
    // Each partition's ready stream: the version's, under the partition's tag.
    let mut readies = Vec::new();
    for (flow, tag) in &tags {
        let ready = support::ready_stream_named(&client, &config.prefix, flow).await;
        let ready = ready.expect("a ready stream");
        let home = support::flow_tag(&config.prefix, flow);
        readies.push(ready.replacen(&home, tag, 1));
    }
    let victim_tag = format!("-{}-", workers.0[0].id());
    let held_by_victim = async || {
        let mut held = (String::new(), 0);
        for ready in &readies {
            for (consumer, n) in pending_by_consumer(&client, ready).await {
                if consumer.contains(&victim_tag) {
                    held = (consumer, held.1 + n);
                }
            }
        }
        held
    };
    wait_until("the victim holds entries", LIMIT, async || {
        held_by_victim().await.1 > 0
    })
    .await;
    workers.kill(0);
    let (victim, lost) = held_by_victim().await;
    assert!(lost > 0, "the kill landed while the worker held entries");

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
    let mut completed_in = Vec::new();
    for ((flow, tag), ready) in tags.iter().zip(&readies) {
        assert_eq!(
            raw::<u64>(&client, "XLEN", vec![format!("{tag}:dead").into()]).await,
            0,
            "dead letters of {flow}"
        );
        let done = raw::<u64>(&client, "XLEN", vec![format!("{tag}:done").into()]).await;
        completed_in.push(done);
        assert!(done > 0, "no request of {flow} was in partition {tag}");
        assert_eq!(
            raw::<u64>(&client, "XLEN", vec![ready.as_str().into()]).await,
            0,
            "{ready}"
        );
        let pending = pending_by_consumer(&client, ready).await;
        assert!(pending.values().all(|&n| n == 0), "{ready}: {pending:?}");
    }
    // The survivors are still serving.
    for child in &mut workers.0[1..] {
        assert!(
            child.try_wait().unwrap().is_none(),
            "a surviving worker exited"
        );
    }
    // Where the workflows' keys are: each workflow's partitions on every primary.
    for flow in FLOWS {
        let mut primaries: Vec<usize> = tags
            .iter()
            .filter(|(of, _)| *of == flow)
            .map(|(_, tag)| primary_of(&cluster, tag).expect("a primary holds the partition"))
            .collect();
        primaries.sort_unstable();
        primaries.dedup();
        assert_eq!(
            primaries.len(),
            cluster.primaries(),
            "the partitions of {flow} are on primaries {primaries:?}"
        );
    }
    println!(
        "cluster crash: the killed worker ({victim}) held {lost} entries; each of {} \
         workflows has a partition on each of {} primaries; requests completed per \
         partition: {completed_in:?}",
        FLOWS.len(),
        cluster.primaries()
    );
}

/// The node of `cluster` that is a primary now and holds the keys of hash tag `tag`, if one
/// does.
fn primary_of(cluster: &RedisCluster, tag: &str) -> Option<usize> {
    let slot = cli(cluster.nodes[0].port(), &["CLUSTER", "KEYSLOT", tag]);
    let slot = slot.trim();
    cluster.nodes.iter().position(|node| {
        node.is_running()
            && cli(node.port(), &["ROLE"]).starts_with("master")
            && cli(node.port(), &["CLUSTER", "COUNTKEYSINSLOT", slot]).trim() != "0"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_mid_run_fails_over_and_the_flows_go_on() {
    fail_over(1).await;
}

/// As above, each workflow split into 3 partitions, so that every workflow has one on the
/// primary that dies: what it loses is only of requests in those partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_mid_run_fails_over_with_every_workflow_on_it() {
    fail_over(3).await;
}

/// The failover tests, each workflow in `partitions`: the primary of `kyc`'s partition 0 is
/// killed mid-run.
async fn fail_over(partitions: u16) {
    const REQUESTS: usize = 1000;
    const AFTER: usize = 100;
    let mut cluster = RedisCluster::start(3, 1);
    let (config, engine, client) = four_workflows(&cluster, "failover", partitions).await;
    let _workers = WorkerProcesses::spawn(2, &config);
    let mut requests = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        let flow = FLOWS[i % FLOWS.len()];
        let user = format!("user-{i:04}");
        requests.push((flow, submit(&engine, flow, &user).await, user));
    }
    let kyc_tag = support::flow_tag(&config.prefix, Kyc::NAME);
    let done = format!("{kyc_tag}:done");
    wait_until(
        "some requests complete",
        Duration::from_secs(60),
        async || raw::<u64>(&client, "XLEN", vec![done.as_str().into()]).await >= 25,
    )
    .await;

    // The primary of `kyc` dies; its replica takes over. The partitions it held, of every
    // workflow, are the ones that may lose what it had not replicated.
    let victim = primary_of(&cluster, &kyc_tag).expect("a primary holds kyc's keys");
    let mut on_victim = std::collections::HashSet::new();
    for flow in FLOWS {
        for tag in config.hash_tags(flow) {
            if primary_of(&cluster, &tag) == Some(victim) {
                on_victim.insert(tag);
            }
        }
    }
    // A request's partition: its id's hash slot modulo the number of partitions (see the
    // engine's PROTOCOL.md).
    let exposed = |flow: &str, id: &RequestId| {
        let tags = config.hash_tags(flow);
        let slot = usize::from(fred::util::redis_keyslot(id.as_str().as_bytes()));
        on_victim.contains(&tags[slot % tags.len()])
    };
    let killed_at = Instant::now();
    // (Blocking calls: kept off the runtime's threads, which the engine's client needs.)
    let promoted = tokio::task::block_in_place(|| {
        cluster.nodes[victim].kill();
        // Its replica is promoted once the others have marked it failed.
        let deadline = Instant::now() + Duration::from_secs(30);
        let promoted = loop {
            if let Some(node) = primary_of(&cluster, &kyc_tag) {
                break node;
            }
            assert!(
                Instant::now() < deadline,
                "no replica took over kyc's keys within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        cluster.wait_until_ok();
        promoted
    });
    assert_ne!(promoted, victim);
    let promoted_after = killed_at.elapsed();

    // Requests submitted after the failover complete, on every workflow. Until the engine's
    // client has found the new primary, a submit to it may fail (a timeout: the service's
    // 503); it is tried again under the same id, as a client would, and is one request.
    let mut after = Vec::with_capacity(AFTER);
    let mut refused = 0;
    let retry_until = Instant::now() + Duration::from_secs(30);
    for i in 0..AFTER {
        let flow = FLOWS[i % FLOWS.len()];
        let user = format!("after-{i:04}");
        let id = RequestId::generate();
        while let Err(error) = submit_as(&engine, flow, &id, &user).await {
            assert!(
                Instant::now() < retry_until,
                "submits still fail 30 s after the failover: {error:?}"
            );
            refused += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        after.push((flow, id, user));
    }
    let serving_after = killed_at.elapsed();
    for (flow, id, user) in &after {
        match outcome(&engine, flow, id, Duration::from_secs(60)).await {
            RequestOutcome::Completed(output) => assert_eq!(output, expected(user), "{id}"),
            other => panic!("request {id} of {flow}, submitted after the failover: {other:?}"),
        }
    }

    // Those submitted before: the workflows on the other primaries lose nothing; on the one
    // that failed over, what its last moments had not replicated is reported.
    let mut completed = 0;
    let mut unknown = 0;
    let mut stuck = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    for (flow, id, user) in &requests {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        match try_outcome(&engine, flow, id, left).await {
            Ok(RequestOutcome::Completed(output)) => {
                assert_eq!(output, expected(user), "{id}");
                completed += 1;
            }
            Err(goflow::Error::UnknownRequest { .. }) if exposed(flow, id) => unknown += 1,
            Ok(RequestOutcome::Pending(status)) if exposed(flow, id) => {
                stuck.push(format!("{id} {status}"))
            }
            other => panic!("request {id} of {flow} ({user}): {other:?}"),
        }
    }
    println!(
        "failover ({partitions} partition(s) per workflow, {} on the killed primary): the \
         replica took over {:.1} s after its primary was killed, and the \
         engine had submitted {AFTER} more requests {:.1} s after it ({refused} submits \
         refused meanwhile, then tried again); of {REQUESTS} requests submitted before, \
         {completed} completed, {unknown} were lost with the primary's last writes \
         (unknown), {} were left unfinished ({stuck:?}); all {AFTER} submitted after \
         completed",
        on_victim.len(),
        promoted_after.as_secs_f64(),
        serving_after.as_secs_f64(),
        stuck.len()
    );
    assert_eq!(completed + unknown + stuck.len(), REQUESTS);
}

/// A slot holding one partition of `kyc` (its home, with queued requests, the version's graph
/// and the partition count) is moved to another primary while the deployment is idle, as the
/// README says to reshard: the engine's client, whose map of the slots is stale, is
/// redirected (`MOVED`) and follows; the workers started afterwards run every request, those
/// queued before the move and those submitted after it, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_while_idle_is_followed() {
    const BEFORE: usize = 400;
    const AFTER: usize = 100;
    let cluster = RedisCluster::start(3, 0);
    let (config, engine, client) = four_workflows(&cluster, "reshard", 3).await;
    let mut requests = Vec::with_capacity(BEFORE + AFTER);
    for i in 0..BEFORE {
        let flow = FLOWS[i % FLOWS.len()];
        let user = format!("user-{i:04}");
        requests.push((flow, submit(&engine, flow, &user).await, user));
    }
    let home = support::flow_tag(&config.prefix, Kyc::NAME);
    let slot: u16 = cli(cluster.nodes[0].port(), &["CLUSTER", "KEYSLOT", &home])
        .trim()
        .parse()
        .expect("a slot");
    let from = primary_of(&cluster, &home).expect("a primary holds kyc's home partition");
    let to = (from + 1) % cluster.primaries();
    let moved = tokio::task::block_in_place(|| cluster.move_slot(slot, from, to));
    assert_eq!(primary_of(&cluster, &home), Some(to), "the slot moved");
    assert!(moved > 0, "the slot held kyc's keys");

    let _workers = WorkerProcesses::spawn(2, &config);
    for i in 0..AFTER {
        let flow = FLOWS[i % FLOWS.len()];
        let user = format!("after-{i:04}");
        requests.push((flow, submit(&engine, flow, &user).await, user));
    }
    for (flow, id, user) in &requests {
        match outcome(&engine, flow, id, Duration::from_secs(60)).await {
            RequestOutcome::Completed(output) => assert_eq!(output, expected(user), "{id}"),
            other => panic!("request {id} of {flow} ({user}): {other:?}"),
        }
    }
    let mut completions: HashMap<String, usize> = HashMap::new();
    for flow in FLOWS {
        for tag in config.hash_tags(flow) {
            for (_, entry) in support::stream_entries(&client, &format!("{tag}:done")).await {
                *completions.entry(entry["r"].clone()).or_default() += 1;
            }
        }
    }
    assert_eq!(completions.len(), requests.len());
    assert!(
        completions.values().all(|&n| n == 1),
        "a request completed twice"
    );
    println!(
        "reshard: slot {slot} (kyc's partition 0) moved from primary {from} to {to} with \
         {moved} keys while idle; all {} requests completed once",
        requests.len()
    );
}
