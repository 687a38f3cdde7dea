//! Finding requests without knowing their ids: count them by status, list the failures newest
//! first a page at a time, narrow the list to a time window, read the dead letters, and stop
//! every request still queued in one call. The same calls answer on the Redis engine (from
//! indexes it keeps in Redis), and over HTTP as `GET /flow/{name}/requests?status=failed&limit=3`,
//! `GET /flow/{name}/requests/counts`, `GET /flow/{name}/dead` and
//! `POST /flow/{name}/requests/actions/stop`.
//!
//! ```sh
//! cargo run --example find_requests
//! ```

use std::time::Duration;

use goflow::prelude::*;
use goflow::request::{Control, RequestQuery, RequestStatus, Selection};
use goflow::{EmbeddedEngine, Engine};

/// Refuses the orders of a blocked customer, for good.
#[node]
async fn check_order(customer: String) -> Result<String, NodeError> {
    if customer.starts_with("blocked") {
        return Err(NodeError::permanent(format!("{customer} may not order")));
    }
    Ok(format!("order of {customer} accepted"))
}

workflow! {
    /// Accepts an order unless its customer is blocked.
    pub Orders = check_order;
}

#[tokio::main]
async fn main() -> Result<(), goflow::Error> {
    let engine = EmbeddedEngine::new();
    for n in 0..10 {
        let customer = if n % 3 == 0 {
            format!("blocked-{n}")
        } else {
            format!("customer-{n}")
        };
        let id = engine.submit::<Orders>(&customer).await?;
        engine.wait::<Orders>(&id, Duration::from_secs(5)).await?;
    }

    let counts = engine.counts::<Orders>().await?;
    println!(
        "{} requests: {} completed, {} failed",
        counts.total(),
        counts.get(RequestStatus::Completed),
        counts.get(RequestStatus::Failed)
    );

    // The failures, newest first, three to a page.
    let mut query = RequestQuery::new().status(RequestStatus::Failed).limit(3);
    let mut page_number = 1;
    loop {
        let page = engine.list::<Orders>(&query).await?;
        for request in &page.requests {
            let why = request
                .failure
                .as_ref()
                .map_or(String::new(), |f| f.failure.to_string());
            println!("page {page_number}: {} failed: {why}", request.request_id);
        }
        match page.next_cursor {
            Some(cursor) => query = query.after(cursor),
            None => break,
        }
        page_number += 1;
    }

    // Those created in the last minute, whatever their status.
    let minute_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        .saturating_sub(60_000);
    let recent = engine
        .list::<Orders>(&RequestQuery::new().since_ms(minute_ago).limit(100))
        .await?;
    println!("{} created in the last minute", recent.requests.len());

    // The dead letters: one per request that failed for good, with the vertex and its failure.
    let dead = engine.dead_letters::<Orders>(10, None).await?;
    for letter in &dead.dead {
        println!(
            "dead letter {}: `{}` after {} attempt(s)",
            letter.id, letter.failure.vertex, letter.failure.attempts
        );
    }

    // A bulk action: stop whatever is still queued or running (nothing is, by now), and pause
    // the completed ones, which the control table refuses: each is skipped with its reason.
    let stop = Selection::matching(
        RequestQuery::new()
            .status(RequestStatus::Queued)
            .status(RequestStatus::Running),
    );
    let stopped = engine.control_all::<Orders>(&stop, Control::Stop).await?;
    println!(
        "stop: {} matched, {} stopped",
        stopped.matched, stopped.applied
    );
    let completed = Selection::matching(RequestQuery::new().status(RequestStatus::Completed));
    let paused = engine
        .control_all::<Orders>(&completed, Control::Pause)
        .await?;
    if let Some(skipped) = paused.skipped.first() {
        println!(
            "pause: {} matched, {} paused; e.g. {}",
            paused.matched, paused.applied, skipped.reason
        );
    }
    Ok(())
}
