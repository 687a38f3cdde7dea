//! The completion of an attempt, in one script call (`complete.lua`): what its output sets
//! going (the plan's advance) is stored, the instances it makes ready are counted and queued,
//! and those it hands to this worker are started on this attempt's entry. Three steps, one
//! function each: reserve the slots for the hand-offs, build the script's arguments, read the
//! hand-offs from its answer.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use fred::prelude::Value;
use tokio::sync::OwnedSemaphorePermit;

use super::overload::OnShutdown;
use super::record::{optional_bytes, Done, Start};
use super::run::{self, Run, RunState};
use super::{Delivery, Handed, Worker};
use crate::codec::Codec;
use crate::lifecycle::{RequestStatus, VertexStatus};
use crate::plan::{Advance, Inputs, Instance, Need, Plan, Slot};
use crate::redis::protocol::{fields, GROUP};
use crate::redis::scripts::COMPLETE;
use crate::redis::{Flow, RedisConfig, RedisError};
use crate::request_id::RequestId;
use crate::time::{millis, now_ms};

impl<C: Codec> Worker<C> {
    /// Applies what a completed instance sets going, in one script; returns the instances the
    /// script handed to this worker, each with the slot reserved for it if there was one.
    pub(super) async fn complete(
        &self,
        flow: &Flow,
        delivery: &Delivery,
        done: Done<'_>,
        advance: Advance,
        permit: OwnedSemaphorePermit,
    ) -> Result<Vec<Handed>, RedisError> {
        // The run this attempt belongs to, if Redis has not heard of it, is recorded first,
        // in the same call; the others of it wait meanwhile.
        let mut run = run::lock(delivery).await;
        let unrecorded = match run.as_deref() {
            Some(RunState::Dropped) => return Ok(Vec::new()),
            Some(RunState::Unrecorded(run)) => Some(run),
            Some(RunState::Recorded) | None => None,
        };
        // The run's arrivals at joins are counted with this completion's.
        let advance = match unrecorded {
            Some(run) => run.with_waiting(advance),
            None => advance,
        };
        let (mut permits, budget) = self.reserve_hand_offs(&advance, permit);
        let unrecorded = unrecorded.map(|run| (run, true));
        let args = CompleteArgs::new(&flow.plan, &done, &advance, budget, unrecorded);
        let reply = self.record_completion(flow, delivery, &done, &args).await?;
        let mut reply = reply.into_iter();
        let word = reply.next().and_then(|w| w.as_string());
        let completed = word.as_deref() == Some(RequestStatus::Completed.as_str());
        let mut held = args.held_inputs();
        if let Some(run) = run.as_deref_mut() {
            *run = recorded_or_dropped(completed || word.as_deref() == Some("ok"));
        }
        if completed {
            // The script completed the request: its one end.
            crate::metrics::flow_finished(&flow.plan, RequestStatus::Completed);
            return Ok(Vec::new());
        }
        let mut handed = Vec::new();
        // The instances handed to this worker, carried by this entry: instance key, how many
        // values the script read, the values.
        while let (Some(instance), Some(attempt), Some(count)) =
            (reply.next(), reply.next(), reply.next())
        {
            let unreadable = || {
                RedisError::Protocol(format!(
                    "the completion script answered an unreadable hand-off of `{}`",
                    delivery.instance
                ))
            };
            let count = count.as_u64().ok_or_else(unreadable)? as usize;
            let read = reply.by_ref().take(count).map(optional_bytes);
            let instance = instance.as_string().ok_or_else(unreadable)?;
            let inputs = held.remove(&instance).ok_or_else(unreadable)?;
            let values = inputs_in_order(inputs, count, read).ok_or_else(unreadable)?;
            let started = Start::Run {
                started: attempt.as_u64().ok_or_else(unreadable)? as u32,
                failed: 0,
                traceparent: done.traceparent.clone(),
                values,
            };
            handed.push((
                delivery.handed(instance, &done.traceparent, started),
                permits.pop(),
            ));
        }
        Ok(handed)
    }

    /// Records the unrecorded run `delivery`'s attempt belongs to, if it has one, with that
    /// attempt running (before it records a failure, or as it runs long); `false` if the run
    /// was dropped: the attempt is then no longer this worker's to record.
    pub(super) async fn record_run(
        &self,
        flow: &Flow,
        delivery: &Delivery,
    ) -> Result<bool, RedisError> {
        let Some(shared) = &delivery.run else {
            return Ok(true);
        };
        let mut run = shared.lock().await;
        let RunState::Unrecorded(unrecorded) = &*run else {
            return Ok(matches!(*run, RunState::Recorded));
        };
        let (Ok(request), Some(instance)) = (
            RequestId::parse(&delivery.request),
            Instance::parse_key(&delivery.instance),
        ) else {
            return Err(RedisError::Protocol(format!(
                "an unrecorded run holds the unreadable instance `{}`",
                delivery.instance
            )));
        };
        // Nothing ended yet: no output, no arrivals but those waiting in the run.
        let done = Done {
            request: &request,
            instance: &instance,
            output: Bytes::new(),
            traceparent: delivery.traceparent.clone(),
        };
        let advance = unrecorded.with_waiting(Advance::default());
        let args = CompleteArgs::new(&flow.plan, &done, &advance, 0, Some((unrecorded, false)));
        let reply = self.record_completion(flow, delivery, &done, &args).await?;
        let word = reply.into_iter().next().and_then(|w| w.as_string());
        *run = recorded_or_dropped(word.as_deref() == Some("ok"));
        Ok(matches!(*run, RunState::Recorded))
    }

