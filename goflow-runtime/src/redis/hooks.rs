//! Finish hooks: code that runs once when a request ends (Go goflow's `OnFailure`/`Finally`).
//!
//! Every final transition (completed, failed, stopped) appends one event to the workflow's
//! completion stream, in the same script that makes the transition, so each request has
//! exactly one event. Workers with hooks read these events through the consumer group
//! `hooks` and acknowledge each after its hook returns; events of a worker that died are
//! claimed by another after a lease.

use std::collections::HashMap;

use bytes::Bytes;
use fred::prelude::{ClientLike, StreamsInterface};
use futures_util::FutureExt as _;
use tokio_util::sync::CancellationToken;

use super::protocol::HOOKS_GROUP as GROUP;
use super::worker::create_group;
use super::{
    connect_client, read_groups, stream_read, DoneEvent, RedisEngine, RedisError, StreamEntry,
};
use crate::codec::Codec;
use crate::lifecycle::RequestStatus;
use crate::request::Finished;
use crate::time::millis;

/// Runs the hooks of `engine`'s workflows until `shutdown`.
pub(crate) async fn run<C: Codec>(
    engine: RedisEngine<C>,
    consumer: String,
    shutdown: CancellationToken,
) {
    let inner = &engine.inner;
    // The done stream of each partition of each hooked workflow.
    let streams: Vec<(&'static str, String)> = inner
        .hooks
        .keys()
        .filter_map(|name| Some((*name, inner.flows.get(name)?)))
        .flat_map(|(name, flow)| flow.keys.all().iter().map(move |k| (name, k.done.clone())))
        .collect();
    for (_, key) in &streams {
        // `$`: only requests ending from now on; older events were never meant for hooks.
        // (While Redis is out of memory, this waits for memory if the group does not exist.)
        if let Err(error) = create_group(&inner.client, key, GROUP, "$", &shutdown).await {
            tracing::error!(%error, "finish hooks cannot start");
            return;
        }
    }
    // One reader per group of streams one read can read (see `read_groups`).
    let streams = streams.into_iter().map(|(name, key)| (key, name)).collect();
    let mut readers = tokio::task::JoinSet::new();
    for group in read_groups(&inner.client, streams) {
        let streams = group.into_iter().map(|(key, name)| (name, key)).collect();
        readers.spawn(hook_streams(
            engine.clone(),
            consumer.clone(),
            streams,
            shutdown.clone(),
        ));
    }
    while readers.join_next().await.is_some() {}
}

/// Runs the hooks of the done streams `streams` (each with its workflow's name), which one
/// read can read together, until `shutdown`.
async fn hook_streams<C: Codec>(
    engine: RedisEngine<C>,
    consumer: String,
    streams: Vec<(&'static str, String)>,
    shutdown: CancellationToken,
) {
    let inner = &engine.inner;
    let reader = match connect_client(&inner.config.url, None).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "finish hooks cannot connect");
            return;
        }
    };
    let keys: Vec<String> = streams.iter().map(|(_, key)| key.clone()).collect();
    let ids: Vec<&str> = streams.iter().map(|_| ">").collect();
    let lease = millis(inner.config.lease);
    let mut last_reclaim = std::time::Instant::now();
    // Checked before anything is claimed or read: what an iteration claims or reads, it hooks
    // and acknowledges, so a consumer that stops leaves nothing pending (it could not leave its
    // group then).
    while !shutdown.is_cancelled() {
        let mut events: HashMap<String, Vec<StreamEntry>> = HashMap::new();
        if last_reclaim.elapsed() >= inner.config.lease / 2 {
            last_reclaim = std::time::Instant::now();
            for (_, key) in &streams {
                let claimed: Result<(String, Vec<StreamEntry>), _> = inner
                    .client
                    .xautoclaim_values(
                        key.clone(),
                        GROUP,
                        consumer.as_str(),
                        lease,
                        "0-0",
                        Some(64),
                        false,
                    )
                    .await;
                if let Ok((_, entries)) = claimed {
                    events.entry(key.clone()).or_default().extend(entries);
                }
            }
        }
        let mut read = std::pin::pin!(reader.xreadgroup::<fred::prelude::Value, _, _, _, _>(
            GROUP,
            consumer.as_str(),
            Some(64),
            Some(1000),
            false,
            keys.clone(),
            ids.clone()
        ));
        // At a shutdown, the read in flight still ends within its block (a second): its
        // events are hooked, not left pending for a consumer that is about to leave.
        let read: Result<fred::prelude::Value, fred::error::Error> = tokio::select! {
            read = &mut read => read,
            () = shutdown.cancelled() => read.await,
        };
        // A read that timed out is the empty answer.
        match read.map_err(RedisError::from).and_then(stream_read) {
            Ok(read) => {
                for (key, entries) in read {
                    events.entry(key).or_default().extend(entries);
                }
            }
            Err(RedisError::Redis(error)) if error.details().starts_with("NOGROUP") => {
                for (_, key) in &streams {
                    let _ = create_group(&inner.client, key, GROUP, "$", &shutdown).await;
                }
            }
            Err(error) => {
                tracing::warn!(error = %crate::error::chain(&error), "reading completion events failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        for (name, key) in &streams {
            for (entry, fields) in events.remove(key).into_iter().flatten() {
                if let Some(finished) = event(&engine, name, &fields).await {
                    if let Some(hook) = inner.hooks.get(name) {
                        // A panicking hook is reported, and the hooks go on.
                        let ran = std::panic::AssertUnwindSafe(hook(finished))
                            .catch_unwind()
                            .await;
                        if let Err(panic) = ran {
                            tracing::error!(
                                flow = name,
                                panic = crate::exec::panic_message(panic.as_ref()),
                                "a finish hook panicked"
                            );
                        }
                    }
                }
                let acked: Result<(), _> = inner.client.xack(key.clone(), GROUP, entry).await;
                if let Err(error) = acked {
                    tracing::warn!(%error, "acknowledging a completion event failed");
                }
            }
        }
    }
    tokio::spawn(async move {
        let _ = reader.quit().await;
    });
}

async fn event<C: Codec>(
    engine: &RedisEngine<C>,
    flow: &'static str,
    fields: &HashMap<String, Bytes>,
) -> Option<Finished> {
    let DoneEvent {
        request: request_id,
        status,
        ..
    } = DoneEvent::parse(fields)?;
    let failure = match status {
        RequestStatus::Failed => match engine.flow(flow) {
            Ok(flow) => engine
                .read_state(flow, &request_id)
                .await
                .ok()
                .flatten()
                .and_then(|state| state.failure),
            Err(_) => None,
        },
        _ => None,
    };
    Some(Finished {
        flow,
        request_id,
        status,
        failure,
    })
}
