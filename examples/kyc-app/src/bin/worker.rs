//! A KYC worker process: runs the KYC workflows' vertices from Redis (`GOFLOW_REDIS_URL`, default
//! `redis://127.0.0.1:6379`). Start as many as you like, on as many hosts.
//!
//! ```sh
//! GOFLOW_REDIS_URL=redis://127.0.0.1:6379 cargo run --bin worker
//! ```

use std::process::ExitCode;

use goflow::service::{FlowService, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    goflow_kyc_app::init_logging();
    let mut settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::from(2);
        }
    };
    if settings.redis_url.is_none() {
        settings.redis_url = Some("redis://127.0.0.1:6379".to_owned());
    }
    match goflow_kyc_app::service(FlowService::new(settings))
        .start_worker()
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}
