//! The service's own counters, in the Prometheus text format on `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters kept by the HTTP layer.
pub(crate) struct Metrics {
    submitted: BTreeMap<&'static str, AtomicU64>,
}

impl Metrics {
    pub(crate) fn new(flows: impl IntoIterator<Item = &'static str>) -> Self {
        Self {
            submitted: flows.into_iter().map(|f| (f, AtomicU64::new(0))).collect(),
        }
    }

    /// A request was started through the API.
    pub(crate) fn started(&self, flow: &str) {
        if let Some(counter) = self.submitted.get(flow) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::from(
            "# HELP goflow_http_flows_started_total Requests started through this service's API.\n\
             # TYPE goflow_http_flows_started_total counter\n",
        );
        for (flow, count) in &self.submitted {
            let _ = writeln!(
                out,
                "goflow_http_flows_started_total{{flow=\"{flow}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        out
    }
}
