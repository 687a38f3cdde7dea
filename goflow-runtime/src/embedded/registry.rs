//! The submitted requests of one embedded engine, by workflow and id, and their eviction once
//! they have been finished for the retention, or when more are finished than it keeps.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::tracked::Tracked;
use crate::plan::Plan;
use crate::request_id::RequestId;
use crate::sync::lock;

/// The requests of one engine.
pub(super) struct Registry {
    retention: Duration,
    retained: usize,
    requests: Mutex<Requests>,
}

#[derive(Default)]
struct Requests {
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
        }
    }

    /// A new request `id` of `plan`'s workflow, unless one with that id is known.
    pub(super) fn create(&self, plan: &Plan, id: &RequestId) -> Option<Arc<Tracked>> {
        let mut requests = lock(&self.requests);
        self.evict(&mut requests);
        let flow = requests.by_flow.entry(plan.flow()).or_default();
        if flow.contains_key(id) {
            return None;
        }
        let tracked = Arc::new(Tracked::new(plan, id.clone()));
        flow.insert(id.clone(), Arc::clone(&tracked));
        Some(tracked)
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
