//! The scripts an attempt is recorded by, one function each: `start` (may it run, and on
//! which inputs), `began` (an attempt run at once runs long), `fail` (a retry, or the
//! instance's and its request's end) and `abandon` (its request ended); `complete` has a
//! module of its own. Each builds its script's keys and arguments and reads its answer; the
//! scripts themselves are in `lua/`.

use bytes::Bytes;
use fred::prelude::{PubsubInterface, Value};

use super::overload::OnShutdown;
use super::run::{self, RunState};
use super::{Delivery, Worker};
use crate::codec::Codec;
use crate::error::Failure;
use crate::lifecycle::{RequestStatus, VertexStatus};
use crate::plan::{Inputs, Instance};
use crate::redis::protocol::{control_channel, fields, GROUP};
use crate::redis::scripts::{ABANDON, BEGAN, FAIL, START};
use crate::redis::{Flow, RedisError};
use crate::request::RequestFailure;
use crate::request_id::RequestId;
use crate::time::{millis, now_ms};

impl<C: Codec> Worker<C> {
    /// The start script, in one call for several delivered entries of `flow` (the entries of
    /// one read): sets each readable entry's [`start`](Delivery::start) to whether it runs
    /// (with its attempt number and input values), is dropped or parked, has been lost too
    /// often, or is to run alone. Unreadable entries are left as they are. While Redis is out
    /// of memory, the entries are held and the call tried again (until the worker shuts down).
    pub(super) async fn start(
        &self,
        flow: &Flow,
        deliveries: &mut [Delivery],
    ) -> Result<(), RedisError> {
        let config = &self.engine.inner.config;
        let starting: Vec<(usize, RequestId, Instance)> = deliveries
            .iter()
            .enumerate()
            .filter_map(|(n, delivery)| {
                let (request, instance) = delivery.identify(flow)?;
                Some((n, request, instance))
            })
            .collect();
        if starting.is_empty() {
            return Ok(());
        }
        let build = || {
            let mut keys = Vec::with_capacity(3 * starting.len());
            let mut args = vec![Value::from("3")];
            for (n, request, instance) in &starting {
                let delivery = &deliveries[*n];
                let mut own = vec![
                    Value::from(GROUP),
                    Value::from(delivery.entry.as_str()),
                    Value::from(delivery.instance.as_str()),
                    Value::from(now_ms().to_string()),
                    Value::from(self.consumer.as_str()),
                    Value::from(config.max_lost_deliveries.to_string()),
                    // Its earlier delivery may have run at once, recording nothing.
                    Value::from(if delivery.reclaimed && delivery.input.is_some() {
                        "1"
                    } else {
                        "0"
                    }),
                    // Whether the attempt begins as it is started (see `attempt`).
                    Value::from(if delivery.alone {
                        "2"
                    } else if delivery.reclaimed {
                        "1"
                    } else {
                        "0"
                    }),
                    Value::from(flow.hash.as_str()),
                    Value::from(delivery.hash.as_deref().unwrap_or_default()),
                ];
                // An entry of another version is only moved or dropped: its key is not this
                // plan's, and nothing of it is read.
                let inputs = (!delivery.foreign(flow)).then(|| flow.plan.inputs_of(instance));
                match inputs {
                    None => {}
                    Some(Inputs::Slots(slots) | Inputs::FirstOf(slots)) => {
                        own.extend(slots.iter().map(|slot| Value::from(fields::slot(slot))));
                    }
                    Some(Inputs::Gather { exit, items }) => {
                        let gathering = Instance::new(instance.vertex(), items.clone());
                        own.push(Value::from("*"));
                        own.push(Value::from(fields::size(&gathering)));
                        own.push(Value::from(fields::gathered_prefix(exit, &items)));
                    }
                }
                let part = delivery.keys(flow);
                keys.extend([
                    part.request(request),
                    part.ready.clone(),
                    part.parked(request),
                ]);
                args.push(Value::from(own.len().to_string()));
                args.extend(own);
            }
            (keys, args)
        };
        let holding: Vec<&Delivery> = starting.iter().map(|(n, _, _)| &deliveries[*n]).collect();
        let asked = std::time::Instant::now();
        let replies = self
            .script(
                START.get(self.engine.inner.config.events),
                "starting vertices",
                &holding,
                OnShutdown::GiveUp,
                build,
            )
            .await?
            .into_array();
        drop(holding);
        if replies.len() != starting.len() {
            return Err(RedisError::Protocol(format!(
                "the start script answered {} replies for {} entries",
                replies.len(),
                starting.len()
            )));
        }
        for ((n, _, _), reply) in starting.into_iter().zip(replies) {
            let delivery = &mut deliveries[n];
            let start = read_start(delivery, reply.into_array())?;
            if matches!(start, Start::Run { .. }) {
                // The request runs: an end this worker heard of before asking was followed by
                // a retry.
                self.forget_ended(delivery.flow, &delivery.request, asked);
            }
            delivery.start = Some(start);
        }
        Ok(())
    }

