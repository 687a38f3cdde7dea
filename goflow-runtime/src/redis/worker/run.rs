//! Running ahead: a completion whose successors all run on its output alone, on this worker,
//! is not recorded at once. The worker starts them here, as a hand-off would (on the same
//! entry, attempt 1, with the output as their input; those beyond its free slots wait here for
//! one, up to `hand_off_ahead` of them), and keeps what Redis
//! has not heard of in a [`Run`] that they share. The run is recorded in one call of the
//! completion script (see "Unrecorded runs" in `complete.lua`) when one of its attempts must
//! be recorded anyway: its completion cannot run ahead (a join, an exit, a for-each, more
//! successors than it may keep), it fails, it runs long (as an attempt that ran at once records its start), or the
//! run has gone on for [`RUN_AHEAD_FOR`] or [`RUN_AHEAD_MOST`] attempts. A chain of quick
//! vertices thus costs one script call instead of one per vertex.
//!
//! What Redis holds meanwhile is what it held before the run: the entry, held by this worker,
//! and its first instance running. A worker that dies loses the run: the entry is reclaimed
//! and the run's vertices run again from its first, as any attempt whose completion was not
//! recorded does. An entry that was reclaimed never runs ahead, so that a vertex that kills its
//! worker is recorded running before it runs again, and lost deliveries are charged to it (see
//! `attempt`). A request that ended meanwhile records nothing of the run: its attempts that
//! still run are dropped unrecorded, as is all of it when Redis has let another worker take
//! the entry since.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use super::record::{Done, Start};
use super::{Delivery, Handed, Worker};
use crate::codec::Codec;
use crate::plan::{Advance, Inputs, Need, Plan, Slot};
use crate::redis::protocol::fields;
use crate::redis::Flow;
use crate::time::now_ms;

/// How long a run may go on unrecorded (since its first completion) before the next completion
/// records it: what the request's state, its events and a pause may lag behind by.
const RUN_AHEAD_FOR: u64 = 50;

/// The most attempts a run may hold unrecorded: what one script call records at most.
const RUN_AHEAD_MOST: usize = 64;

/// A run, shared by the attempts it started.
pub(super) type SharedRun = Arc<tokio::sync::Mutex<RunState>>;

/// Where a run stands.
pub(super) enum RunState {
    /// Redis has not heard of these attempts.
    Unrecorded(Run),
    /// Recorded: Redis shows each of its attempts that still runs as running, carried by the
    /// entry; they are recorded as any handed-off attempt is.
    Recorded,
    /// Redis recorded none of it (its request ended, expired or migrated meanwhile, or another
    /// worker took the entry over): what still runs of it is dropped, unrecorded.
    Dropped,
}

