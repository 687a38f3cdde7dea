//! The submitted requests of one embedded engine, by workflow and id and in the order they were
//! created (for listing), and their eviction once they have been finished for the retention, or
//! when more are finished than it keeps.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::events::EventLog;
use super::tracked::Tracked;
use super::ShuttingDown;
use crate::engine::Submitted;
use crate::listing::{
    DeadLetter, DeadLetterId, DeadLetterPage, RequestPage, RequestQuery, StatusCounts,
    DEAD_LETTERS_KEPT,
};
use crate::plan::Plan;
use crate::request::RequestFailure;
use crate::request_id::RequestId;
use crate::sync::lock;

/// The requests of one engine.
pub(super) struct Registry {
    retention: Duration,
    retained: usize,
    requests: Mutex<Requests>,
    dead: Mutex<DeadLetters>,
    /// The events of every workflow.
    pub(super) events: EventLog,
    /// How many requests have not ended yet (their finish hooks included).
    active: watch::Sender<usize>,
    /// Whether the timer that evicts finished requests runs.
    sweeping: std::sync::OnceLock<()>,
}

#[derive(Default)]
struct Requests {
    /// Whether the engine has been closed: it creates no request any more.
    closed: bool,
    /// By workflow: a lookup is two hash probes with borrowed keys, whatever the number of
    /// requests kept.
    by_flow: HashMap<&'static str, FlowRequests>,
    /// Finished requests, oldest first, each with the number of retries it had when it ended
    /// (one retried since has ended again, later, or runs: this end no longer evicts it).
    finished: VecDeque<(Instant, &'static str, RequestId, u32)>,
}

/// The dead letters of every workflow, under a lock of their own: a request writes its own
/// under its state's lock (see `Tracked::finish`), which the requests' lock is never taken
/// under.
#[derive(Default)]
struct DeadLetters {
    /// By workflow, oldest first; at most [`DEAD_LETTERS_KEPT`] each.
    by_flow: HashMap<&'static str, VecDeque<DeadLetter>>,
    /// The id of the newest, of any workflow.
    last: Option<DeadLetterId>,
}

/// The requests of one workflow.
#[derive(Default)]
struct FlowRequests {
    by_id: HashMap<RequestId, Arc<Tracked>>,
    /// `(created at, id)` of each: the list's order, newest last.
    by_age: BTreeSet<(u64, RequestId)>,
}

impl FlowRequests {
    fn insert(&mut self, tracked: Arc<Tracked>, id: &RequestId) {
        self.by_age.insert((tracked.created_at_ms(), id.clone()));
        self.by_id.insert(id.clone(), tracked);
    }

    fn remove(&mut self, id: &RequestId) {
        if let Some(tracked) = self.by_id.remove(id) {
            self.by_age.remove(&(tracked.created_at_ms(), id.clone()));
        }
    }

    /// The requests `query` selects, newest first, up to one more than a page. Walks the
    /// requests from the cursor (or the newest) on: a page of a status that few requests
    /// have may walk all of them, bounded by the number kept.
    fn page(&self, query: &RequestQuery) -> RequestPage {
        let until = query.until_ms.unwrap_or(u64::MAX);
        let newest = match &query.cursor {
            Some(cursor) if cursor.created_at_ms() < until => self
                .by_age
                .range(..(cursor.created_at_ms(), cursor.request_id().clone())),
            Some(_) | None => self.by_age.range(..(until, RequestId::before_all())),
        };
        let since = query.since_ms.unwrap_or(0);
        let selected = newest
            .rev()
            .take_while(|(created, _)| *created >= since)
            .filter_map(|(_, id)| self.by_id.get(id))
            .map(|tracked| tracked.summary())
            .filter(|summary| query.selects(summary.status, summary.created_at_ms));
        RequestPage::of(query, selected)
    }

    /// How many of those created from `since_ms` (every one kept, when `None`) are in each
    /// status.
    fn counts(&self, since_ms: Option<u64>) -> StatusCounts {
        let mut counts = StatusCounts::default();
        let since = (since_ms.unwrap_or(0), RequestId::before_all());
        for (_, id) in self.by_age.range(since..) {
            if let Some(tracked) = self.by_id.get(id) {
                counts.add(tracked.status(), 1);
            }
        }
        counts
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let requests = lock(&self.requests);
        let kept: usize = requests.by_flow.values().map(|f| f.by_id.len()).sum();
        f.debug_struct("Registry")
            .field("kept", &kept)
            .field("finished", &requests.finished.len())
            .field("retention", &self.retention)
            .finish()
    }
}

impl Registry {
    pub(super) fn new(retention: Duration, retained: usize) -> Self {
        Self {
            retention,
            retained,
            requests: Mutex::default(),
            dead: Mutex::default(),
            events: EventLog::default(),
            active: watch::channel(0).0,
            sweeping: std::sync::OnceLock::new(),
        }
    }

