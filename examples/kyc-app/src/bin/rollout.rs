//! A rolling deploy of a changed workflow, by hand: the `rollout` workflow in one of its two
//! builds (`goflow_kyc_app::rollout`), chosen by `GOFLOW_ROLLOUT_VERSION` (`1` or `2`), as a
//! service with its worker (`GOFLOW_ROLLOUT_ROLE=serve`, the default), a worker only
//! (`worker`) or the HTTP service only (`api`). Needs Redis (`GOFLOW_REDIS_URL`, default
//! `redis://127.0.0.1:6379`).
//!
//! ```sh
//! GOFLOW_ROLLOUT_VERSION=1 cargo run --bin rollout &              # the old build, on :8080
//! curl -d '"slow-1"' localhost:8080/flow/rollout                  # under way for 8 s
//! kill %1                                                         # the old build stops
//! GOFLOW_ROLLOUT_VERSION=2 cargo run --bin rollout &              # the new one
//! curl localhost:8080/flow/rollout/requests/<id>                  # "waiting_for": "version …"
//! curl -d '"new"' 'localhost:8080/flow/rollout?wait=5'            # "v2:new+enriched"
//! curl -X POST localhost:8080/flow/rollout/requests/<id>/migrate  # 409: `finish` changed
//! GOFLOW_ROLLOUT_VERSION=1 GOFLOW_ROLLOUT_ROLE=worker cargo run --bin rollout   # the old
//! # request completes on its own graph: "v1:slow-1"
//! ```

use std::process::ExitCode;

use goflow_kyc_app::rollout;

#[tokio::main]
async fn main() -> ExitCode {
    let service = match goflow_kyc_app::on_redis_from_env() {
        Ok(service) => service,
        Err(error) => return goflow_kyc_app::exit_with(&error),
    };
    let version = std::env::var("GOFLOW_ROLLOUT_VERSION").unwrap_or_else(|_| "1".to_owned());
    let service = match version.trim() {
        "1" => service.register::<rollout::v1::Rollout>(),
        "2" => service.register::<rollout::v2::Rollout>(),
        other => {
            let error = std::io::Error::other(format!(
                "GOFLOW_ROLLOUT_VERSION={other:?}: expected `1` or `2`"
            ));
            return goflow_kyc_app::exit_with(&error);
        }
    };
    let role = std::env::var("GOFLOW_ROLLOUT_ROLE").unwrap_or_else(|_| "serve".to_owned());
    let run = match role.trim() {
        "serve" => service.start().await,
        "worker" => service.start_worker().await,
        "api" => service.start_server().await,
        other => {
            let error = std::io::Error::other(format!(
                "GOFLOW_ROLLOUT_ROLE={other:?}: expected `serve`, `worker` or `api`"
            ));
            return goflow_kyc_app::exit_with(&error);
        }
    };
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => goflow_kyc_app::exit_with(&error),
    }
}
