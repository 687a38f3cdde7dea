//! A rolling deploy of a changed workflow with real processes: the `rollout` binary in its two
//! builds (version 2 adds a vertex in the middle, so the vertex numbers of the graphs differ),
//! on a Redis server of the test's own. 200 requests are submitted to version 1, half of them
//! held 8 s at a slow vertex; version 1 stops while they are under way and version 2 starts.
//! The old requests wait (none runs on version 2, none fails, each says what it waits for);
//! new requests run on version 2. Requests of version 1 that have not reached the changed part
//! migrate to version 2 and complete there; one past it is refused (409, naming the vertex).
//! A worker of version 1 comes back and the old requests complete on their own graph, each
//! once.

#![cfg(unix)]

#[path = "../../../tests/support/mod.rs"]
mod support;

// It names `HeaderMap`, `StatusCode` and `Value` from here; this test uses part of it.
#[allow(dead_code)]
#[path = "../../../tests/service_router/reply.rs"]
mod reply;

mod processes;

use std::path::Path;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use processes::{id_in, location, terminate, Cluster, Service};

const ROLLOUT: &str = env!("CARGO_BIN_EXE_rollout");

/// The length of the stream at `key` on the Redis at `url`.
fn stream_length(url: &str, key: &str) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let client = support::raw_client(url).await;
        support::raw(&client, "XLEN", vec![key.into()]).await
    })
}

/// The states of the requests at `locations`.
fn states(service: &Service, locations: &[String]) -> Vec<Value> {
    locations
        .iter()
        .map(|l| service.get(l).expect(StatusCode::OK))
        .collect()
}

