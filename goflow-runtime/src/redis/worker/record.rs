//! The three scripts an attempt is recorded by, one function each: `start` (may it run, and
//! on which inputs), `complete` (store its output, set what it makes ready going, take the
//! hand-offs) and `fail` (a retry, or the instance's and its request's end). Each builds its
//! script's keys and arguments and reads its answer; the scripts themselves are in `lua/`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use fred::prelude::{PubsubInterface, Value};
use tokio::sync::OwnedSemaphorePermit;

use super::{Delivery, Handed, Worker};
use crate::codec::Codec;
use crate::error::Failure;
use crate::lifecycle::{RequestStatus, VertexStatus};
use crate::plan::{Advance, Inputs, Instance, Need, Slot};
use crate::redis::protocol::{control_channel, fields, GROUP};
use crate::redis::scripts::{self, ABANDON, BEGAN, COMPLETE, FAIL, START};
use crate::redis::{Flow, RedisError};
use crate::request::RequestFailure;
use crate::request_id::RequestId;
use crate::time::{millis, now_ms};

impl<C: Codec> Worker<C> {
    /// The start script, in one call for several delivered entries of `flow` (the entries of
    /// one read): sets each readable entry's [`start`](Delivery::start) to whether it runs
    /// (with its attempt number and input values), is dropped or parked, or has been lost too
    /// often. Unreadable entries are left as they are.
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
                let (request, instance) = delivery.identify(&flow.plan)?;
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
                    Value::from(flow.hash.as_str()),
                ];
                match flow.plan.inputs_of(instance) {
                    Inputs::Slots(slots) | Inputs::FirstOf(slots) => {
                        own.extend(slots.iter().map(|slot| Value::from(fields::slot(slot))));
                    }
                    Inputs::Gather { exit, items } => {
                        let gathering = Instance::new(instance.vertex(), items.clone());
                        own.push(Value::from("*"));
                        own.push(Value::from(fields::size(&gathering)));
                        own.push(Value::from(fields::gathered_prefix(exit, &items)));
                    }
                }
                keys.extend([
                    flow.keys.request(request),
                    flow.keys.ready.clone(),
                    flow.keys.parked(request),
                ]);
                args.push(Value::from(own.len().to_string()));
                args.extend(own);
            }
            (keys, args)
        };
        let replies = scripts::call(&START, &self.engine.inner.client, build)
            .await?
            .into_array();
        if replies.len() != starting.len() {
            return Err(RedisError::Protocol(format!(
                "the start script answered {} replies for {} entries",
                replies.len(),
                starting.len()
            )));
        }
        for ((n, _, _), reply) in starting.into_iter().zip(replies) {
            let delivery = &mut deliveries[n];
            delivery.start = Some(read_start(delivery, reply.into_array())?);
        }
        Ok(())
    }

    /// Applies what a completed instance sets going
    /// ([`Plan::advance`](crate::plan::Plan::advance)), in one script.
    pub(super) async fn complete(
        &self,
        flow: &Flow,
        delivery: &Delivery,
        done: Done<'_>,
        advance: Advance,
        permit: OwnedSemaphorePermit,
    ) -> Result<Vec<Handed>, RedisError> {
        let config = &self.engine.inner.config;
        let plan = &flow.plan;
        let completes = advance.completes;
        // The slot this attempt held, and as many free ones as there are instances that may
        // become ready (up to a batch): the script hands off that many, or up to
        // `hand_off_ahead` if more, which then wait here for a slot.
        let mut permits = Vec::new();
        let mut budget = 0;
        if !completes && !advance.arrivals.is_empty() {
            permits.push(permit);
            let wanted = advance.arrivals.len().min(config.batch.max(1));
            while permits.len() < wanted {
                match Arc::clone(&self.slots).try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }
            budget = permits.len().max(wanted.min(config.hand_off_ahead.max(1)));
        }
        // Handed-off instances take the reserved slots in order; the first keeps this one.
        permits.reverse();
        // What this completion stores, by field; the exit's output is stored once, as the
        // request's.
        let store: Vec<(String, &Bytes)> = advance
            .store
            .iter()
            .filter(|(slot, _)| {
                !(completes && matches!(slot, Slot::Output(i) if i == done.instance))
            })
            .map(|(slot, value)| (fields::slot(slot), value))
            .collect();
        let stored: HashMap<&str, &Bytes> = if budget > 0 {
            store
                .iter()
                .map(|(field, value)| (field.as_str(), *value))
                .collect()
        } else {
            HashMap::new()
        };
        // Per instance that may be handed off, its inputs: held here (this completion stores
        // them; a chain's next vertex needs only this output), or read by the script. A
        // gather (its items are read in batches) is always queued.
        let mut inputs: Vec<Option<Vec<HandedInput>>> = Vec::with_capacity(advance.arrivals.len());
        for (next, _) in &advance.arrivals {
            inputs.push(match plan.inputs_of(next) {
                Inputs::Slots(slots) | Inputs::FirstOf(slots) => Some(
                    slots
                        .iter()
                        .map(|slot| {
                            let field = fields::slot(slot);
                            match stored.get(field.as_str()) {
                                Some(value) => HandedInput::Held((*value).clone()),
                                None => HandedInput::Read(field),
                            }
                        })
                        .collect(),
                ),
                Inputs::Gather { .. } => None,
            });
        }
        // A small output also rides on the done event, for the waiting client.
        let ending = match (completes, done.output.len() <= config.inline_output_limit) {
            (false, _) => "0",
            (true, false) => "1",
            (true, true) => "2",
        };
        let sizes = advance.sizes.len() + advance.skipped.len();
        let build = || {
            let mut args =
                Vec::with_capacity(13 + 2 * (store.len() + sizes) + 5 * advance.arrivals.len());
            args.extend([
                Value::from(GROUP),
                Value::from(delivery.entry.as_str()),
                Value::from(done.request.as_str()),
                Value::from(delivery.instance.as_str()),
                if completes {
                    Value::Bytes(done.output.clone())
                } else {
                    Value::from("")
                },
                Value::from(now_ms().to_string()),
                Value::from(ending),
                Value::from(millis(config.retention).to_string()),
                Value::from(done.traceparent.as_str()),
                Value::from(self.consumer.as_str()),
                Value::from(budget.to_string()),
                Value::from((store.len() + sizes).to_string()),
                Value::from(
                    delivery
                        .at_once
                        .map(|began| began.to_string())
                        .unwrap_or_default(),
                ),
            ]);
            for (field, value) in &store {
                args.push(Value::from(field.as_str()));
                args.push(Value::Bytes((*value).clone()));
            }
            for (gathering, size) in &advance.sizes {
                args.push(Value::from(fields::size(gathering)));
                args.push(Value::from(size.to_string()));
            }
            for skipped in &advance.skipped {
                args.push(Value::from(fields::status(skipped)));
                args.push(Value::from(VertexStatus::Skipped.as_str()));
            }
            for ((next, need), inputs) in advance.arrivals.iter().zip(&inputs) {
                let (need, counter) = match need {
                    Need::One => (Value::from("1"), String::new()),
                    Need::Count(n) => (Value::from(n.to_string()), fields::arrivals(next)),
                    Need::Size => (Value::from(fields::size(next)), fields::arrivals(next)),
                };
                args.push(Value::from(next.key()));
                args.push(need);
                args.push(Value::from(counter));
                // The inputs a hand-off reads, less those held here.
                match inputs {
                    Some(inputs) => {
                        let read = inputs.iter().filter_map(|input| match input {
                            HandedInput::Read(field) => Some(Value::from(field.as_str())),
                            HandedInput::Held(_) => None,
                        });
                        let read: Vec<Value> = read.collect();
                        args.push(Value::from(read.len().to_string()));
                        args.extend(read);
                    }
                    None => args.push(Value::from("-")),
                }
            }
            let keys = vec![
                flow.keys.request(done.request),
                flow.keys.ready.clone(),
                flow.keys.parked(done.request),
                flow.keys.done.clone(),
            ];
            (keys, args)
        };
        let reply = scripts::call(&COMPLETE, &self.engine.inner.client, build)
            .await?
            .into_array();
        // The inputs of the instances that may have been handed off, by instance key.
        let mut held: HashMap<String, Vec<HandedInput>> = HashMap::new();
        if budget > 0 {
            let arrivals = advance.arrivals.iter().zip(inputs);
            held.extend(arrivals.filter_map(|((next, _), inputs)| Some((next.key(), inputs?))));
        }
        let mut reply = reply.into_iter();
        if reply.next().and_then(|w| w.as_string()).as_deref()
            == Some(RequestStatus::Completed.as_str())
        {
            // The script completed the request: its one end.
            crate::metrics::flow_finished(plan.flow(), RequestStatus::Completed);
        }
        // The instances handed to this worker, carried by this entry: instance key, its input
        // values.
        let mut handed = Vec::new();
        while let (Some(instance), Some(count)) = (reply.next(), reply.next()) {
            let count = count.as_u64().unwrap_or(0) as usize;
            let mut read = reply.by_ref().take(count).map(optional_bytes);
            let unreadable = || {
                RedisError::Protocol(format!(
                    "the completion script answered an unreadable hand-off of `{}`",
                    delivery.instance
                ))
            };
            let Some(instance) = instance.as_string() else {
                return Err(unreadable());
            };
            // The inputs in slot order: those held here, and those the script read.
            let inputs = held.remove(&instance).ok_or_else(unreadable)?;
            let reads = inputs
                .iter()
                .filter(|input| matches!(input, HandedInput::Read(_)))
                .count();
            if reads != count {
                return Err(unreadable());
            }
            let values: Vec<Option<Bytes>> = inputs
                .into_iter()
                .map(|input| match input {
                    HandedInput::Held(value) => Some(value),
                    HandedInput::Read(_) => read.next().flatten(),
                })
                .collect();
            let permit = permits.pop();
            handed.push((
                Delivery {
                    flow: delivery.flow,
                    entry: delivery.entry.clone(),
                    request: delivery.request.clone(),
                    instance,
                    traceparent: done.traceparent.clone(),
                    input: None,
                    hash: None,
                    reclaimed: false,
                    at_once: None,
                    // Started by the completion script: attempt 1, on the inputs it read.
                    start: Some(Start::Run {
                        started: 1,
                        failed: 0,
                        traceparent: done.traceparent.clone(),
                        values,
                    }),
                },
                permit,
            ));
        }
        Ok(handed)
    }

    /// Records the start of an attempt that runs at once (see [`Delivery::at_once`]), if it
    /// has not been recorded: once it runs long, and before its failure is recorded.
    pub(super) async fn began(&self, flow: &Flow, delivery: &Delivery) -> Result<(), RedisError> {
        let Some(began) = delivery.at_once else {
            return Ok(());
        };
        let Ok(request) = RequestId::parse(&delivery.request) else {
            return Ok(());
        };
        scripts::call(&BEGAN, &self.engine.inner.client, || {
            let keys = vec![flow.keys.request(&request)];
            let args = vec![
                Value::from(delivery.instance.as_str()),
                Value::from(began.to_string()),
                Value::from(self.consumer.as_str()),
                Value::from(now_ms().to_string()),
            ];
            (keys, args)
        })
        .await?;
        Ok(())
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
        // An attempt that ran at once records its start first, as the failure counts it.
        self.began(flow, delivery).await?;
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
            let keys = vec![
                flow.keys.request(request),
                flow.keys.ready.clone(),
                flow.keys.parked(request),
                flow.keys.done.clone(),
                flow.keys.delayed.clone(),
                flow.keys.dead.clone(),
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
        let outcome = scripts::call(&FAIL, &self.engine.inner.client, build).await?;
        let outcome = outcome.as_str();
        if outcome.as_deref() == Some(VertexStatus::Retrying.as_str()) {
            crate::metrics::retry_scheduled(plan.flow(), label);
        } else if outcome.as_deref() == Some(RequestStatus::Failed.as_str()) {
            // The script failed the request (its one end) and dead-lettered the instance.
            crate::metrics::flow_finished(plan.flow(), RequestStatus::Failed);
            crate::metrics::dead_lettered(plan.flow(), label);
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
    /// is recorded cancelled (the abandon script leaves the entry to be reclaimed if, against
    /// all odds, the request has not ended).
    pub(super) async fn abandon(&self, flow: &Flow, delivery: &Delivery) -> Result<(), RedisError> {
        let request = delivery.request.as_str();
        scripts::call(&ABANDON, &self.engine.inner.client, || {
            let keys = vec![flow.keys.request(request), flow.keys.ready.clone()];
            let args = vec![
                Value::from(GROUP),
                Value::from(delivery.entry.as_str()),
                Value::from(request),
                Value::from(delivery.instance.as_str()),
                Value::from(""),
                Value::from(now_ms().to_string()),
            ];
            (keys, args)
        })
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
    /// Completions handed the entry on to these instances (a reclaimed entry whose worker died
    /// after that): start them instead.
    Moved(Vec<String>),
    /// The request was submitted on a graph with this structural hash, not the worker's.
    Version(String),
}

/// One input of an instance a completion may hand off: a value the completion stores itself,
/// or a field the script reads.
enum HandedInput {
    Held(Bytes),
    Read(String),
}

/// A script's reply value as bytes; `None` for nil (a missing field).
fn optional_bytes(value: Value) -> Option<Bytes> {
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
