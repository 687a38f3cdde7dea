//! Running one delivered entry: waiting for its slot, starting it, running its vertex under
//! the entry's trace context and the request's cancellation, then going on with the instances
//! its completion hands back to this worker. This decides which script records each step (by
//! the lifecycle core's rules: whether a failure is retried is its retry policy); the calls to
//! those scripts are in `record`.
//!
//! A request's first entry that carries its input (see `Delivery::run_at_once`) runs at once,
//! without the start script's round trip, about a sixth of an idle request's latency. Nothing
//! is lost by it: a pause or stop that comes before the read takes the entry back (see
//! `control.lua`); one that comes after finds the attempt running, as it would after a start;
//! the completion records the start with the end, and the attempt records it on its own once
//! it runs for [`RUNS_LONG`] (so that the request's state shows it running) or before it
//! records a failure; a worker lost before any of that still counts as an attempt (the start
//! script of the reclaimed entry counts it).
//!
//! # Lost deliveries
//!
//! When a worker dies, every entry it held is reclaimed by the others: those it was running,
//! and those it had started ahead of their slot (read ahead, or handed off beyond its free
//! slots, or read to run at once) that were only waiting. Redis cannot tell these apart, so a
//! loss is charged only to an attempt known to have been running when its worker died (see
//! `start.lua`):
//! - a reclaimed entry is started once it has its slot, as its attempt begins, and that start
//!   marks the attempt as exposed; the next start of an instance whose exposed attempt never
//!   ended charges it a lost delivery. A first delivery, started ahead, is never charged: at
//!   most one uncharged loss per entry, as its entry is then reclaimed;
//! - an instance charged with a loss runs alone on its worker: it takes every slot first
//!   (after its turn among such instances), so that a death while it runs is its own. An
//!   instance running beside the vertex that killed its worker is charged once, the first
//!   time it is reclaimed beside it, and then runs alone, and finishes; the vertex that kills
//!   every worker is charged at every death, and fails with `Failure::Lost` once that is more
//!   than `max_lost_deliveries`.
//!
//! This costs nothing on the hot path (a first delivery is started as before); a reclaimed
//! entry is started by a call of its own once it has its slot, rather than with its batch, and
//! an instance charged with a loss waits for the worker's other attempts to end.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::record::{Done, Failed, Start};
use super::{Delivery, Handed, Running, Worker};
use crate::codec::Codec;
use crate::context::Context;
use crate::error::Failure;
use crate::exec;
use crate::lifecycle::{self, Retry};
use crate::plan::{Inputs, Instance, Plan};
use crate::redis::{Flow, RedisError};
use crate::request_id::RequestId;
use crate::time::{millis, now_ms};