    /// Records the start of an attempt that runs at once (see [`Delivery::at_once`]), or the
    /// unrecorded run an attempt belongs to (see `run`), if it has not been recorded: once it
    /// runs long, and before its failure is recorded. `false` if the run was dropped instead
    /// (the attempt is no longer this worker's to record).
    pub(super) async fn began(&self, flow: &Flow, delivery: &Delivery) -> Result<bool, RedisError> {
        if delivery.run.is_some() {
            return self.record_run(flow, delivery).await;
        }
        let Some(began) = delivery.at_once else {
            return Ok(true);
        };
        let Ok(request) = RequestId::parse(&delivery.request) else {
            return Ok(true);
        };
        let holding = [delivery];
        let what = "recording the start of a running attempt";
        self.script(
            BEGAN.get(self.engine.inner.config.events),
            what,
            &holding,
            OnShutdown::KeepTrying,
            || {
                let keys = vec![delivery.keys(flow).request(&request)];
                let args = vec![
                    Value::from(delivery.instance.as_str()),
                    Value::from(began.to_string()),
                    Value::from(self.consumer.as_str()),
                    Value::from(now_ms().to_string()),
                    Value::from(flow.hash.as_str()),
                ];
                (keys, args)
            },
        )
        .await?;
        Ok(true)
    }

    /// Records a failed attempt: a retry when `retry_at` is set, else the instance's final
    /// failure (and the request's).
    pub(super) async fn fail(
        &self,
        flow: &Flow,
        delivery: &Delivery,
        at: Failed<'_>,
        failure: &Failure,
        retry_at: Option<u64>,
    ) -> Result<(), RedisError> {
        let plan = &flow.plan;
        // An attempt that ran at once records its start first, as the failure counts it (one
        // of an unrecorded run, the run); nothing, if its run was dropped.
        if !self.began(flow, delivery).await? {
            return Ok(());
        }
        // The failure names the instance (`verify[3]`); metrics, the vertex (bounded labels).
        let (name, label) = match at.instance {
            Some(instance) => (
                plan.name_of(instance).to_string(),
                plan.vertex(instance.vertex()).path().to_string(),
            ),
            None => (delivery.instance.clone(), delivery.instance.clone()),
        };
        let record = RequestFailure {
            vertex: name,
            attempts: at.attempts,
            failure: failure.clone(),
        };
        let json = serde_json::to_vec(&record).map_err(|e| RedisError::Protocol(e.to_string()))?;
        let request = at.request;
        let recorded = !matches!(failure, Failure::Lost(_));
        let json = Bytes::from(json);
        let build = || {
            let part = delivery.keys(flow);
            let keys = vec![
                part.request(request),
                part.ready.clone(),
                part.parked(request),
                part.done.clone(),
                part.delayed.clone(),
                part.dead.clone(),
            ];
            let args = vec![
                Value::from(GROUP),
                Value::from(delivery.entry.as_str()),
                Value::from(request),
                Value::from(delivery.instance.as_str()),
                Value::Bytes(json.clone()),
                Value::from(now_ms().to_string()),
                Value::from(retry_at.map(|t| t.to_string()).unwrap_or_default()),
                Value::from(millis(self.engine.inner.config.retention).to_string()),
                Value::from(if recorded { "1" } else { "0" }),
            ];
            (keys, args)
        };
        let what = "recording a failed attempt";
        let outcome = self
            .script(
                FAIL.get(self.engine.inner.config.events),
                what,
                &[delivery],
                OnShutdown::KeepTrying,
                build,
            )
            .await?;
        let outcome = outcome.as_str();
        if outcome.as_deref() == Some(VertexStatus::Retrying.as_str()) {
            crate::metrics::retry_scheduled(plan, label);
        } else if outcome.as_deref() == Some(RequestStatus::Failed.as_str()) {
            // The script failed the request (its one end) and dead-lettered the instance.
            crate::metrics::flow_finished(plan, RequestStatus::Failed);
            crate::metrics::dead_lettered(plan, label);
            tracing::warn!(flow = plan.flow(), request, vertex = record.vertex, attempts = record.attempts, failure = %record.failure, "a request failed");
            // This failure ended the request: cancel its other running attempts, on every
            // worker, as a stop does.
            let channel = control_channel(&self.engine.inner.config.prefix);
            self.engine
                .inner
                .client
                .publish::<(), _, _>(channel, format!("{} {request}", plan.flow()))
                .await?;
        }
        Ok(())
    }

