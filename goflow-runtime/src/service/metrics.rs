//! `GET /metrics` in the Prometheus text format: the service's own counter, then everything
//! the engines emit through the `metrics` facade (see `crate::metrics`), when goflow's
//! Prometheus recorder is the process's (installed on request only: by a service started
//! `with_telemetry`, or by `telemetry::install_metrics_recorder`; never by a router). Without
//! it, a comment line says why the engines' metrics are missing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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
        out.push('\n');
        out.push_str(&render_recorder());
        out
    }
}

/// The engines' metrics, as the process's Prometheus recorder renders them, or, when goflow's
/// recorder is not the process's, a comment saying so (the page stays valid Prometheus text).
pub(crate) fn render_recorder() -> String {
    match RECORDER.get() {
        Some(Some(recorder)) => recorder.render(),
        Some(None) => "# The engines' metrics go to the application's own metrics recorder \
                       (installed before goflow's): they are not shown here.\n"
            .to_owned(),
        None => "# No metrics recorder is installed: the engines' metrics are not recorded \
                 (FlowService::with_telemetry, or goflow::service::telemetry::\
                 install_metrics_recorder, installs one).\n"
            .to_owned(),
    }
}

/// The process's Prometheus recorder, once [`install`]ed (`None`: another recorder was
/// installed first).
static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs a Prometheus recorder as the process's global `metrics` recorder (the first call
/// does; later ones share it, as a process may run several services, as tests do). `None`
/// when the application installed a recorder of its own first: the engines' metrics then go to
/// that one, and `/metrics` shows only the service's own counter.
pub(crate) fn install() -> Option<&'static PrometheusHandle> {
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
