//! Watching a request live: its events (each vertex queued, running, done; the request's status
//! changes, its end last) as a stream, then a workflow's events resumed after one of them. The
//! same events are served over HTTP as Server-Sent Events:
//! `GET /flow/{name}/requests/{id}/events` and `GET /flow/{name}/events`, with `Last-Event-ID`.
//!
//! ```sh
//! cargo run --example watch_events
//! ```

use std::time::Duration;

use futures_util::StreamExt as _;
use goflow::prelude::*;
use goflow::request::{EventKind, RequestEvent};
use goflow::{EmbeddedEngine, Engine};

#[node]
async fn fetch(user: String) -> String {
    tokio::time::sleep(Duration::from_millis(20)).await;
    format!("{user}.jpg")
}

#[node]
async fn detect(image: String) -> u32 {
    tokio::time::sleep(Duration::from_millis(30)).await;
    u32::try_from(image.len()).unwrap_or(u32::MAX) % 3
}

#[node]
async fn score(image: String) -> u32 {
    tokio::time::sleep(Duration::from_millis(10)).await;
    u32::try_from(image.len()).unwrap_or(u32::MAX) * 7 % 100
}

#[node]
async fn verdict(faces: u32, score: u32) -> String {
    format!("{faces} face(s), score {score}")
}

workflow! {
    /// A small KYC: an image, then detection and scoring in parallel, then a verdict.
    pub Check = fetch -> [detect, score] => verdict;
}

fn line(event: &RequestEvent) -> String {
    match &event.kind {
        EventKind::Vertex { vertex, status } => format!("{}  {vertex:<8} {status}", event.id),
        EventKind::Request { status } => format!("{}  request  {status}", event.id),
        other => format!("{}  {other:?}", event.id),
    }
}

#[tokio::main]
async fn main() -> Result<(), goflow::Error> {
    let engine = EmbeddedEngine::new();
    let id = engine.submit::<Check>(&"alice".to_owned()).await?;
    println!("request {id}, as it stands and then live, until it ends:");
    let mut events = engine.request_events::<Check>(&id, None).await?;
    let mut seen = Vec::new();
    while let Some(event) = events.next().await {
        let event = event?;
        println!("  {}", line(&event));
        seen.push(event);
    }

    // A workflow's events, resumed after the first event seen: what followed it, as a client
    // reconnecting with `Last-Event-ID` gets it (this stream never ends by itself).
    let after = seen.first().map(|event| event.id);
    let mut resumed = engine.flow_events::<Check>(after).await?;
    println!(
        "the workflow's events after {:?}:",
        after.map(|a| a.to_string())
    );
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(100), resumed.next()).await
    {
        println!("  {}", line(&event?));
    }
    Ok(())
}
