//! `GET /metrics` in the Prometheus text format: the service's own counter, then everything
//! the engines emit through the `metrics` facade (see `crate::metrics`), recorded by a
//! Prometheus recorder that the first service of the process installs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counters kept by the HTTP layer, and the process's Prometheus recorder.
pub(crate) struct Metrics {
    submitted: BTreeMap<&'static str, AtomicU64>,
    recorder: Option<&'static PrometheusHandle>,
}

impl Metrics {
    pub(crate) fn new(flows: impl IntoIterator<Item = &'static str>) -> Self {
        Self {
            submitted: flows.into_iter().map(|f| (f, AtomicU64::new(0))).collect(),
            recorder: recorder(),
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
        if let Some(recorder) = self.recorder {
            out.push('\n');
            out.push_str(&recorder.render());
        }
        out
    }
}

/// The process's Prometheus recorder, installed as the global `metrics` recorder by the first
/// call and shared by every service after it (a process may build several, as tests do).
/// `None` when the application installed a recorder of its own first: the engines' metrics
/// then go to that one, and `/metrics` shows only the service's own counter.
pub(crate) fn recorder() -> Option<&'static PrometheusHandle> {
    static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    RECORDER
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(crate::metrics::VERTEX_DURATION.to_owned()),
                    crate::metrics::DURATION_BUCKETS,
                )
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    crate::metrics::describe();
                    // Without the exporter's own listener nothing else drains the histograms
                    // between scrapes.
                    let upkeep = handle.clone();
                    let spawned = std::thread::Builder::new()
                        .name("goflow-metrics-upkeep".to_owned())
                        .spawn(move || loop {
                            std::thread::sleep(Duration::from_secs(5));
                            upkeep.run_upkeep();
                        });
                    if let Err(error) = spawned {
                        tracing::warn!(%error, "could not start the metrics upkeep thread");
                    }
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(
                        %error,
                        "a metrics recorder is already installed: the engines' metrics go to it, \
                         and GET /metrics shows only the service's own counter"
                    );
                    None
                }
            }
        })
        .as_ref()
}
