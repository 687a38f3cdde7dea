//! What nodes record of their runs, per request, for tests to count: shared by the suites
//! whose nodes record the same way (keyed by request id, so parallel tests and the two
//! variants of a conformance case never see each other's).

use std::sync::Mutex;

use goflow::{Context, RequestId};

/// Which node started, for which request: one entry per attempt started.
#[derive(Debug, Default)]
pub struct Runs(Mutex<Vec<(String, &'static str)>>);

impl Runs {
    pub const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    /// `node` starts an attempt for the request `ctx` belongs to.
    pub fn record(&self, ctx: &Context, node: &'static str) {
        self.0
            .lock()
            .unwrap()
            .push((ctx.request_id().as_str().to_owned(), node));
    }

    /// How many attempts of `node` started for request `id`.
    pub fn count(&self, id: &RequestId, node: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, n)| r == id.as_str() && *n == node)
            .count()
    }
}
