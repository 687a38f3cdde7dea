//! The Redis engine end to end, in one process: a worker and a client sharing a server.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use goflow::prelude::*;
use goflow::redis::{Finished, RedisEngine, RequestOutcome, RequestStatus};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// An image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Image(String);

#[node]
async fn get_image(user: String) -> Image {
    Image(format!("{user}.png"))
}
#[node]
async fn detect(image: Image) -> bool {
    image.0.ends_with(".png")
}
#[node]
async fn score(image: Image) -> f64 {
    if image.0.starts_with("alice") {
        0.97
    } else {
        0.1
    }
}
#[node]
async fn verdict(detected: bool, score: f64) -> String {
    if detected && score > 0.9 {
        "verified".into()
    } else {
        "rejected".into()
    }
}

#[node]
async fn refuse(user: String) -> Result<String, NodeError> {
    if user.starts_with("bad") {
        Err(NodeError::permanent(format!("{user} refused")))
    } else {
        Ok(user)
    }
}

workflow! {
    pub Kyc = get_image -> [detect, score] => verdict;
    pub Screen = refuse;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyc_runs_on_redis() {
    let engine = RedisEngine::builder(support::config("smoke"))
        .register::<Kyc>()
        .connect()
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(engine.worker(4).run(shutdown.clone()));

    assert_eq!(engine.run::<Kyc>("alice".into()).await.unwrap(), "verified");
    let id = engine.submit::<Kyc>(&"bob".into()).await.unwrap();
    match engine
        .wait::<Kyc>(&id, Duration::from_secs(10))
        .await
        .unwrap()
    {
        RequestOutcome::Completed(out) => assert_eq!(out, "rejected"),
        other => panic!("{other:?}"),
    }
    let state = engine.status("kyc", &id).await.unwrap().unwrap();
    assert_eq!(state.status, RequestStatus::Completed);
    assert!(state.vertices.iter().all(|v| v.attempts == 1), "{state:?}");

    shutdown.cancel();
    worker.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_hooks_run_once_per_request() {
    let seen: Arc<Mutex<HashMap<String, Vec<Finished>>>> = Arc::default();
    let record = Arc::clone(&seen);
    let engine = RedisEngine::builder(support::config("hooks"))
        .register::<Screen>()
        .on_finish::<Screen, _, _>(move |finished| {
            let record = Arc::clone(&record);
            async move {
                let mut seen = record.lock().unwrap();
                seen.entry(finished.request_id.to_string())
                    .or_default()
                    .push(finished);
            }
        })
        .connect()
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    // Two workers: each event must still be hooked once.
    let workers = [
        tokio::spawn(engine.worker(4).run(shutdown.clone())),
        tokio::spawn(engine.worker(4).run(shutdown.clone())),
    ];
    // Let the workers create the hooks' consumer group before requests end.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut ids = Vec::new();
    for i in 0..20 {
        let user = if i % 5 == 0 {
            format!("bad{i}")
        } else {
            format!("ok{i}")
        };
        ids.push((engine.submit::<Screen>(&user).await.unwrap(), user));
    }
    for (id, _) in &ids {
        let _ = engine
            .wait::<Screen>(id, Duration::from_secs(10))
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < ids.len() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give a duplicate, if there were one, time to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.cancel();
    for worker in workers {
        worker.await.unwrap().unwrap();
    }

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), ids.len(), "every request hooked");
    for (id, user) in &ids {
        let events = &seen[id.as_str()];
        assert_eq!(events.len(), 1, "{id}: hooked {} times", events.len());
        let event = &events[0];
        if user.starts_with("bad") {
            assert_eq!(event.status, RequestStatus::Failed);
            let failure = event.failure.as_ref().expect("failure recorded");
            assert_eq!(failure.vertex, "refuse");
            assert!(
                failure.failure.to_string().contains("refused"),
                "{failure:?}"
            );
        } else {
            assert_eq!(event.status, RequestStatus::Completed);
        }
    }
}
