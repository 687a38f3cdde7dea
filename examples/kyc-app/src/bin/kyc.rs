//! The KYC service: HTTP routes and workers. Without `GOFLOW_REDIS_URL` it runs the embedded
//! engine in this process; with it, it runs on Redis beside any `worker` processes.
//!
//! ```sh
//! cargo run --bin kyc
//! curl -d '{"user_id":"alice"}' 'localhost:8080/flow/kyc?wait=5'
//! ```

use std::process::ExitCode;

use goflow::service::{FlowService, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    goflow_kyc_app::init_logging();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::from(2);
        }
    };
    match goflow_kyc_app::service(FlowService::new(settings))
        .start()
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}
