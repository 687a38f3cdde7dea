//! Moving requests to a changed workflow on the Redis engine: version 1 of `orders` is
//! `receive -> charge -> ship`; version 2 adds `notify` between `charge` and `ship`. Requests
//! of version 1 that have not completed `charge` migrate to version 2 and complete there; one
//! that has does not (`notify` would never get its input), and says why.
//!
//! Both builds live in this one process, as two engines, to show it in a few lines; in a
//! deploy they are two builds of one program (`cargo run --bin rollout` in `examples/kyc-app`
//! is one, with its commands in its doc comment).
//!
//! Needs a Redis server: `GOFLOW_REDIS_URL` (default `redis://127.0.0.1:6379`). Keys use the
//! prefix `goflow-example-migrate`.
//!
//! ```sh
//! cargo run --example migrate
//! ```

use std::time::Duration;

use goflow::prelude::*;
use goflow::redis::{RedisConfig, RedisEngine};
use goflow::request::{Refusal, RequestOutcome, VertexStatus};
use goflow::{Engine, Error, RequestId};
use tokio_util::sync::CancellationToken;

/// Takes the order.
#[node]
async fn receive(order: String) -> String {
    order
}

/// Charges for it (a `slow` order takes half a second).
#[node]
async fn charge(order: String) -> String {
    if order.contains("slow") {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    format!("{order} (paid)")
}

/// Version 2's addition: tells the customer.
#[node]
async fn notify(order: String) -> String {
    format!("{order} (notified)")
}

/// Ships it.
#[node]
async fn ship(order: String) -> String {
    format!("{order} (shipped)")
}

mod v1 {
    use super::*;
    workflow! {
        /// Version 1.
        pub Orders = receive -> charge -> ship;
    }
}

mod v2 {
    use super::*;
    workflow! {
        /// Version 2: `notify` before `ship`.
        pub Orders = receive -> charge -> notify -> ship;
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("GOFLOW_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut config = RedisConfig::new(url);
    config.prefix = "goflow-example-migrate".into();
    let old = RedisEngine::builder(config.clone())
        .register::<v1::Orders>()
        .connect()
        .await?;
    let new = RedisEngine::builder(config)
        .register::<v2::Orders>()
        .connect()
        .await?;

    // A worker of version 1 runs an order up to `ship`: paused while it is charged, it parks
    // `ship`, and has completed `charge` when the worker stops.
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(old.worker(2).run(shutdown.clone()));
    let charged = old
        .submit::<v1::Orders>(&"order 1, slow".to_owned())
        .await?;
    until(&old, &charged, "charge", VertexStatus::Running).await?;
    old.pause::<v1::Orders>(&charged).await?;
    until(&old, &charged, "ship", VertexStatus::Parked).await?;
    stop(shutdown, worker).await?;

    // Version 1 takes another order once none of its workers runs: it waits at `receive`.
    let waiting = old.submit::<v1::Orders>(&"order 2".to_owned()).await?;
    let state = new.status::<v2::Orders>(&waiting).await?;
    println!("{waiting}: {:?}, {:?}", state.status, state.waiting_for);

    // Version 2 migrates what carries over: `order 2` moves; `order 1` does not (version 2's
    // `ship` takes `notify`'s output, and `notify` would never get `charge`'s).
    for id in [&waiting, &charged] {
        match new.migrate::<v2::Orders>(id).await {
            Ok(migrated) => println!("{id}: moved from {} to {}", migrated.from, migrated.to),
            Err(Error::NotMigrated { refusal, .. }) => match *refusal {
                Refusal::Incompatible { vertex, reason } => {
                    println!("{id}: stays on version 1: `{vertex}` {reason}");
                }
                other => println!("{id}: not now: {other}"),
            },
            Err(other) => return Err(other),
        }
    }

    // Version 2's worker runs what moved; what did not waits for a worker of version 1.
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(new.worker(2).run(shutdown.clone()));
    for id in [&waiting, &charged] {
        report(&new, id).await?;
    }
    stop(shutdown, worker).await?;
    Ok(())
}

/// Stops a worker and waits for it to end.
async fn stop(
    shutdown: CancellationToken,
    worker: tokio::task::JoinHandle<Result<(), Error>>,
) -> Result<(), Error> {
    shutdown.cancel();
    worker.await.expect("the worker task")
}

/// Waits until vertex `vertex` of request `id` (of version 1) has status `status`.
async fn until(
    engine: &RedisEngine,
    id: &RequestId,
    vertex: &str,
    status: VertexStatus,
) -> Result<(), Error> {
    loop {
        let state = engine.status::<v1::Orders>(id).await?;
        if state
            .vertices
            .iter()
            .any(|v| v.vertex == vertex && v.status == status)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Prints how request `id` ended, if it has within a few seconds.
async fn report(engine: &RedisEngine, id: &RequestId) -> Result<(), Error> {
    match engine
        .wait::<v2::Orders>(id, Duration::from_secs(5))
        .await?
    {
        RequestOutcome::Completed(output) => println!("{id}: {output}"),
        other => println!("{id}: {other:?} (a request of version 1 waits for its workers)"),
    }
    Ok(())
}
