//! The branching KYC workflow on the Redis engine: two workers share the work, the client
//! submits requests, waits for results, reads a request's state, pauses, resumes and stops
//! requests, and a finish hook reports every request that ends.
//!
//! Needs a Redis server: `GOFLOW_REDIS_URL` (default `redis://127.0.0.1:6379`), or a Redis
//! Cluster (`redis-cluster://host:port?node=host:port&node=…`), over whose primaries
//! `GOFLOW_REDIS_PARTITIONS` spreads the workflow's requests. Keys use the prefix
//! `goflow-example` (`goflow-example-p<N>` with `N` partitions: the number is fixed per
//! prefix).
//!
//! ```sh
//! cargo run --example redis_kyc
//! GOFLOW_REDIS_URL='redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001&node=127.0.0.1:7002' \
//!   GOFLOW_REDIS_PARTITIONS=3 cargo run --example redis_kyc
//! ```

use std::time::Duration;

use goflow::prelude::*;
use goflow::redis::{RedisConfig, RedisEngine};
use goflow::request::RequestOutcome;
use goflow::Engine;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// A KYC request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KycRequest {
    /// The user to verify.
    pub user_id: String,
}

/// The user's document image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    /// Whose image.
    pub user_id: String,
    /// Where it is stored.
    pub url: String,
}

/// Faces found on the image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detection {
    /// Whose image.
    pub user_id: String,
    /// How many.
    pub faces: u32,
}

/// How well the face matches the user's selfie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Match {
    /// From 0 to 1.
    pub score: f64,
}

/// The verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// The user.
    pub user_id: String,
    /// Whether KYC passed.
    pub verified: bool,
}

#[node]
async fn get_kyc_image(request: KycRequest) -> Result<Image, NodeError> {
    if request.user_id.is_empty() {
        return Err(NodeError::permanent("empty user id"));
    }
    Ok(Image {
        url: format!("s3://kyc/{}.jpg", request.user_id),
        user_id: request.user_id,
    })
}

#[node(retries = 2, timeout = "5s", backoff = "50ms")]
async fn face_detect(ctx: Context, image: Image) -> Detection {
    // A slow model: long enough to pause a request while it runs.
    tokio::time::sleep(Duration::from_millis(if image.user_id == "slow" {
        500
    } else {
        5
    }))
    .await;
    let _ = ctx.idempotency_key();
    Detection {
        user_id: image.user_id,
        faces: 1,
    }
}

#[node(retries = 2, timeout = "5s")]
async fn face_match(image: Image) -> Match {
    Match {
        score: if image.user_id.starts_with('a') {
            0.97
        } else {
            0.4
        },
    }
}

#[node]
async fn mark_profile(detection: Detection, matched: Match) -> Profile {
    Profile {
        verified: detection.faces == 1 && matched.score > 0.9,
        user_id: detection.user_id,
    }
}

workflow! {
    /// Validates a user's KYC image and marks the profile.
    pub Kyc = get_kyc_image -> [face_detect, face_match] => mark_profile;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("GOFLOW_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut config = RedisConfig::new(url);
    config.prefix = "goflow-example".into();
    if let Ok(n) = std::env::var("GOFLOW_REDIS_PARTITIONS") {
        config.partitions = n.parse().map_err(|_| "GOFLOW_REDIS_PARTITIONS: a number")?;
        config.prefix = format!("goflow-example-p{n}");
    }
    let engine = RedisEngine::builder(config)
        .register::<Kyc>()
        .on_finish::<Kyc, _, _>(|finished| async move {
            println!(
                "  [hook] {} {} ended: {:?}",
                finished.flow, finished.request_id, finished.status
            );
        })
        .connect()
        .await?;

    // Two workers, as two processes would be (the KYC service's `cargo run --bin worker`).
    let shutdown = CancellationToken::new();
    let workers = [
        tokio::spawn(engine.worker(8).run(shutdown.clone())),
        tokio::spawn(engine.worker(8).run(shutdown.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Submit and wait.
    for user in ["alice", "bob"] {
        let id = engine
            .submit::<Kyc>(&KycRequest {
                user_id: user.into(),
            })
            .await?;
        match engine.wait::<Kyc>(&id, Duration::from_secs(10)).await? {
            RequestOutcome::Completed(profile) => {
                println!("{}: verified = {}", profile.user_id, profile.verified)
            }
            other => println!("{user}: {other:?}"),
        }
        let state = engine.status::<Kyc>(&id).await?;
        for vertex in &state.vertices {
            println!(
                "    {:<14} {:?}, {} attempt(s), on {}",
                vertex.vertex,
                vertex.status,
                vertex.attempts,
                vertex.worker.as_deref().unwrap_or("-")
            );
        }
    }

    // A failure: the error message and the failed vertex come back.
    let id = engine
        .submit::<Kyc>(&KycRequest {
            user_id: String::new(),
        })
        .await?;
    if let RequestOutcome::Failed(failure) =
        engine.wait::<Kyc>(&id, Duration::from_secs(10)).await?
    {
        println!(
            "empty user: failed at `{}`: {}",
            failure.vertex, failure.failure
        );
    }

    // Pause while `face_detect` runs, then resume: `mark_profile` waits, then runs once.
    let id = engine
        .submit::<Kyc>(&KycRequest {
            user_id: "slow".into(),
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("pause: {}", engine.pause::<Kyc>(&id).await?);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let state = engine.status::<Kyc>(&id).await?;
    println!(
        "while paused: {:?}, mark_profile is {:?}",
        state.status, state.vertices[3].status
    );
    println!("resume: {}", engine.resume::<Kyc>(&id).await?);
    println!(
        "after resume: {:?}",
        engine.wait::<Kyc>(&id, Duration::from_secs(10)).await?
    );

    // Stop.
    let id = engine
        .submit::<Kyc>(&KycRequest {
            user_id: "slow".into(),
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("stop: {}", engine.stop::<Kyc>(&id).await?);
    println!(
        "after stop: {:?}",
        engine.wait::<Kyc>(&id, Duration::from_secs(10)).await?
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    for worker in workers {
        worker.await??;
    }
    Ok(())
}
