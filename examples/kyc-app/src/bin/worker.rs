//! A KYC worker process: runs the KYC workflows' vertices from Redis (`GOFLOW_REDIS_URL`, default
//! `redis://127.0.0.1:6379`). Start as many as you like, on as many hosts.
//!
//! ```sh
//! GOFLOW_REDIS_URL=redis://127.0.0.1:6379 cargo run --bin worker
//! ```

use std::process::ExitCode;

use goflow::service::FlowService;

#[tokio::main]
async fn main() -> ExitCode {
    let mut service = match FlowService::from_env() {
        // Logs on stderr (`RUST_LOG`), spans over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`), and,
        // with `GOFLOW_METRICS_PORT`, Prometheus metrics, installed as the worker starts.
        Ok(service) => service.with_telemetry(),
        Err(error) => return goflow_kyc_app::exit_with(&error),
    };
    if service.settings().redis_url.is_none() {
        service = service.redis_url("redis://127.0.0.1:6379");
    }
    match goflow_kyc_app::service(service).start_worker().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => goflow_kyc_app::exit_with(&error),
    }
}