    /// Lets go of the entry of an attempt cancelled because its request ended: the instance
    /// is recorded cancelled (or queued again at once, if the request has been retried since
    /// the end this worker heard of).
    pub(super) async fn abandon(&self, flow: &Flow, delivery: &Delivery) -> Result<(), RedisError> {
        let request = delivery.request.as_str();
        // An attempt of an unrecorded run lets go for the whole run, through the instance
        // Redis shows the entry holding: the rest of the run is dropped, unrecorded.
        let mut run = run::lock(delivery).await;
        let instance = match run.as_deref_mut() {
            Some(RunState::Dropped) => return Ok(()),
            Some(state) => state
                .drop_unrecorded()
                .map_or_else(|| delivery.instance.clone(), |unrecorded| unrecorded.root),
            None => delivery.instance.clone(),
        };
        let what = "recording a cancelled attempt";
        self.script(
            ABANDON.get(self.engine.inner.config.events),
            what,
            &[delivery],
            OnShutdown::KeepTrying,
            || {
                let part = delivery.keys(flow);
                let keys = vec![
                    part.request(request),
                    part.ready.clone(),
                    part.parked(request),
                ];
                let args = vec![
                    Value::from(GROUP),
                    Value::from(delivery.entry.as_str()),
                    Value::from(request),
                    Value::from(instance.as_str()),
                    Value::from(""),
                    Value::from(now_ms().to_string()),
                ];
                (keys, args)
            },
        )
        .await?;
        Ok(())
    }
}

/// One entry's answer of the start script.
fn read_start(delivery: &Delivery, reply: Vec<Value>) -> Result<Start, RedisError> {
    let word = reply
        .first()
        .and_then(|v| v.as_str().map(|s| s.to_string()));
    let number = |i: usize| reply.get(i).and_then(Value::as_u64).unwrap_or(0) as u32;
    match word.as_deref() {
        Some("run") => {}
        Some("drop") => return Ok(Start::Skip),
        Some(word) if word == VertexStatus::Parked.as_str() => return Ok(Start::Skip),
        Some("version") => {
            let hash = reply.get(1).and_then(Value::as_string).unwrap_or_default();
            return Ok(Start::Version(hash));
        }
        Some("moved") => {
            let carried: Option<Vec<String>> = reply.iter().skip(1).map(Value::as_string).collect();
            if let Some(carried) = carried.filter(|c| !c.is_empty()) {
                return Ok(Start::Moved(carried));
            }
        }
        Some("lost") => {
            return Ok(Start::Lost {
                started: number(1),
                lost: number(3),
            })
        }
        Some("alone") => return Ok(Start::Alone),
        _ => {
            return Err(RedisError::Protocol(format!(
                "start script answered {reply:?}"
            )))
        }
    }
    let (started, failed) = (number(1), number(2));
    // The entry's trace context, else the request's (as submitted).
    let traceparent = if delivery.traceparent.is_empty() {
        reply
            .get(3)
            .and_then(|v| v.as_str().map(|s| s.to_string()))
            .unwrap_or_default()
    } else {
        delivery.traceparent.clone()
    };
    let values = reply.into_iter().skip(4).map(optional_bytes).collect();
    Ok(Start::Run {
        started,
        failed,
        traceparent,
        values,
    })
}

/// What the start script decided.
#[derive(Debug)]
pub(super) enum Start {
    /// Run attempt `started` (`failed` of the earlier ones failed), on these input values.
    Run {
        started: u32,
        failed: u32,
        traceparent: String,
        values: Vec<Option<Bytes>>,
    },
    /// Not to run: dropped (finished, expired) or parked (paused).
    Skip,
    /// Delivered and lost (its worker died) more often than allowed.
    Lost { started: u32, lost: u32 },
    /// Lost deliveries are charged to it: to be started again once it runs alone on this
    /// worker (nothing was recorded).
    Alone,
    /// Completions handed the entry on to these instances (a reclaimed entry whose worker died
    /// after that): start them instead.
    Moved(Vec<String>),
    /// The request was submitted on a graph with this structural hash, not the worker's.
    Version(String),
}

/// A script's reply value as bytes; `None` for nil (a missing field).
pub(super) fn optional_bytes(value: Value) -> Option<Bytes> {
    match value {
        Value::Null => None,
        value => value.into_bytes(),
    }
}

/// The instance whose attempt failed, for [`Worker::fail`].
pub(super) struct Failed<'a> {
    /// The request id, as the entry holds it.
    pub(super) request: &'a str,
    /// The instance; `None` when the entry could not be read.
    pub(super) instance: Option<&'a Instance>,
    /// Attempts started.
    pub(super) attempts: u32,
}

/// A completed attempt, for [`Worker::complete`].
pub(super) struct Done<'a> {
    pub(super) request: &'a RequestId,
    pub(super) instance: &'a Instance,
    pub(super) output: Bytes,
    /// The trace context the instances it enqueues carry.
    pub(super) traceparent: String,
}
