//! Running ahead on the Redis engine (`RedisConfig::run_ahead`): a chain of quick vertices is
//! recorded in one script call instead of one per vertex. Runs the same 2,000 requests of a
//! five-step chain with it off (the default), on (`RunAhead::Checked`: a status read before
//! each vertex it starts, so a pause holds) and on without that read (`RunAhead::Unchecked`),
//! each with a worker of its own, and prints the throughput and the Redis commands per
//! request of each, then one request's state: every vertex recorded, done, with its attempt,
//! worker and times, every way.
//!
//! Needs a Redis server of its own (it reads the server's command count, which other clients
//! would distort): `GOFLOW_REDIS_URL` (default `redis://127.0.0.1:6379`). Keys use the prefixes
//! `goflow-example-ahead-off`, `goflow-example-ahead-checked` and
//! `goflow-example-ahead-unchecked`.
//!
//! ```sh
//! redis-server --port 6390 --save '' &
//! GOFLOW_REDIS_URL=redis://127.0.0.1:6390 cargo run --release --example run_ahead
//! ```

use std::time::{Duration, Instant};

use fred::prelude::{ClientLike, Config};
use goflow::prelude::*;
use goflow::redis::{RedisConfig, RedisEngine, RunAhead};
use goflow::request::RequestOutcome;
use goflow::Engine;
use tokio_util::sync::CancellationToken;

/// One step of the chain: parses, cleans, enriches… here, adds one.
#[node]
async fn step(n: u64) -> u64 {
    n + 1
}

workflow! {
    /// Five quick steps in a row.
    pub Pipeline = step -> step as clean -> step as enrich -> step as score -> step as store;
}

const REQUESTS: u64 = 2000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("GOFLOW_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let admin = fred::prelude::Client::new(Config::from_url(&url)?, None, None, None);
    admin.init().await?;
    for run_ahead in [RunAhead::Off, RunAhead::Checked, RunAhead::Unchecked] {
        let mut config = RedisConfig::new(url.clone());
        config.prefix = format!("goflow-example-ahead-{run_ahead:?}").to_lowercase();
        config.run_ahead = run_ahead;
        let engine = RedisEngine::builder(config)
            .register::<Pipeline>()
            .connect()
            .await?;
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(engine.worker(8).run(shutdown.clone()));

        let commands_before = total_commands(&admin).await?;
        let began = Instant::now();
        let mut ids = Vec::new();
        for n in 0..REQUESTS {
            ids.push(engine.submit::<Pipeline>(&n).await?);
        }
        for (n, id) in (0..REQUESTS).zip(&ids) {
            match engine.wait::<Pipeline>(id, Duration::from_secs(30)).await? {
                RequestOutcome::Completed(out) => assert_eq!(out, n + 5),
                other => return Err(format!("request {id}: {other:?}").into()),
            }
        }
        let elapsed = began.elapsed().as_secs_f64();
        let commands = total_commands(&admin).await? - commands_before;
        println!(
            "run_ahead = {run_ahead:?}: {:.0} requests/s, {:.1} Redis commands per request",
            REQUESTS as f64 / elapsed,
            commands as f64 / REQUESTS as f64,
        );
        let state = engine.status::<Pipeline>(&ids[0]).await?;
        for vertex in &state.vertices {
            println!(
                "  {:7} {:?}, attempt {}, worker {}, {} → {} ms",
                vertex.vertex,
                vertex.status,
                vertex.attempts,
                vertex.worker.as_deref().unwrap_or("-"),
                vertex.started_at_ms.unwrap_or_default(),
                vertex.finished_at_ms.unwrap_or_default(),
            );
        }
        shutdown.cancel();
        worker.await??;
    }
    Ok(())
}

/// The commands the server has run so far (`INFO stats`), those inside scripts included.
async fn total_commands(client: &fred::prelude::Client) -> Result<u64, fred::error::Error> {
    let info: String = client.custom(fred::cmd!("INFO"), vec!["stats"]).await?;
    Ok(info
        .lines()
        .find_map(|line| line.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0))
}
