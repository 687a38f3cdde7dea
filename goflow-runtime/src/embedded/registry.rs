//! The submitted requests of one embedded engine, by workflow and id, and their eviction once
//! they have been finished for the retention, or when more are finished than it keeps.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::tracked::Tracked;
use super::ShuttingDown;
use crate::engine::Submitted;
use crate::plan::Plan;
use crate::request_id::RequestId;
use crate::sync::lock;

/// The requests of one engine.
pub(super) struct Registry {
    retention: Duration,
    retained: usize,
    requests: Mutex<Requests>,
    /// How many requests have not ended yet (their finish hooks included).
    active: watch::Sender<usize>,
    /// Whether the timer that evicts finished requests runs.
    sweeping: std::sync::OnceLock<()>,
}

#[derive(Default)]
struct Requests {
    /// Whether the engine has been closed: it creates no request any more.
    closed: bool,
    /// By workflow, then id: a lookup is two hash probes with borrowed keys, whatever the
    /// number of requests kept.
    by_flow: HashMap<&'static str, HashMap<RequestId, Arc<Tracked>>>,
    /// Finished requests, oldest first.
    finished: VecDeque<(Instant, &'static str, RequestId)>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let requests = lock(&self.requests);
        let kept: usize = requests.by_flow.values().map(HashMap::len).sum();
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
        input: &[u8],
    ) -> Result<Result<Arc<Tracked>, Submitted>, ShuttingDown> {
        let mut requests = lock(&self.requests);
        self.evict(&mut requests);
        let closed = requests.closed;
        let flow = requests.by_flow.entry(plan.flow()).or_default();
        if let Some(existing) = flow.get(id) {
            return Ok(Err(Submitted::Existed {
                same_input: existing.same_input(input),
            }));
        }
        if closed {
            return Err(ShuttingDown);
        }
        let tracked = Arc::new(Tracked::new(plan, id.clone(), input));
        flow.insert(id.clone(), Arc::clone(&tracked));
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

    /// A request created has ended, and its finish hook has returned.
    pub(super) fn settled(&self) {
        self.active
            .send_modify(|active| *active = active.saturating_sub(1));
    }

    /// Request `id` of workflow `flow`, if kept.
    pub(super) fn get(&self, flow: &str, id: &RequestId) -> Option<Arc<Tracked>> {
        let mut requests = lock(&self.requests);
        self.evict(&mut requests);
        requests.by_flow.get(flow)?.get(id.as_str()).cloned()
    }

    /// Request `id` of workflow `flow` has finished: it is kept for the retention from now.
    pub(super) fn finished(&self, flow: &'static str, id: RequestId) {
        let mut requests = lock(&self.requests);
        requests.finished.push_back((Instant::now(), flow, id));
        self.evict(&mut requests);
    }

    /// Forgets the finished requests past the retention, and the oldest finished beyond the
    /// number kept. Amortized constant time: each request is evicted once.
    fn evict(&self, requests: &mut Requests) {
        while let Some((at, _, _)) = requests.finished.front() {
            if at.elapsed() < self.retention && requests.finished.len() <= self.retained {
                break;
            }
            if let Some((_, flow, id)) = requests.finished.pop_front() {
                if let Some(by_id) = requests.by_flow.get_mut(flow) {
                    by_id.remove(&id);
                }
            }
        }
    }
}