impl<C: Codec> Worker<C> {
    /// Runs a delivered entry, then, each in a slot of its own, the instances its completion
    /// handed to this worker, and theirs in turn: the first in this task, the others in tasks
    /// of their own.
    ///
    /// `slot` is the slot reserved for the entry, if any; else it waits for one. An entry read
    /// (not handed off) is started first, and only then waits for its slot, holding its place
    /// in the intake (`intake`) meanwhile: the start script's round trip overlaps the attempts
    /// still running, instead of keeping a slot idle. A reclaimed entry waits for its slot
    /// first, and is started as it begins running (see the module docs).
    pub(super) fn drive(
        self: Arc<Self>,
        delivery: Delivery,
        slot: Option<OwnedSemaphorePermit>,
        intake: Option<OwnedSemaphorePermit>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut branches = JoinSet::new();
            let mut intake = intake;
            let mut next = Some((delivery, slot));
            while let Some((mut delivery, mut slot)) = next.take() {
                if delivery.reclaimed && delivery.start.is_none() && slot.is_none() {
                    slot = Some(self.slot_for(&delivery).await);
                }
                // A reclaimed entry may carry several instances: the others run beside this.
                let mut carried = Vec::new();
                let begun = self.begin(&mut delivery, &mut carried, &mut slot).await;
                for delivery in carried {
                    branches.spawn(Arc::clone(&self).drive(delivery, None, None));
                }
                let Some(begun) = begun else {
                    break;
                };
                let slot = match slot {
                    Some(slot) => slot,
                    None => self.slot_for(&delivery).await,
                };
                drop(intake.take());
                // An attempt that runs at once begins now that it has its slot.
                if delivery.at_once.is_some() {
                    delivery.at_once = Some(now_ms());
                }
                let mut handed = self.process(delivery, begun, slot).await.into_iter();
                next = handed.next();
                for (delivery, slot) in handed {
                    branches.spawn(Arc::clone(&self).drive(delivery, slot, None));
                }
            }
            while branches.join_next().await.is_some() {}
        })
    }

    /// Waits for a free slot for an entry this worker holds; meanwhile its lease is renewed
    /// with the running ones', so that nobody reclaims it.
    async fn slot_for(&self, delivery: &Delivery) -> OwnedSemaphorePermit {
        let _held = self.hold(delivery);
        Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("never closed")
    }

    /// Reads a delivered entry and starts it (an instance handed off by a completion was
    /// started there): `None` if it is not to run, having recorded why. Redis errors leave
    /// the entry pending; it is then reclaimed after its lease, by this worker or another.
    ///
    /// An entry that completions handed on to other instances starts the first of them
    /// instead, and adds the others, to be started, to `carried`. An instance to run alone
    /// gives back its `slot` and takes every slot (the one it runs in into `slot`).
    async fn begin(
        &self,
        delivery: &mut Delivery,
        carried: &mut Vec<Delivery>,
        slot: &mut Option<OwnedSemaphorePermit>,
    ) -> Option<Begun> {
        match self.try_begin(delivery, carried, slot).await {
            Ok(begun) => begun,
            Err(error) => {
                tracing::warn!(error = %crate::error::chain(&error), flow = delivery.flow, request = delivery.request, instance = delivery.instance, "vertex left for reclaiming");
                None
            }
        }
    }

    async fn try_begin(
        &self,
        delivery: &mut Delivery,
        carried: &mut Vec<Delivery>,
        slot: &mut Option<OwnedSemaphorePermit>,
    ) -> Result<Option<Begun>, RedisError> {
        let flow = self.engine.flow(delivery.flow)?;
        let plan = &flow.plan;
        let mut alone = None;
        // An entry handed on by completions names the instance it was added for: the start
        // script answers the ones it carries now, and those are started instead. (Each move
        // is a completion; a few in a row mean workers are racing for it: leave it then.)
        for _ in 0..MOST_MOVES {
            let Some((request, instance)) = delivery.identify(flow) else {
                // Not ours to understand (damage, or keys written by something else): never
                // retry.
                tracing::error!(
                    flow = delivery.flow,
                    entry = delivery.entry,
                    "dropping an unreadable entry"
                );
                let failure = Failure::Codec("unreadable stream entry".into());
                self.fail_for_good(flow, delivery, None, 0, &failure)
                    .await?;
                return Ok(None);
            };
            if delivery.start.is_none() {
                self.start(flow, std::slice::from_mut(delivery)).await?;
            }
            let (started, failed, traceparent, values) = match delivery.start.take() {
                Some(Start::Run {
                    started,
                    failed,
                    traceparent,
                    values,
                }) => (started, failed, traceparent, values),
                Some(Start::Skip) => return Ok(None),
                Some(Start::Moved(instances)) => {
                    let mut instances = instances.into_iter();
                    let Some(first) = instances.next() else {
                        return Err(RedisError::Protocol(format!(
                            "entry `{}` was handed on to no instance",
                            delivery.entry
                        )));
                    };
                    for instance in instances {
                        if !carried.iter().any(|d| d.instance == instance) {
                            carried.push(delivery.carrying(instance));
                        }
                    }
                    *delivery = delivery.carrying(first);
                    continue;
                }
                Some(Start::Alone) => {
                    if alone.is_none() {
                        alone = Some(self.take_every_slot(delivery, slot).await);
                    } else if delivery.alone {
                        return Err(RedisError::Protocol(format!(
                            "the start script asked `{}` to run alone twice",
                            delivery.instance
                        )));
                    }
                    delivery.alone = true;
                    continue;
                }
                Some(Start::Lost { started, lost }) => {
                    let failure = Failure::Lost(lost);
                    self.fail_for_good(flow, delivery, Some(&instance), started, &failure)
                        .await?;
                    return Ok(None);
                }
                Some(Start::Version(hash)) => {
                    let failure = Failure::Version(format!(
                        "the request's graph has the structural hash {hash}, this worker's {}",
                        flow.hash
                    ));
                    tracing::error!(flow = delivery.flow, request = delivery.request, %failure, "a request of another graph");
                    self.fail_for_good(flow, delivery, Some(&instance), 0, &failure)
                        .await?;
                    return Ok(None);
                }
                None => {
                    return Err(RedisError::Protocol(format!(
                        "no start decision for `{}`",
                        delivery.instance
                    )))
                }
            };
            if delivery.foreign(flow) {
                return Err(RedisError::Protocol(format!(
                    "the start script let `{}` of another version run here",
                    delivery.instance
                )));
            }
            let inputs = plan.inputs_of(&instance);
            return Ok(Some(Begun {
                request,
                instance,
                inputs,
                started,
                failed,
                traceparent,
                values,
                alone,
            }));
        }
        Err(RedisError::Protocol(format!(
            "entry `{}` handed on more than {MOST_MOVES} times while being started",
            delivery.entry
        )))
    }

    /// Runs one started entry in the slot `permit` holds, to its script; returns the
    /// instances its completion handed to this worker, each with its slot. Redis errors leave
    /// the entry pending; it is then reclaimed after its lease, by this worker or another.
    async fn process(
        &self,
        delivery: Delivery,
        begun: Begun,
        permit: OwnedSemaphorePermit,
    ) -> Vec<Handed> {
        match self.try_process(&delivery, begun, permit).await {
            Ok(handed) => handed,
            Err(error) => {
                tracing::warn!(error = %crate::error::chain(&error), flow = delivery.flow, request = delivery.request, instance = delivery.instance, "vertex left for reclaiming");
                Vec::new()
            }
        }
    }

    async fn try_process(
        &self,
        delivery: &Delivery,
        begun: Begun,
        permit: OwnedSemaphorePermit,
    ) -> Result<Vec<Handed>, RedisError> {
        let flow = self.engine.flow(delivery.flow)?;
        let plan = &flow.plan;
        let Begun {
            request,
            instance,
            inputs,
            started,
            failed,
            traceparent,
            values,
            alone,
        } = begun;
        // An attempt running alone keeps every slot until it is recorded.
        let _alone = alone;
        let Some(parts) = input_parts(plan, &inputs, values) else {
            // Stored inputs are never removed while the request runs: an engine bug, or keys
            // written by something else. Retrying would find the same.
            let failure = Failure::Codec(format!(
                "the stored inputs of `{}` are incomplete",
                plan.name_of(&instance)
            ));
            self.fail_for_good(flow, delivery, Some(&instance), started, &failure)
                .await?;
            return Ok(Vec::new());
        };
        let ctx = Context::new(
            plan.flow(),
            request.clone(),
            plan.name_of(&instance),
            started,
            CancellationToken::new(),
        );
        // The vertex's span continues the trace its entry carried (the span that enqueued it,
        // maybe in another process); the instances it enqueues carry this span's context.
        let span = exec::vertex_span(plan.vertex(instance.vertex()), &ctx);
        span.record("worker", self.consumer.as_str());
        span.record("version", flow.hash.as_str());
        crate::trace::set_parent(&span, &traceparent);
        let result = self
            .run_attempt(flow, delivery, &instance, &parts, ctx, span.clone())
            .await;
        let handed_on = crate::trace::hand_on(&span, Some(&traceparent));
        let failure = match result {
            Some(Ok(output)) => match plan.advance(&instance, output.clone()) {
                Ok(advance) => {
                    let done = Done {
                        request: &request,
                        instance: &instance,
                        output,
                        traceparent: handed_on,
                    };
                    // The entry may carry successors on rather than be acknowledged: its
                    // lease is renewed meanwhile, as for any entry this worker holds.
                    let _held = self.hold(delivery);
                    let ahead = self.run_ahead(flow, delivery, &done, started, &advance, permit);
                    return match ahead.await {
                        Ok(handed) => Ok(handed),
                        Err(permit) => self.complete(flow, delivery, done, advance, permit).await,
                    };
                }
                // A conditional's output or a for-each's collection the plan cannot read: the
                // same bytes would not decode on a retry either.
                Err(error) => error,
            },
            Some(Err(failure)) => failure,
            // Cancelled: its request has ended.
            None => {
                self.abandon(flow, delivery).await?;
                return Ok(Vec::new());
            }
        };
        let at = Failed {
            request: &delivery.request,
            instance: Some(&instance),
            attempts: started,
        };
        // The lifecycle's retry policy, counting recorded failures (lost deliveries are not).
        let vertex = plan.vertex(instance.vertex());
        let due = match lifecycle::retry(vertex.options(), &failure, failed + 1) {
            Retry::After(backoff) => Some(now_ms().saturating_add(millis(backoff))),
            Retry::GiveUp => None,
        };
        self.fail(flow, delivery, at, &failure, due).await?;
        Ok(Vec::new())
    }

    /// Runs the attempt with the request's cancellation (the stop listener cancels it when
    /// its request ends); `None` if it was cancelled. An attempt that runs at once, or in an
    /// unrecorded run (see `run`), records its start once it runs long, so that the request's
    /// state shows it running meanwhile.
    async fn run_attempt(
        &self,
        flow: &Flow,
        delivery: &Delivery,
        instance: &Instance,
        parts: &[Bytes],
        ctx: Context,
        span: tracing::Span,
    ) -> Option<Result<Bytes, Failure>> {
        let request = ctx.request_id().clone();
        let cancel = ctx.cancellation();
        // Registered first, checked second: news of the request's end that came before the
        // registration is in `ended`, news that comes after cancels it through `running`. (An
        // instance handed off by a completion starts without a script to tell it.)
        let _running = self.register(
            delivery,
            Running {
                flow: delivery.flow,
                request,
                cancel: cancel.clone(),
            },
        );
        if self.has_ended(delivery.flow, &delivery.request) {
            return None;
        }
        let vertex = flow.plan.vertex(instance.vertex());
        let mut attempt = std::pin::pin!(exec::attempt_in(span, vertex, parts, ctx));
        // Once its script is sent, the recording of the start is seen through (by the arms
        // below too): dropped midway, it might have been recorded unbeknown to this worker.
        let sent = std::sync::atomic::AtomicBool::new(false);
        let long = async {
            tokio::time::sleep(RUNS_LONG).await;
            sent.store(true, std::sync::atomic::Ordering::Relaxed);
            self.began(flow, delivery).await
        };
        let mut long = std::pin::pin!(long);
        let mut recorded = delivery.at_once.is_none() && delivery.run.is_none();
        loop {
            tokio::select! {
                result = &mut attempt => {
                    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
                    // Its run dropped: nothing of it is this worker's now.
                    if !recorded && sent && matches!((&mut long).await, Ok(false)) {
                        return None;
                    }
                    return Some(result);
                }
                () = cancel.cancelled() => {
                    if !recorded && sent.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = (&mut long).await;
                    }
                    return None;
                }
                began = &mut long, if !recorded => {
                    recorded = true;
                    match began {
                        Ok(true) => {}
                        // Its unrecorded run was dropped: nothing of it is this worker's now.
                        Ok(false) => return None,
                        Err(error) => {
                            tracing::warn!(error = %crate::error::chain(&error), flow = delivery.flow, request = delivery.request, instance = delivery.instance, "recording the start of a running attempt failed");
                        }
                    }
                }
            }
        }
    }

    /// Gives back `slot` and waits for this instance's turn to run alone, then for every slot
    /// of the worker (the one it runs in goes into `slot`); meanwhile its lease is renewed.
    /// Its slot goes back first, so that two instances waiting to run alone never hold one
    /// each while they wait for all.
    async fn take_every_slot(
        &self,
        delivery: &Delivery,
        slot: &mut Option<OwnedSemaphorePermit>,
    ) -> Alone {
        drop(slot.take());
        let _held = self.hold(delivery);
        tracing::info!(
            flow = delivery.flow,
            request = delivery.request,
            instance = delivery.instance,
            "running a vertex alone: it was running when its worker died"
        );
        let turn = Arc::clone(&self.alone).lock_owned().await;
        let mut every = Arc::clone(&self.slots)
            .acquire_many_owned(self.concurrency)
            .await
            .expect("never closed");
        *slot = every.split(1);
        Alone {
            _turn: turn,
            _slots: every,
        }
    }

    /// Records a failure that no retry can fix: the instance, and with it the request, fail.
    async fn fail_for_good(
        &self,
        flow: &Flow,
        delivery: &Delivery,
        instance: Option<&Instance>,
        attempts: u32,
        failure: &Failure,
    ) -> Result<(), RedisError> {
        let at = Failed {
            request: &delivery.request,
            instance,
            attempts,
        };
        self.fail(flow, delivery, at, failure, None).await
    }
}

