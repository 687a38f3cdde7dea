//! The process's tracing subscriber, installed by [`FlowService`](super::FlowService) (the
//! library itself only emits spans): log lines on stderr filtered by `RUST_LOG` (default
//! `info`), plus, with the `otel` feature and an OTLP endpoint, every span exported over
//! OTLP/HTTP (the modern replacement for Go goflow's Jaeger `OpenTraceUrl`). Sampling follows
//! the standard `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`; the service name
//! `OTEL_SERVICE_NAME` (default `goflow`).

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// Keeps the exporter alive; dropping it flushes the spans not yet exported.
#[must_use = "dropping the guard shuts the exporter down"]
#[derive(Debug)]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the subscriber unless the process has one already (then returns `None`: the
/// application's own subscriber stays in charge). `otlp_endpoint` is the collector's base URL
/// (`http://localhost:4318`); spans go to `{endpoint}/v1/traces`.
pub fn install(otlp_endpoint: Option<&str>) -> Option<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter).with(logs);
    #[cfg(feature = "otel")]
    {
        let provider = otlp_endpoint.and_then(|endpoint| match tracer_provider(endpoint) {
            Ok(provider) => Some(provider),
            Err(error) => {
                // No subscriber yet to report it: this is the one place a library prints.
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("goflow: OTLP export to {endpoint} disabled: {error}");
                }
                None
            }
        });
        let layer = provider.as_ref().map(|provider| {
            use opentelemetry::trace::TracerProvider as _;
            tracing_opentelemetry::layer().with_tracer(provider.tracer("goflow"))
        });
        registry.with(layer).try_init().ok()?;
        if let Some(endpoint) = otlp_endpoint {
            tracing::info!(
                endpoint,
                exporting = provider.is_some(),
                "OTLP trace export"
            );
        }
        Some(Telemetry { provider })
    }
    #[cfg(not(feature = "otel"))]
    {
        registry.try_init().ok()?;
        if let Some(endpoint) = otlp_endpoint {
            tracing::warn!(
                endpoint,
                "OTLP endpoint set, but goflow was built without the `otel` feature"
            );
        }
        Some(Telemetry {})
    }
}

#[cfg(feature = "otel")]
fn tracer_provider(
    endpoint: &str,
) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let endpoint = endpoint.trim_end_matches('/');
    let url = if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "goflow".to_owned());
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build())
}
