//! A KYC worker process: runs the KYC workflows' vertices from Redis (`GOFLOW_REDIS_URL`, default
//! `redis://127.0.0.1:6379`). Start as many as you like, on as many hosts.
//!
//! ```sh
//! GOFLOW_REDIS_URL=redis://127.0.0.1:6379 cargo run --bin worker
//! ```

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let service = match goflow_kyc_app::on_redis_from_env() {
        Ok(service) => service,
        Err(error) => return goflow_kyc_app::exit_with(&error),
    };
    match goflow_kyc_app::service(service).start_worker().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => goflow_kyc_app::exit_with(&error),
    }
}
