//! The KYC service: HTTP routes and workers. Without `GOFLOW_REDIS_URL` it runs the embedded
//! engine in this process; with it, it runs on Redis beside any `worker` processes.
//!
//! ```sh
//! cargo run --bin kyc
//! curl -d '{"user_id":"alice"}' 'localhost:8080/flow/kyc?wait=5'
//! ```

use std::process::ExitCode;

use goflow::service::FlowService;

#[tokio::main]
async fn main() -> ExitCode {
    let service = match FlowService::from_env() {
        // Logs on stderr (`RUST_LOG`), spans over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`), and the
        // Prometheus metrics of `GET /metrics`, installed as the service starts.
        Ok(service) => service.with_telemetry(),
        Err(error) => return goflow_kyc_app::exit_with(&error),
    };
    match goflow_kyc_app::service(service).start().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => goflow_kyc_app::exit_with(&error),
    }
}
