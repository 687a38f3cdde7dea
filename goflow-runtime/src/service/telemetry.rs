//! The process's telemetry, installed only when the application asks for it.
//!
//! The library itself only emits: `tracing` spans and events (`goflow.http`, `goflow.request`,
//! `goflow.vertex`, log lines) and metrics through the `metrics` facade. Neither goes anywhere
//! until the process has a subscriber and a recorder, and installing those is the
//! application's decision: they are process globals (one per process, first come first
//! served), and a library that sets them unasked takes that decision away from the program
//! (`tracing`'s docs: libraries should not call `set_global_default`). So nothing in goflow
//! installs anything process-wide unless it is asked to:
//!
//! - [`FlowService::with_telemetry`](super::FlowService::with_telemetry) asks its
//!   `start*()` to install, before the engine starts, the subscriber of [`install`] and the
//!   recorder of [`install_metrics_recorder`] (the latter when the service serves
//!   `GET /metrics`), to keep them for the service's life, and to flush the spans not yet
//!   exported when it shuts down (SIGTERM, Ctrl-C or its
//!   [`shutdown_token`](super::FlowService::shutdown_token)), within its shutdown grace. This
//!   is the one call a binary makes.
//! - [`install`] and [`install_metrics_recorder`] are the same, for an application that serves
//!   [`router()`](super::FlowService::router) itself, or wants the subscriber from its first
//!   line on. Keep the [`Telemetry`] guard alive as long as the program runs: dropping it
//!   flushes the spans not yet exported.
//! - Without either, `start*()` and `router()` install nothing, and `GET /metrics` shows the
//!   service's own counter (and a comment saying that no recorder is installed).
//!
//! What [`install`] installs, as a `tracing_subscriber` registry set as the global default:
//!
//! - log lines on stderr, filtered by `RUST_LOG` (an `EnvFilter`; default `info`), with ANSI
//!   colours only when stderr is a terminal (and `NO_COLOR` is not set);
//! - with the `otel` feature and an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, or
//!   [`FlowService::otlp_endpoint`](super::FlowService::otlp_endpoint)): every span, exported
//!   by a batch exporter over OTLP/HTTP (protobuf, plain HTTP) to `{endpoint}/v1/traces` (the
//!   modern replacement for Go goflow's Jaeger `OpenTraceUrl`). The service name is
//!   `OTEL_SERVICE_NAME` (default `goflow`); sampling follows the standard
//!   `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default `parentbased_always_on`), and
//!   batching the `OTEL_BSP_*` variables.
//!
//! An application that has a subscriber or recorder of its own keeps it: install it before the
//! service starts and leave `with_telemetry` off (if it is on anyway, goflow logs, through the
//! installed subscriber, that it installs none, and goes on). goflow's spans then go to that
//! subscriber: to export them, add `tracing_opentelemetry::layer()` with a tracer of your own to
//! it (the engines propagate the trace context through it). The engines' metrics go to the
//! application's recorder, and `GET /metrics` then shows only the service's own counter.

use std::io::IsTerminal as _;
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// What [`install`] installed. Keep it for as long as the program runs: dropping it flushes
/// the spans not yet exported and shuts the exporter down (the log lines go on: the subscriber
/// stays the process's).
#[must_use = "dropping the guard shuts the exporter down"]
#[derive(Debug)]
pub struct Telemetry {
    installed: bool,
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Whether [`install`] installed goflow's subscriber (`false`: the process had one
    /// already, which stays in charge).
    pub fn installed(&self) -> bool {
        self.installed
    }

    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        #[cfg(feature = "otel")]
        {
            self.provider.is_some()
        }
        #[cfg(not(feature = "otel"))]
        {
            false
        }
    }

    /// Exports the spans not yet exported and shuts the exporter down, waiting at most
    /// `timeout` (dropping the guard does the same, waiting at most 5 s). Blocks the calling
    /// thread: in async code, call it from `spawn_blocking`.
    pub fn shutdown(mut self, timeout: Duration) {
        self.shutdown_exporter(timeout);
    }

    #[cfg_attr(not(feature = "otel"), allow(clippy::unused_self))]
    fn shutdown_exporter(&mut self, timeout: Duration) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown_with_timeout(timeout) {
                tracing::warn!(%error, "spans not exported at shutdown");
            }
        }
        #[cfg(not(feature = "otel"))]
        let _ = timeout;
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown_exporter(Duration::from_secs(5));
    }
}