/// How long an attempt that runs at once (see `Delivery::at_once`) runs before it records its
/// start on its own instead of with its end.
const RUNS_LONG: std::time::Duration = std::time::Duration::from_millis(50);

/// How many times in a row a delivered entry may turn out to have been handed on while it is
/// started (see [`Worker::drive`]).
const MOST_MOVES: usize = 4;

/// A delivered entry that is to run: what it is, which attempt, and its inputs' values.
pub(super) struct Begun {
    request: RequestId,
    instance: Instance,
    inputs: Inputs,
    /// Attempts started, this one included.
    started: u32,
    /// Attempts that ended in a recorded failure.
    failed: u32,
    traceparent: String,
    values: Vec<Option<Bytes>>,
    /// What it holds to run alone, if it does.
    alone: Option<Alone>,
}

/// What an instance running alone holds while its attempt runs: its turn, and every slot of
/// the worker but the one it runs in.
pub(super) struct Alone {
    _turn: OwnedMutexGuard<()>,
    _slots: OwnedSemaphorePermit,
}

/// The input parts of an instance from the values the start script read (`None` for a missing
/// one): every slot's value; the first present one; or a gather's items framed as one sequence
/// (the start script reads their number first). `None` if a value the instance needs is
/// missing.
fn input_parts(plan: &Plan, inputs: &Inputs, values: Vec<Option<Bytes>>) -> Option<Vec<Bytes>> {
    match inputs {
        Inputs::Slots(slots) if values.len() == slots.len() => values.into_iter().collect(),
        Inputs::Slots(_) => None,
        Inputs::FirstOf(_) => values.into_iter().flatten().next().map(|part| vec![part]),
        Inputs::Gather { .. } => {
            let mut values = values.into_iter();
            let count: usize = std::str::from_utf8(&values.next()??).ok()?.parse().ok()?;
            let items = values.collect::<Option<Vec<Bytes>>>()?;
            (items.len() == count).then(|| vec![plan.frame(&items)])
        }
    }
}