    /// Evicts finished requests on a timer too (every quarter of the retention, between 1 s
    /// and 1 min), so that an engine that goes quiet gives their memory back without waiting
    /// for its next call; started once, from within a runtime, by the first submission. The
    /// timer ends with the engine.
    pub(super) fn sweep_on_a_timer(self: &Arc<Self>) {
        self.sweeping.get_or_init(|| {
            let every = (self.retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
            let registry = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(registry) = registry.upgrade() else {
                        return;
                    };
                    registry.evict(&mut lock(&registry.requests));
                }
            });
        });
    }

    /// A new request `id` of `plan`'s workflow on `input`, unless one with that id is known
    /// (then `Ok(Err(_))`: what it was submitted with), or the engine is closed (`Err`).
    pub(super) fn create(
        &self,
        plan: &Plan,
        id: &RequestId,
        input: &Bytes,
    ) -> Result<Result<Arc<Tracked>, Submitted>, ShuttingDown> {
        let mut requests = lock(&self.requests);
        self.evict(&mut requests);
        let closed = requests.closed;
        let flow = requests.by_flow.entry(plan.flow()).or_default();
        if let Some(existing) = flow.by_id.get(id) {
            return Ok(Err(Submitted::Existed {
                same_input: existing.same_input(input),
            }));
        }
        if closed {
            return Err(ShuttingDown);
        }
        let events = self.events.flow(plan.flow());
        let tracked = Arc::new(Tracked::new(plan, id.clone(), input, events));
        flow.insert(Arc::clone(&tracked), id);
        // Under the lock, so that a close sees every request created before it.
        self.active.send_modify(|active| *active += 1);
        Ok(Ok(tracked))
    }

    /// Creates no request from now on.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(super) fn close(&self) {
        lock(&self.requests).closed = true;
    }

    /// How many requests created have not ended yet.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(super) fn active(&self) -> usize {
        *self.active.borrow()
    }

    /// Whether [`close`](Self::close) has been called.
    pub(super) fn is_closed(&self) -> bool {
        lock(&self.requests).closed
    }

    /// Waits until every request created has ended (and its finish hook has returned).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(super) async fn drained(&self) {
        let mut active = self.active.subscribe();
        // The sender lives as long as `self`: the wait ends only with the count at zero.
        let _ = active.wait_for(|active| *active == 0).await;
    }

    /// A finished request runs again (it is retried), unless the engine is closed: it counts
    /// as under way until it ends again.
    pub(super) fn rerun(&self) -> Result<(), ShuttingDown> {
        let requests = lock(&self.requests);
        if requests.closed {
            return Err(ShuttingDown);
        }
        // Under the lock, so that a close sees every request that runs.
        self.active.send_modify(|active| *active += 1);
        Ok(())
    }

    /// A request created has ended, and its finish hook has returned.
    pub(super) fn settled(&self) {
        self.active
            .send_modify(|active| *active = active.saturating_sub(1));
    }

    /// Request `id` of workflow `flow`, if kept.
    pub(super) fn get(&self, flow: &str, id: &RequestId) -> Option<Arc<Tracked>> {
        let mut requests = lock(&self.requests);
        self.evict(&mut requests);
        requests.by_flow.get(flow)?.by_id.get(id.as_str()).cloned()
    }

    /// A page of the requests of workflow `flow` that `query` selects, newest first.
    pub(super) fn list(&self, flow: &str, query: &RequestQuery) -> RequestPage {
        let mut requests = lock(&self.requests);
        self.evict(&mut requests);
        match requests.by_flow.get(flow) {
            Some(flow) => flow.page(query),
            None => RequestPage::of(query, []),
        }
    }

    /// How many requests of workflow `flow` created from `since_ms` (every one kept, when
    /// `None`) are in each status.
    pub(super) fn counts(&self, flow: &str, since_ms: Option<u64>) -> StatusCounts {
        let mut requests = lock(&self.requests);
        self.evict(&mut requests);
        requests
            .by_flow
            .get(flow)
            .map(|requests| requests.counts(since_ms))
            .unwrap_or_default()
    }

    /// Request `id` of workflow `flow` failed for good with `failure`: a dead letter.
    pub(super) fn dead_letter(&self, flow: &'static str, id: &RequestId, failure: &RequestFailure) {
        let mut dead = lock(&self.dead);
        let letter_id = DeadLetterId::next(dead.last, crate::time::now_ms());
        dead.last = Some(letter_id);
        let letters = dead.by_flow.entry(flow).or_default();
        if letters.len() == DEAD_LETTERS_KEPT {
            letters.pop_front();
        }
        letters.push_back(DeadLetter {
            id: letter_id,
            at_ms: letter_id.at_ms(),
            request_id: id.clone(),
            failure: failure.clone(),
        });
    }

    /// A page of at most `limit` dead letters of workflow `flow`, newest first, before
    /// `before`.
    pub(super) fn dead_letters(
        &self,
        flow: &str,
        limit: usize,
        before: Option<DeadLetterId>,
    ) -> DeadLetterPage {
        let dead = lock(&self.dead);
        let Some(letters) = dead.by_flow.get(flow) else {
            return DeadLetterPage::of(limit, []);
        };
        // Oldest first, so sorted by id: the page starts below `before`.
        let end = before.map_or(letters.len(), |before| {
            letters.partition_point(|letter| letter.id < before)
        });
        DeadLetterPage::of(limit, letters.range(..end).rev().cloned())
    }

    /// Request `id` of workflow `flow` has finished, after `runs` retries: it is kept for the
    /// retention from now.
    pub(super) fn finished(&self, flow: &'static str, id: RequestId, runs: u32) {
        let mut requests = lock(&self.requests);
        requests
            .finished
            .push_back((Instant::now(), flow, id, runs));
        self.evict(&mut requests);
    }

    /// Forgets the finished requests past the retention, and the oldest finished beyond the
    /// number kept. Amortized constant time: each request is evicted once.
    fn evict(&self, requests: &mut Requests) {
        while let Some((at, _, _, _)) = requests.finished.front() {
            if at.elapsed() < self.retention && requests.finished.len() <= self.retained {
                break;
            }
            if let Some((_, flow, id, runs)) = requests.finished.pop_front() {
                if let Some(flow) = requests.by_flow.get_mut(flow) {
                    // Not if it was retried since this end.
                    if flow.by_id.get(&id).is_some_and(|t| t.runs() == runs) {
                        flow.remove(&id);
                    }
                }
            }
        }
    }
}
