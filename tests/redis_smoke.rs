//! The Redis engine end to end, in one process: a worker and a client sharing a server.

mod support;

use std::time::Duration;

use goflow::prelude::*;
use goflow::redis::{RedisEngine, RequestOutcome, RequestStatus};
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

workflow! {
    pub Kyc = get_image -> [detect, score] => verdict;
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
