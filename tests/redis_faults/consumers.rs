//! Workers restarted again and again, by clean shutdowns and by SIGKILL: afterwards the
//! consumer groups (`workers` on the ready stream, `hooks` on the done stream) hold only the
//! consumers of live workers, and no request was lost.

use std::time::Duration;

use fred::prelude::{Client, Value};
use goflow::prelude::*;
use goflow::request::RequestOutcome;
use goflow::{Engine, RequestId};

use crate::processes::{worker_process, WorkerProcesses};
use crate::support::{self, raw, raw_or_nil};
use crate::{ready_key, short_lease, LIMIT};

/// A little work, so that a worker holds entries when it is stopped or killed.
#[node]
async fn tick(n: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(5)).await;
    n + 1
}

workflow! {
    /// One tick; the worker processes run a finish hook for it, so they join its done
    /// stream's `hooks` group too.
    pub(crate) Ticks = tick;
}

/// The consumers of `group` on the stream at `key` (`XINFO CONSUMERS`).
async fn consumers(client: &Client, key: &str, group: &str) -> Vec<String> {
    let reply = raw_or_nil(
        client,
        "XINFO",
        vec!["CONSUMERS".into(), key.into(), group.into()],
    )
    .await;
    reply
        .into_array()
        .into_iter()
        .filter_map(|consumer| {
            let fields = consumer.into_array();
            let at = fields
                .iter()
                .position(|f| f.as_str().as_deref() == Some("name"))?;
            fields.get(at + 1).and_then(Value::as_string)
        })
        .collect()
}

/// Whether consumer `name` belongs to one of the processes `pids` (consumer names are
/// `host-pid-random`).
fn live(name: &str, pids: &[u32]) -> bool {
    pids.iter().any(|pid| name.contains(&format!("-{pid}-")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_live_workers_stay_in_the_consumer_groups() {
    let (_server, config, engine, client) = short_lease::<Ticks>("consumers").await;
    let ready = ready_key::<Ticks>(&config);
    let done = format!("{}:done", support::flow_tag(&config.prefix, Ticks::NAME));
    let mut workers = WorkerProcesses::spawn(2, &config);

    // Six restarts of the first worker, alternately clean and SIGKILL, each while requests
    // are going through, once it has joined both groups (a consumer joins a group when it is
    // first delivered something).
    let mut ids: Vec<(RequestId, u32)> = Vec::new();
    let mut n = 0;
    for round in 0..6u32 {
        let pid = workers.0[0].id();
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            for _ in 0..10 {
                n += 1;
                ids.push((engine.submit::<Ticks>(&n).await.unwrap(), n));
            }
            let workers_group = consumers(&client, &ready, "workers").await;
            let hooks_group = consumers(&client, &done, "hooks").await;
            if live_in(&workers_group, pid) && live_in(&hooks_group, pid) {
                break;
            }
            let exited = workers.0[0].try_wait().unwrap();
            assert!(
                std::time::Instant::now() < deadline && exited.is_none(),
                "round {round}: worker {pid} did not join both groups within {LIMIT:?} \
                 (exited: {exited:?}): workers {workers_group:?}, hooks {hooks_group:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if round % 2 == 0 {
            // A clean shutdown leaves both groups at once.
            workers.stop(0);
            for (key, group) in [(ready.as_str(), "workers"), (done.as_str(), "hooks")] {
                let names = consumers(&client, key, group).await;
                assert!(
                    !live_in(&names, pid),
                    "round {round}: the stopped worker {pid} stayed in {group}: {names:?}"
                );
            }
        } else {
            workers.kill(0);
        }
        workers.0[0] = worker_process(&config);
    }

    // Nothing was lost: every request completed with its output, nothing was dead-lettered.
    for (id, n) in &ids {
        match engine.wait::<Ticks>(id, LIMIT).await.unwrap() {
            RequestOutcome::Completed(output) => assert_eq!(output, n + 1, "{id}"),
            other => panic!("request {id} did not complete: {other:?}"),
        }
    }
    let dead = format!("{}:dead", support::flow_tag(&config.prefix, Ticks::NAME));
    assert_eq!(
        raw::<u64>(&client, "XLEN", vec![dead.as_str().into()]).await,
        0
    );

    // The stopped workers left at once; the killed ones' consumers are removed once their
    // entries are reclaimed and they have been idle for a few leases.
    let pids: Vec<u32> = workers.0.iter().map(std::process::Child::id).collect();
    let groups = [(ready.as_str(), "workers"), (done.as_str(), "hooks")];
    let mut last = Vec::new();
    let settled = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            last.clear();
            for (key, group) in groups {
                last.push((group, consumers(&client, key, group).await));
            }
            if last
                .iter()
                .all(|(_, names)| names.iter().all(|name| live(name, &pids)))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "consumers of workers that are gone stay in the groups (live: {pids:?}): {last:?}"
    );
    // And the live workers are still there, serving.
    let id = engine.submit::<Ticks>(&7).await.unwrap();
    assert_eq!(support::completed::<Ticks>(&engine, &id, LIMIT).await, 8);
}

/// Whether `names` has a consumer of process `pid`.
fn live_in(names: &[String], pid: u32) -> bool {
    names.iter().any(|name| live(name, &[pid]))
}