#[test]
fn a_rolling_deploy_runs_each_request_on_its_own_graph() {
    let mut cluster = Cluster::new("rollout");
    let redis = cluster.redis();
    let env = |version: &str, role: &str| {
        vec![
            ("GOFLOW_REDIS_URL", redis.clone()),
            ("GOFLOW_REDIS_PREFIX", "rollout".to_owned()),
            ("GOFLOW_ROLLOUT_VERSION", version.to_owned()),
            ("GOFLOW_ROLLOUT_ROLE", role.to_owned()),
            // Every request's slow vertex runs at once: the old build stops with all of them
            // under way.
            ("GOFLOW_WORKER_CONCURRENCY", "256".to_owned()),
            ("GOFLOW_LEASE", "2s".to_owned()),
        ]
    };
    let old = cluster.service("rollout-v1", Path::new(ROLLOUT), &env("1", "serve"));
    let v1 = old.get("/flow/rollout").expect(StatusCode::OK)["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let submitted: Vec<(String, String)> = (0..200)
        .map(|i| {
            let input = if i % 2 == 0 {
                format!("slow-{i}")
            } else {
                format!("fast-{i}")
            };
            let at = location(&old.post("/flow/rollout", &json!(input)));
            (input, at)
        })
        .collect();
    let slow: Vec<String> = submitted
        .iter()
        .filter(|(input, _)| input.starts_with("slow"))
        .map(|(_, at)| at.clone())
        .collect();
    // The slow ones are at their slow vertex, and are paused there: what comes after it is
    // parked. The fast ones complete on version 1.
    for at in &slow {
        old.poll(at, "a slow request is at its slow vertex", |s| {
            reply::vertex(s, "slow")["status"] == "running"
        });
    }
    let slow_ids: Vec<&str> = slow.iter().map(|at| id_in(at)).collect();
    let paused = old
        .post(
            "/flow/rollout/requests/actions/pause",
            &json!({ "ids": slow_ids }),
        )
        .expect(StatusCode::OK);
    assert_eq!(paused["applied"], slow.len(), "{paused}");
    for (input, at) in submitted
        .iter()
        .filter(|(input, _)| input.starts_with("fast"))
    {
        let state = old.poll(at, "a fast request completes", |s| {
            s["status"] == "completed"
        });
        assert_eq!(state["output"], format!("v1:{input}"), "{state}");
    }
    for at in &slow {
        old.poll(
            at,
            "a paused request parks what follows its slow vertex",
            |s| reply::vertex(s, "finish")["status"] == "parked",
        );
    }
    // The old build stops.
    let stopping = cluster.procs[old.index].pid();
    terminate(&cluster.procs[old.index]);
    let status = cluster.procs[old.index]
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("version 1 (pid {stopping}) did not stop"));
    assert!(status.success(), "version 1 exited with {status}");

    // The new build: its own requests run on it.
    let new = cluster.service("rollout-v2", Path::new(ROLLOUT), &env("2", "serve"));
    let v2 = new.get("/flow/rollout").expect(StatusCode::OK)["version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(v1, v2);
    for i in 0..20 {
        let state = new
            .post("/flow/rollout?wait=20", &json!(format!("new-{i}")))
            .expect(StatusCode::OK);
        assert_eq!(state["output"], format!("v2:new-{i}+enriched"), "{state}");
        assert_eq!(state["version"], v2.as_str());
    }
    // Resumed by the new build, the old requests' parked vertices go to the new build's
    // workers, which hand them to the old version's stream: they wait there, and say so.
    let resumed = new
        .post(
            "/flow/rollout/requests/actions/resume",
            &json!({"status": ["paused"]}),
        )
        .expect(StatusCode::OK);
    assert_eq!(resumed["applied"], slow.len(), "{resumed}");
    // Once the new build's workers have handed every one of them to the old version's stream:
    let stream = format!("{}:ready@{v1}", support::flow_tag("rollout", "rollout"));
    let moved = Instant::now() + Duration::from_secs(60);
    while stream_length(&redis, &stream) < slow.len() as u64 {
        assert!(
            Instant::now() < moved,
            "the parked vertices did not reach {stream}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for state in states(&new, &slow) {
        assert_eq!(
            state["status"], "running",
            "an old request ran or failed: {state}"
        );
        assert_eq!(state["version"], v1.as_str(), "{state}");
        assert_eq!(state["waiting_for"], format!("version {v1}"), "{state}");
        // Its vertices are read by its own graph's layout, not the new one's.
        let names: Vec<&str> = state["vertices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["vertex"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["fetch", "slow", "finish"], "{state}");
        assert_eq!(reply::vertex(&state, "finish")["attempts"], 0, "{state}");
    }
    let versions = new.get("/flow/rollout/versions").expect(StatusCode::OK);
    assert_eq!(
        versions["versions"][0]["version"],
        v2.as_str(),
        "{versions}"
    );
    assert_eq!(versions["versions"][1]["state"], "draining", "{versions}");
    assert_eq!(versions["versions"][1]["open"], slow.len(), "{versions}");

    // Requests submitted to version 1's API while no worker of it runs wait at `fetch`: their
    // progress carries over, and they migrate to version 2, one alone, the rest in bulk, and
    // complete there. A slow one has completed `slow` and has `finish` queued: its progress
    // does not carry over (`finish` runs another node in version 2, after `enrich`), and it
    // stays as it is.
    let api = cluster.service("rollout-v1-api", Path::new(ROLLOUT), &env("1", "api"));
    let late: Vec<String> = (0..10)
        .map(|i| location(&api.post("/flow/rollout", &json!(format!("late-{i}")))))
        .collect();
    for state in states(&new, &late) {
        assert_eq!(state["waiting_for"], format!("version {v1}"), "{state}");
    }
    let migrated = new
        .post(&format!("{}/migrate", late[0]), &json!(null))
        .expect(StatusCode::OK);
    assert_eq!(
        (&migrated["moved"], &migrated["from"], &migrated["to"]),
        (&json!(true), &json!(v1), &json!(v2)),
        "{migrated}"
    );
    let ids: Vec<&str> = late[1..].iter().map(|at| id_in(at)).collect();
    let bulk = new
        .post(
            "/flow/rollout/requests/actions/migrate",
            &json!({ "ids": ids }),
        )
        .expect(StatusCode::OK);
    assert_eq!(bulk["applied"], late.len() - 1, "{bulk}");
    for (i, at) in late.iter().enumerate() {
        let state = new.poll(at, "a migrated request completes on version 2", |s| {
            s["status"] == "completed"
        });
        assert_eq!(state["output"], format!("v2:late-{i}+enriched"), "{state}");
        assert_eq!(state["version"], v2.as_str(), "{state}");
    }
    let refused = new
        .post(&format!("{}/migrate", slow[0]), &json!(null))
        .expect(StatusCode::CONFLICT);
    assert_eq!(
        refused["error"]["code"], "version_incompatible",
        "{refused}"
    );
    assert_eq!(refused["error"]["vertex"], "finish", "{refused}");
    let state = new.get(&slow[0]).expect(StatusCode::OK);
    assert_eq!(state["version"], v1.as_str(), "{state}");

    // A worker of the old build comes back: the old requests complete on their own graph,
    // each vertex once.
    cluster.worker_of("rollout-v1-worker", Path::new(ROLLOUT), &env("1", "worker"));
    for (input, at) in submitted
        .iter()
        .filter(|(input, _)| input.starts_with("slow"))
    {
        let state = new.poll(at, "an old request completes on its graph", |s| {
            s["status"] == "completed"
        });
        assert_eq!(state["output"], format!("v1:{input}"), "{state}");
        assert_eq!(state["waiting_for"], Value::Null, "{state}");
        for vertex in state["vertices"].as_array().unwrap() {
            assert_eq!(
                vertex["attempts"],
                1,
                "{} of {}: {state}",
                vertex["vertex"],
                id_in(at)
            );
        }
    }
    let versions = new.get("/flow/rollout/versions").expect(StatusCode::OK);
    assert_eq!(versions["versions"][1]["state"], "drained", "{versions}");
    // What migrated ran once, on version 2, whatever version 1's worker found of it.
    for (i, state) in states(&new, &late).iter().enumerate() {
        assert_eq!(state["output"], format!("v2:late-{i}+enriched"), "{state}");
        for vertex in state["vertices"].as_array().unwrap() {
            assert_eq!(vertex["attempts"], 1, "{state}");
        }
    }
}
