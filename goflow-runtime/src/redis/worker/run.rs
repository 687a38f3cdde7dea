//! Running ahead: a completion whose successors all run on its output alone, on this worker,
//! is not recorded at once. The worker starts them here, as a hand-off would (on the same
//! entry, attempt 1, with the output as their input; those beyond its free slots wait here for
//! one, up to `hand_off_ahead` of them), and keeps what Redis has not heard of in a [`Run`]
//! that they share. A for-each's items start in it as well, and a join (or a for-each's
//! gather) whose arrivals all come in the run starts in it on their outputs: the first
//! arrivals wait in the run (a completion that has nothing else to start is kept in the run
//! while another attempt of it runs), the last starts it. The run is recorded in one call of
//! the completion script (see "Unrecorded runs" in `complete.lua`), its waiting arrivals
//! counted there, when one of its attempts must be recorded anyway: its completion cannot run
//! ahead (the exit, a conditional that skips an arm, a join or gather some of whose arrivals
//! Redis counted, more successors than it may keep), it fails, it runs long (as an attempt
//! that ran at once records its start), or the run has gone on for [`RUN_AHEAD_FOR`] or
//! [`RUN_AHEAD_MOST`] attempts. A chain of quick vertices, a diamond or a small for-each thus
//! costs one script call instead of one per vertex. With [`RunAhead::Checked`] the worker
//! reads the request's status before it starts anything, so that a pause or a stop
//! committed before holds it back as the completion script would.
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
use fred::interfaces::HashesInterface as _;
use tokio::sync::OwnedSemaphorePermit;

use super::record::{Done, Start};
use super::{Delivery, Handed, Worker};
use crate::codec::Codec;
use crate::lifecycle::{self, RequestStatus, VertexStatus};
use crate::plan::{Advance, Inputs, Instance, Need, Plan, Slot};
use crate::redis::protocol::{fields, REQ_STATUS};
use crate::redis::{Flow, RunAhead};
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
    /// Arrivals of its attempts at joins and gathers that still wait for others, one each: the
    /// recording counts them, before those of the completion it records with.
    pub(super) waiting: Vec<(Instance, Need)>,
    /// The number of items of each for-each its attempts ran, by gathering instance (also in
    /// `store`, as Redis keeps it).
    pub(super) sizes: Vec<(Instance, u32)>,
}

