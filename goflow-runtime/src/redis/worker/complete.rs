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
use super::{Delivery, Handed, Worker};
use crate::codec::Codec;
use crate::lifecycle::{RequestStatus, VertexStatus};
use crate::plan::{Advance, Inputs, Need, Plan, Slot};
use crate::redis::protocol::{fields, GROUP};
use crate::redis::scripts::COMPLETE;
use crate::redis::{Flow, RedisConfig, RedisError};
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
        let config = &self.engine.inner.config;
        let (mut permits, budget) = self.reserve_hand_offs(&advance, permit);
        let args = CompleteArgs::new(&flow.plan, &done, &advance, budget);
        let what = "recording a completion";
        let holding = [delivery];
        let reply = self
            .script(
                COMPLETE.get(self.engine.inner.config.events),
                what,
                &holding,
                OnShutdown::KeepTrying,
                || {
                    let part = delivery.keys(flow);
                    let keys = vec![
                        part.request(done.request),
                        part.ready.clone(),
                        part.parked(done.request),
                        part.done.clone(),
                    ];
                    (keys, args.build(config, delivery, &done, &self.consumer))
                },
            )
            .await?
            .into_array();
        let mut reply = reply.into_iter();
        if reply.next().and_then(|w| w.as_string()).as_deref()
            == Some(RequestStatus::Completed.as_str())
        {
            // The script completed the request: its one end.
            crate::metrics::flow_finished(&flow.plan, RequestStatus::Completed);
            return Ok(Vec::new());
        }
        let mut held = args.held_inputs();
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
    /// What this completion stores, by field; the exit's output is stored once, as the
    /// request's.
    store: Vec<(String, &'a Bytes)>,
    /// Per arrival, the inputs of a hand-off: held here (this completion stores them; a
    /// chain's next vertex needs only this output), or read by the script; `None` for a
    /// gather (its items are read in batches), which is always queued.
    inputs: Vec<Option<Vec<HandedInput>>>,
}

impl<'a> CompleteArgs<'a> {
    fn new(plan: &Plan, done: &Done<'_>, advance: &'a Advance, budget: usize) -> Self {
        let store: Vec<(String, &Bytes)> = advance
            .store
            .iter()
            .filter(|(slot, _)| {
                !(advance.completes && matches!(slot, Slot::Output(i) if i == done.instance))
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
        let pairs = self.store.len() + advance.sizes.len() + advance.skipped.len();
        let mut args = Vec::with_capacity(13 + 2 * pairs + 5 * advance.arrivals.len());
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
            Value::from(consumer),
            Value::from(self.budget.to_string()),
            Value::from(pairs.to_string()),
            Value::from(
                delivery
                    .at_once
                    .map(|began| began.to_string())
                    .unwrap_or_default(),
            ),
        ]);
        for (field, value) in &self.store {
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