    /// Calls the completion script with `args`; its reply as an array.
    async fn record_completion(
        &self,
        flow: &Flow,
        delivery: &Delivery,
        done: &Done<'_>,
        args: &CompleteArgs<'_>,
    ) -> Result<Vec<Value>, RedisError> {
        let config = &self.engine.inner.config;
        let reply = self
            .script(
                COMPLETE.get(config.events),
                "recording a completion",
                &[delivery],
                OnShutdown::KeepTrying,
                || {
                    let part = delivery.keys(flow);
                    let keys = vec![
                        part.request(done.request),
                        part.ready.clone(),
                        part.parked(done.request),
                        part.done.clone(),
                    ];
                    (keys, args.build(config, delivery, done, &self.consumer))
                },
            )
            .await?;
        Ok(reply.into_array())
    }

    /// The slot this attempt held, and as many free ones as there are instances that may
    /// become ready (up to a batch), in the order the hand-offs take them; and the hand-off
    /// budget: as many as there are slots, or up to `hand_off_ahead` if more instances may
    /// become ready (those then wait here for a slot).
    fn reserve_hand_offs(
        &self,
        advance: &Advance,
        permit: OwnedSemaphorePermit,
    ) -> (Vec<OwnedSemaphorePermit>, usize) {
        let config = &self.engine.inner.config;
        if advance.completes || advance.arrivals.is_empty() {
            return (Vec::new(), 0);
        }
        let wanted = advance.arrivals.len().min(config.batch.max(1));
        let mut permits = vec![permit];
        while permits.len() < wanted {
            match Arc::clone(&self.slots).try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let budget = permits.len().max(wanted.min(config.hand_off_ahead.max(1)));
        // Handed-off instances take the reserved slots in order; the first keeps this one.
        permits.reverse();
        (permits, budget)
    }
}

/// One input of an instance a completion may hand off: a value the completion stores itself,
/// or a field the script reads.
enum HandedInput {
    Held(Bytes),
    Read(String),
}

/// An instance's input values in slot order, from those held here and the `count` the script
/// read; `None` if the script read another number of them.
fn inputs_in_order(
    inputs: Vec<HandedInput>,
    count: usize,
    mut read: impl Iterator<Item = Option<Bytes>>,
) -> Option<Vec<Option<Bytes>>> {
    let reads = inputs
        .iter()
        .filter(|input| matches!(input, HandedInput::Read(_)))
        .count();
    (reads == count).then(|| {
        inputs
            .into_iter()
            .map(|input| match input {
                HandedInput::Held(value) => Some(value),
                HandedInput::Read(_) => read.next().flatten(),
            })
            .collect()
    })
}

/// What the completion script is called with, worked out once per call (the arguments are
/// built from it again only if the server lost the script): the fields to store and, per
/// instance that may become ready, the inputs a hand-off of it needs.
struct CompleteArgs<'a> {
    advance: &'a Advance,
    budget: usize,
    /// The unrecorded run the attempt belongs to, recorded first, and whether the attempt
    /// ends with this call (else it is recorded running: see [`Worker::record_run`]).
    run: Option<(&'a Run, bool)>,
    /// What this completion stores, by field; the exit's output is stored once, as the
    /// request's.
    store: Vec<(String, &'a Bytes)>,
    /// Per arrival, the inputs of a hand-off: held here (this completion stores them; a
    /// chain's next vertex needs only this output), or read by the script; `None` for a
    /// gather (its items are read in batches), which is always queued.
    inputs: Vec<Option<Vec<HandedInput>>>,
}

impl<'a> CompleteArgs<'a> {
    fn new(
        plan: &Plan,
        done: &Done<'_>,
        advance: &'a Advance,
        budget: usize,
        run: Option<(&'a Run, bool)>,
    ) -> Self {
        let store: Vec<(String, &Bytes)> = advance
            .store
            .iter()
            .filter(|(slot, _)| {
                !(advance.completes && matches!(slot, Slot::Output(i) if i == done.instance))
            })
            .map(|(slot, value)| (fields::slot(slot), value))
            .collect();
        // A hand-off's inputs that this call stores (the run's too) are not in Redis yet.
        let stored: HashMap<&str, &Bytes> = if budget > 0 {
            let earlier = run.map_or(&[][..], |(run, _)| &run.store[..]);
            earlier
                .iter()
                .map(|(field, value)| (field.as_str(), value))
                .chain(store.iter().map(|(field, value)| (field.as_str(), *value)))
                .collect()
        } else {
            HashMap::new()
        };
        let inputs = advance
            .arrivals
            .iter()
            .map(|(next, _)| match plan.inputs_of(next) {
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
            })
            .collect();
        Self {
            advance,
            budget,
            run,
            store,
            inputs,
        }
    }

    /// The script's arguments, in the order of its header in `complete.lua`.
    fn build(
        &self,
        config: &RedisConfig,
        delivery: &Delivery,
        done: &Done<'_>,
        consumer: &str,
    ) -> Vec<Value> {
        let advance = self.advance;
        let completes = advance.completes;
        // A small output also rides on the done event, for the waiting client.
        let ending = match (completes, done.output.len() <= config.inline_output_limit) {
            (false, _) => "0",
            (true, false) => "1",
            (true, true) => "2",
        };
        let earlier = self.run.map_or(&[][..], |(run, _)| &run.store[..]);
        let pairs = earlier.len() + self.store.len() + advance.sizes.len() + advance.skipped.len();
        let ran = self.run.map_or(0, |(run, _)| run.ran.len());
        let now = now_ms();
        let mut args = Vec::with_capacity(15 + 3 * ran + 2 * pairs + 5 * advance.arrivals.len());
        // A run is recorded from its first instance, the one Redis shows the entry holding.
        let (instance, at_once) = match self.run {
            Some((run, _)) => (run.root.as_str(), run.root_at_once),
            None => (delivery.instance.as_str(), delivery.at_once),
        };
        args.extend([
            Value::from(GROUP),
            Value::from(delivery.entry.as_str()),
            Value::from(done.request.as_str()),
            Value::from(instance),
            if completes {
                Value::Bytes(done.output.clone())
            } else {
                Value::from("")
            },
            Value::from(now.to_string()),
            Value::from(ending),
            Value::from(millis(config.retention).to_string()),
            Value::from(done.traceparent.as_str()),
            Value::from(consumer),
            Value::from(self.budget.to_string()),
            Value::from(pairs.to_string()),
            Value::from(at_once.map(|began| began.to_string()).unwrap_or_default()),
            Value::from(ran.to_string()),
            Value::from(
                self.run
                    .map(|(run, _)| run.since.to_string())
                    .unwrap_or_default(),
            ),
        ]);
        if let Some((run, ends)) = self.run {
            // The attempt that completes ends now; one recorded running, later.
            let finishing = if ends { delivery.instance.as_str() } else { "" };
            for (instance, began, ended) in run.attempts(finishing, now) {
                args.push(Value::from(instance));
                args.push(Value::from(began.to_string()));
                args.push(Value::from(
                    ended.map(|ended| ended.to_string()).unwrap_or_default(),
                ));
            }
        }
        for (field, value) in earlier
            .iter()
            .map(|(f, v)| (f, v))
            .chain(self.store.iter().map(|(f, v)| (f, *v)))
        {
            args.push(Value::from(field.as_str()));
            args.push(Value::Bytes(value.clone()));
        }
        for (gathering, size) in &advance.sizes {
            args.push(Value::from(fields::size(gathering)));
            args.push(Value::from(size.to_string()));
        }
        for skipped in &advance.skipped {
            args.push(Value::from(fields::status(skipped)));
            args.push(Value::from(VertexStatus::Skipped.as_str()));
        }
        for ((next, need), inputs) in advance.arrivals.iter().zip(&self.inputs) {
            let (need, counter) = match need {
                Need::One => (Value::from("1"), String::new()),
                Need::Count(n) => (Value::from(n.to_string()), fields::arrivals(next)),
                Need::Size => (Value::from(fields::size(next)), fields::arrivals(next)),
            };
            args.push(Value::from(next.key()));
            args.push(need);
            args.push(Value::from(counter));
            // The inputs a hand-off reads, less those held here; `-`: no hand-off.
            match inputs {
                Some(inputs) => {
                    let read: Vec<Value> = inputs
                        .iter()
                        .filter_map(|input| match input {
                            HandedInput::Read(field) => Some(Value::from(field.as_str())),
                            HandedInput::Held(_) => None,
                        })
                        .collect();
                    args.push(Value::from(read.len().to_string()));
                    args.extend(read);
                }
                None => args.push(Value::from("-")),
            }
        }
        args
    }

    /// The inputs of the instances that may have been handed off, by instance key.
    fn held_inputs(self) -> HashMap<String, Vec<HandedInput>> {
        if self.budget == 0 {
            return HashMap::new();
        }
        let arrivals = self.advance.arrivals.iter().zip(self.inputs);
        arrivals
            .filter_map(|((next, _), inputs)| Some((next.key(), inputs?)))
            .collect()
    }
}

/// A run's state once its recording answered: `Recorded` if the script recorded it (`ok`, or
/// the request's completion), else `Dropped` (it answered why not: the request had ended,
/// expired or migrated, or its first instance was done already, by another worker).
fn recorded_or_dropped(recorded: bool) -> RunState {
    if recorded {
        RunState::Recorded
    } else {
        RunState::Dropped
    }
}