impl RunState {
    /// Drops the run if Redis has not heard of it, and gives it back.
    pub(super) fn drop_unrecorded(&mut self) -> Option<Run> {
        match std::mem::replace(self, RunState::Dropped) {
            RunState::Unrecorded(run) => Some(run),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// The state of the run `delivery`'s attempt belongs to, locked (the run's other attempts
/// wait meanwhile); `None` if it belongs to none.
pub(super) async fn lock(delivery: &Delivery) -> Option<tokio::sync::MutexGuard<'_, RunState>> {
    match &delivery.run {
        Some(shared) => Some(shared.lock().await),
        None => None,
    }
}

/// Attempts this worker ran on an entry that Redis has not heard of.
pub(super) struct Run {
    /// The instance Redis shows the entry holding: the run's first, whose completion began it.
    pub(super) root: String,
    /// When `root` began, if it ran at once (its start is recorded with the run).
    pub(super) root_at_once: Option<u64>,
    /// When the run began (ms): when `root` ended.
    pub(super) since: u64,
    /// Each attempt after `root`: its instance, when it began (ms), and when it ended (ms;
    /// `None` while it runs).
    pub(super) ran: Vec<(String, u64, Option<u64>)>,
    /// What the attempts that ended store, field by field, in order.
    pub(super) store: Vec<(String, Bytes)>,
}

impl Run {
    /// The run's attempts after its root as the completion script takes them: instance, began,
    /// ended (`finishing`'s now, as its completion records it; empty while one runs).
    pub(super) fn attempts<'a>(
        &'a self,
        finishing: &'a str,
        now: u64,
    ) -> impl Iterator<Item = (&'a str, u64, Option<u64>)> + 'a {
        self.ran.iter().map(move |(instance, began, ended)| {
            let ended = if instance == finishing {
                Some(now)
            } else {
                *ended
            };
            (instance.as_str(), *began, ended)
        })
    }
}

impl<C: Codec> Worker<C> {
    /// Starts `done`'s successors here without recording its completion, if it may run ahead
    /// (see the module docs): returns them, each with its slot if a free one was left (the
    /// others wait for one). Else gives `permit` back, for the completion script. `started`
    /// counts the attempts of `done`'s instance.
    pub(super) async fn run_ahead(
        &self,
        flow: &Flow,
        delivery: &Delivery,
        done: &Done<'_>,
        started: u32,
        advance: &Advance,
        permit: OwnedSemaphorePermit,
    ) -> Result<Vec<Handed>, OwnedSemaphorePermit> {
        let config = &self.engine.inner.config;
        // Attempt 1 of an attempt 1's successor is its first ever: nothing ran before.
        let eligible = config.run_ahead
            && delivery.may_run_ahead
            && !delivery.alone
            && started == 1
            && !self.stopping.is_cancelled();
        let Some(inputs) = eligible
            .then(|| successors_inputs(&flow.plan, advance))
            .flatten()
        else {
            return Err(permit);
        };
        // A slot for each, as far as there are free ones; the others wait here for one, as
        // hand-offs beyond the free slots do (up to `hand_off_ahead` of them).
        let mut permits = vec![permit];
        while permits.len() < inputs.len() {
            match Arc::clone(&self.slots).try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        if inputs.len() - permits.len() > config.hand_off_ahead {
            return Err(permits.swap_remove(0));
        }
        let now = now_ms();
        let mut fresh = None;
        let mut guard = lock(delivery).await;
        let run = match guard.as_deref_mut() {
            Some(RunState::Unrecorded(run)) => {
                if now.saturating_sub(run.since) >= RUN_AHEAD_FOR
                    || run.ran.len() + inputs.len() > RUN_AHEAD_MOST
                {
                    return Err(permits.swap_remove(0));
                }
                if let Some(this) = run.ran.iter_mut().find(|(i, ..)| *i == delivery.instance) {
                    this.2 = Some(now);
                }
                run
            }
            Some(RunState::Dropped) => return Ok(Vec::new()),
            // Redis knows this attempt (a root's, or one a recorded run left running): a run
            // of its own begins here.
            Some(RunState::Recorded) | None => fresh.insert(Run {
                root: delivery.instance.clone(),
                root_at_once: delivery.at_once,
                since: now,
                ran: Vec::new(),
                store: Vec::new(),
            }),
        };
        run.store.extend(
            advance
                .store
                .iter()
                .map(|(slot, value)| (fields::slot(slot), value.clone())),
        );
        for (next, _) in &inputs {
            run.ran.push((next.clone(), now, None));
        }
        let shared = match fresh {
            Some(run) => Arc::new(tokio::sync::Mutex::new(RunState::Unrecorded(run))),
            None => Arc::clone(delivery.run.as_ref().expect("an unrecorded run is shared")),
        };
        drop(guard);
        let permits = permits
            .into_iter()
            .map(Some)
            .chain(std::iter::repeat_with(|| None));
        let handed = inputs
            .into_iter()
            .zip(permits)
            .map(|((next, values), permit)| {
                let start = Start::Run {
                    started: 1,
                    failed: 0,
                    traceparent: done.traceparent.clone(),
                    values,
                };
                let mut next = delivery.handed(next, &done.traceparent, start);
                next.run = Some(Arc::clone(&shared));
                (next, permit)
            });
        Ok(handed.collect())
    }
}

/// The successors `advance` sets going and their inputs' values, if they may run ahead: each
/// is ready now (one arrival) and takes its inputs from what this completion stores, and it
/// sets nothing else going (no exit, no for-each, no branch skipped).
fn successors_inputs(plan: &Plan, advance: &Advance) -> Option<Vec<(String, Vec<Option<Bytes>>)>> {
    if advance.completes
        || advance.arrivals.is_empty()
        || !advance.skipped.is_empty()
        || !advance.sizes.is_empty()
    {
        return None;
    }
    let stored = |slot: &Slot| {
        advance
            .store
            .iter()
            .find(|(stored, _)| stored == slot)
            .map(|(_, value)| Some(value.clone()))
    };
    advance
        .arrivals
        .iter()
        .map(|(next, need)| {
            let Inputs::Slots(slots) = plan.inputs_of(next) else {
                return None;
            };
            let values = matches!(need, Need::One)
                .then(|| slots.iter().map(stored).collect::<Option<Vec<_>>>())
                .flatten()?;
            Some((next.key(), values))
        })
        .collect()
}