impl Run {
    /// `advance` with the run's waiting arrivals before its own: what the call that records
    /// the run counts. A gather's arrivals name the number the run stored as their need: Redis does not hold
    /// it before the call.
    pub(super) fn with_waiting(&self, mut advance: Advance) -> Advance {
        if !self.waiting.is_empty() {
            advance.arrivals.splice(0..0, self.waiting.iter().cloned());
        }
        for (next, need) in &mut advance.arrivals {
            if *need == Need::Size {
                if let Some((_, size)) = self.sizes.iter().find(|(g, _)| g == next) {
                    *need = Need::Count(*size);
                }
            }
        }
        advance
    }

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
    /// others wait for one). A completion whose only successors are joins still waiting for
    /// other attempts of its run is kept in the run too, and returns none. Else gives `permit`
    /// back, for the completion script. `started` counts the attempts of `done`'s instance.
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
        let eligible = config.run_ahead != RunAhead::Off
            && delivery.may_run_ahead
            && !delivery.alone
            && started == 1
            && !self.stopping.is_cancelled();
        if !eligible {
            return Err(permit);
        }
        let now = now_ms();
        let mut guard = lock(delivery).await;
        let current = match guard.as_deref() {
            Some(RunState::Unrecorded(run)) => Some(run),
            Some(RunState::Dropped) => return Ok(Vec::new()),
            // Redis knows this attempt (a root's, or one a recorded run left running): a run
            // of its own may begin here.
            Some(RunState::Recorded) | None => None,
        };
        let Some(ahead) = successors(&flow.plan, advance, current) else {
            return Err(permit);
        };
        let (since, ran) = current.map_or((now, 0), |run| (run.since, run.ran.len()));
        if now.saturating_sub(since) >= RUN_AHEAD_FOR || ran + ahead.start.len() > RUN_AHEAD_MOST {
            return Err(permit);
        }
        // Nothing to start: worth keeping in the run only while another attempt of it runs,
        // whose end records it.
        if ahead.start.is_empty()
            && !current.is_some_and(|run| {
                run.ran
                    .iter()
                    .any(|(i, _, ended)| ended.is_none() && *i != delivery.instance)
            })
        {
            return Err(permit);
        }
        // What starts here starts as a hand-off would, only while the request runs: a pause
        // or a stop committed before this read holds it back (the completion script then
        // parks or drops it), one committed after finds it started. (An arrival kept in the
        // run starts nothing: the call that records it parks what it makes ready.)
        if config.run_ahead == RunAhead::Checked
            && !ahead.start.is_empty()
            && !self.request_runs(flow, delivery).await
        {
            return Err(permit);
        }
        // A slot for each, as far as there are free ones; the others wait here for one, as
        // hand-offs beyond the free slots do (up to `hand_off_ahead` of them).
        let mut permits = vec![permit];
        while permits.len() < ahead.start.len() {
            match Arc::clone(&self.slots).try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        if ahead.start.len().saturating_sub(permits.len()) > config.hand_off_ahead {
            return Err(permits.swap_remove(0));
        }
        let mut fresh = None;
        let run = match guard.as_deref_mut() {
            Some(RunState::Unrecorded(run)) => {
                if let Some(this) = run.ran.iter_mut().find(|(i, ..)| *i == delivery.instance) {
                    this.2 = Some(now);
                }
                run
            }
            _ => fresh.insert(Run {
                root: delivery.instance.clone(),
                root_at_once: delivery.at_once,
                since: now,
                ran: Vec::new(),
                store: Vec::new(),
                waiting: Vec::new(),
                sizes: Vec::new(),
            }),
        };
        run.store.extend(
            advance
                .store
                .iter()
                .map(|(slot, value)| (fields::slot(slot), value.clone())),
        );
        run.store.extend(ahead.counted);
        run.store.extend(
            advance
                .sizes
                .iter()
                .map(|(gathering, size)| (fields::size(gathering), Bytes::from(size.to_string()))),
        );
        run.sizes.extend(advance.sizes.iter().cloned());
        // The joins that start here have had their arrivals; the others wait on.
        run.waiting
            .retain(|(waiting, _)| !ahead.start.iter().any(|(next, _)| *next == waiting.key()));
        run.waiting.extend(ahead.wait);
        for (next, _) in &ahead.start {
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
        let handed = ahead
            .start
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

impl<C: Codec> Worker<C> {
    /// Whether `delivery`'s request is running (or queued), as Redis has it now: what becomes
    /// ready in it is then queued, not parked, and it has not ended. `false` if Redis cannot
    /// tell (the completion script then decides).
    async fn request_runs(&self, flow: &Flow, delivery: &Delivery) -> bool {
        let key = delivery.keys(flow).request(&delivery.request);
        let status: Result<Option<String>, _> =
            self.engine.inner.client.hget(key, REQ_STATUS).await;
        let status = status
            .ok()
            .flatten()
            .and_then(|s| s.parse::<RequestStatus>().ok());
        status.is_some_and(|status| {
            !status.is_final() && lifecycle::on_ready(status) == VertexStatus::Queued
        })
    }
}

/// What a completion that may run ahead sets going.
#[derive(Default)]
struct Ahead {
    /// The successors to start here (instance key), with their inputs' values.
    start: Vec<(String, Vec<Option<Bytes>>)>,
    /// Its arrivals at joins that still wait for others: the run keeps them until it starts
    /// the join or is recorded.
    wait: Vec<(Instance, Need)>,
    /// The arrival count of each join that starts here, as its field and value, which the run
    /// records as a completion would have counted it.
    counted: Vec<(String, Bytes)>,
}

/// What `advance` sets going, if it may run ahead in `run` (the unrecorded run the completion
/// belongs to, if any): each successor takes its inputs from this completion's stores or the
/// run's, and is ready now (one arrival) or is a join or a for-each's gather whose every
/// arrival came in this run (else its arrival waits in the run); and the completion is not
/// the exit and skips no branch.
fn successors(plan: &Plan, advance: &Advance, run: Option<&Run>) -> Option<Ahead> {
    if advance.completes || advance.arrivals.is_empty() || !advance.skipped.is_empty() {
        return None;
    }
    let value = |slot: &Slot| {
        let stored = advance.store.iter().find(|(stored, _)| stored == slot);
        match stored {
            Some((_, value)) => Some(value.clone()),
            None => {
                let field = fields::slot(slot);
                let earlier = run?.store.iter().find(|(stored, _)| *stored == field);
                earlier.map(|(_, value)| value.clone())
            }
        }
    };
    // A gather's number of items, if this completion or the run stored it (else Redis has
    // it, and the gather is counted there).
    let size_of = |gathering: &Instance| {
        let sizes = advance
            .sizes
            .iter()
            .chain(run.map_or(&[][..], |run| &run.sizes[..]));
        sizes
            .clone()
            .find(|(g, _)| g == gathering)
            .map(|(_, size)| *size)
    };
    let mut ahead = Ahead::default();
    for (next, need) in &advance.arrivals {
        // Redis has counted none of the arrivals that all came in this run (each parent
        // completes once, and a run holds only first attempts of a request never retried);
        // one whose other arrivals Redis counted waits to be recorded.
        if *need != Need::One {
            let needed = need.arrivals(size_of(next))?;
            let earlier = run.map_or(0, |run| {
                run.waiting.iter().filter(|(i, _)| i == next).count()
            });
            if earlier + 1 < needed as usize {
                ahead.wait.push((next.clone(), *need));
                continue;
            }
            let counted = Bytes::from(needed.to_string());
            ahead.counted.push((fields::arrivals(next), counted));
        }
        let values = match plan.inputs_of(next) {
            Inputs::Slots(slots) => slots.iter().map(|slot| value(slot).map(Some)).collect(),
            // As the start script reads a gather's: the number of items, then each item's.
            Inputs::Gather { exit, items } => {
                let size = size_of(next)?;
                let count = Some(Some(Bytes::from(size.to_string())));
                let parts = (0..size).map(|n| value(&Inputs::gathered(exit, &items, n)).map(Some));
                std::iter::once(count).chain(parts).collect()
            }
            Inputs::FirstOf(_) => None,
        };
        ahead.start.push((next.key(), values?));
    }
    Some(ahead)
}