/// Installs goflow's subscriber (see the [module docs](self)) as the process's global default:
/// log lines on stderr filtered by `RUST_LOG`, and, when `otlp_endpoint` is given (the
/// collector's base URL, `http://localhost:4318`; spans go to `{endpoint}/v1/traces`) and the
/// `otel` feature is on, the OTLP exporter.
///
/// When the process has a subscriber already, it installs nothing, says so in a log line
/// through that subscriber, and returns a guard that [is not installed](Telemetry::installed):
/// the application's subscriber stays in charge. Never fails: an exporter that cannot be built
/// is logged, and the log lines go on without it.
pub fn install(otlp_endpoint: Option<&str>) -> Telemetry {
    let not_installed = Telemetry {
        installed: false,
        #[cfg(feature = "otel")]
        provider: None,
    };
    if tracing::dispatcher::has_been_set() {
        already_installed(otlp_endpoint);
        return not_installed;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colours = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colours);
    let registry = tracing_subscriber::registry().with(filter).with(logs);

    #[cfg(feature = "otel")]
    {
        let (provider, failed) = match otlp_endpoint.map(tracer_provider) {
            None => (None, None),
            Some(Ok(provider)) => (Some(provider), None),
            Some(Err(error)) => (None, Some(error)),
        };
        let layer = provider.as_ref().map(|provider| {
            use opentelemetry::trace::TracerProvider as _;
            tracing_opentelemetry::layer().with_tracer(provider.tracer("goflow"))
        });
        if let Err(error) = registry.with(layer).try_init() {
            not_set(&error, otlp_endpoint);
            if let Some(provider) = provider {
                let _ = provider.shutdown();
            }
            return not_installed;
        }
        if let Some(endpoint) = otlp_endpoint {
            match (&provider, failed) {
                (Some(_), _) => tracing::info!(
                    endpoint = traces_url(endpoint),
                    service = service_name(),
                    "exporting spans over OTLP/HTTP"
                ),
                (None, error) => tracing::error!(
                    endpoint,
                    error = error.map(|e| e.to_string()),
                    "spans are not exported: the OTLP exporter could not be built"
                ),
            }
        }
        Telemetry {
            installed: true,
            provider,
        }
    }
    #[cfg(not(feature = "otel"))]
    {
        if let Err(error) = registry.try_init() {
            not_set(&error, otlp_endpoint);
            return not_installed;
        }
        if let Some(endpoint) = otlp_endpoint {
            tracing::warn!(
                endpoint,
                "spans are not exported: goflow was built without its `otel` feature"
            );
        }
        Telemetry { installed: true }
    }
}

/// Installs the Prometheus recorder (`metrics-exporter-prometheus`, without a listener of its
/// own) as the process's global `metrics` recorder; every service of the process renders it on
/// `GET /metrics`, after its own counter. Returns whether goflow's recorder is the process's
/// (the first call installs it; later ones find it there).
///
/// When the application installed a recorder of its own first, it says so in a log line and
/// returns `false`: the engines' metrics go to the application's recorder, and `/metrics`
/// shows only the service's own counter.
pub fn install_metrics_recorder() -> bool {
    super::metrics::install().is_some()
}

/// The process had a subscriber before [`install`]: said through it.
fn already_installed(otlp_endpoint: Option<&str>) {
    match otlp_endpoint {
        None => tracing::warn!(
            "a tracing subscriber is installed already: goflow installs none, and its spans \
             and log lines go to that one"
        ),
        Some(endpoint) => tracing::warn!(
            endpoint,
            "a tracing subscriber is installed already: goflow installs none, its spans and log \
             lines go to that one, and goflow exports nothing to the OTLP endpoint (add \
             tracing_opentelemetry's layer to that subscriber to export)"
        ),
    }
}

/// `try_init` failed: another thread set a subscriber since we looked (then said through it),
/// or a `log` logger is installed (then nothing is listening: said on stderr).
fn not_set(error: &tracing_subscriber::util::TryInitError, otlp_endpoint: Option<&str>) {
    if tracing::dispatcher::has_been_set() {
        already_installed(otlp_endpoint);
    } else {
        // No subscriber to report it to: this is the one place the library prints.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("goflow: no log subscriber installed: {error}");
        }
    }
}

/// `{endpoint}/v1/traces`, unless the endpoint names the path already.
#[cfg(feature = "otel")]
fn traces_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    }
}

/// `OTEL_SERVICE_NAME`, default `goflow`.
#[cfg(feature = "otel")]
fn service_name() -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "goflow".to_owned())
}

#[cfg(feature = "otel")]
fn tracer_provider(
    endpoint: &str,
) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .build()?;
    // The builder's default configuration reads OTEL_TRACES_SAMPLER(_ARG); the batch
    // processor, OTEL_BSP_*.
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name())
                .build(),
        )
        .build())
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use super::traces_url;

    #[test]
    fn spans_go_to_the_traces_path_of_the_endpoint() {
        assert_eq!(
            traces_url("http://localhost:4318"),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://localhost:4318/"),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector/v1/traces"),
            "http://collector/v1/traces"
        );
    }
}
