//! The KYC workflows of Go goflow's seed examples, served by [`service`]:
//!
//! - `kyc`: `get_kyc_image -> [face_detect, face_match] => mark_profile` (branching, with an
//!   aggregator);
//! - `kyc_linear`: the same steps one after another;
//! - `onboarding`: KYC validation as a sub-workflow of a larger flow;
//! - `greet`: a single node;
//! - `slow_greet`: the same, taking 1.5 s (a request still running when the service is told
//!   to shut down, in the tests).
//!
//! [`rollout`] holds two builds of one more workflow, for the `rollout` binary's rolling
//! deploy.
//!
//! Every input is `{"user_id": "..."}` (or a name for `greet`). Users whose id starts with `a`
//! pass the face match; an empty id fails with a permanent error; `slow...` users take 2 s in
//! face detection, long enough to pause or stop them.

pub mod rollout;

use std::time::Duration;

use goflow::prelude::*;
use goflow::service::FlowService;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A KYC request.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct KycRequest {
    /// The user to verify.
    pub user_id: String,
}

/// The user's document image.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Image {
    /// Whose image.
    pub user_id: String,
    /// Where it is stored.
    pub url: String,
}

/// Faces found on the image.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Detection {
    /// Whose image.
    pub user_id: String,
    /// How many faces.
    pub faces: u32,
}

/// How well the face matches the user's selfie.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Match {
    /// Whose image.
    pub user_id: String,
    /// From 0 to 1.
    pub score: f64,
}

/// The verdict written to the user's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Profile {
    /// The user.
    pub user_id: String,
    /// Whether KYC passed.
    pub kyc_verified: bool,
    /// Why.
    pub reason: String,
}

/// Fetches the user's KYC image.
#[node(name = "get-kyc-image")]
pub async fn get_kyc_image(request: KycRequest) -> Result<Image, NodeError> {
    if request.user_id.trim().is_empty() {
        return Err(NodeError::permanent("`user_id` is empty"));
    }
    Ok(Image {
        url: format!("s3://kyc/{}.jpg", request.user_id),
        user_id: request.user_id,
    })
}

/// Finds faces on the image.
#[node(name = "face-detect", retries = 2, timeout = "10s", backoff = "100ms")]
pub async fn face_detect(image: Image) -> Detection {
    let work = if image.user_id.starts_with("slow") {
        2000
    } else {
        5
    };
    tokio::time::sleep(Duration::from_millis(work)).await;
    Detection {
        user_id: image.user_id,
        faces: 1,
    }
}

/// Matches the face with the user's selfie.
#[node(name = "face-match", retries = 2, timeout = "10s")]
pub async fn face_match(image: Image) -> Match {
    tokio::time::sleep(Duration::from_millis(5)).await;
    Match {
        score: if image.user_id.starts_with('a') {
            0.97
        } else {
            0.42
        },
        user_id: image.user_id,
    }
}

/// Joins both results into the verdict.
#[node(name = "mark-profile")]
pub async fn mark_profile(detection: Detection, matched: Match) -> Profile {
    let kyc_verified = detection.faces == 1 && matched.score > 0.9;
    Profile {
        reason: format!(
            "{} face(s), match score {:.2}",
            detection.faces, matched.score
        ),
        user_id: detection.user_id,
        kyc_verified,
    }
}

/// The linear flow's matcher takes the detection, not the image.
#[node(name = "face-match-after-detect")]
pub async fn match_detected(detection: Detection) -> Profile {
    let score = if detection.user_id.starts_with('a') {
        0.97
    } else {
        0.42
    };
    Profile {
        kyc_verified: detection.faces == 1 && score > 0.9,
        reason: format!("{} face(s), match score {score:.2}", detection.faces),
        user_id: detection.user_id,
    }
}

/// Normalises the request before validation.
#[node]
pub async fn normalise(request: KycRequest) -> KycRequest {
    KycRequest {
        user_id: request.user_id.trim().to_lowercase(),
    }
}

/// Records the verdict (a real service would write to a database here).
#[node]
pub async fn save_profile(ctx: Context, profile: Profile) -> Profile {
    tracing::info!(request = %ctx.request_id(), user = profile.user_id, verified = profile.kyc_verified, "profile saved");
    profile
}

/// Greets.
#[node]
pub async fn greet(name: String) -> String {
    format!("Hello {name}")
}

/// Greets after 1.5 s of work, and says so in the log when done.
#[node]
pub async fn slow_greet(ctx: Context, name: String) -> String {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tracing::info!(request = %ctx.request_id(), name, "slow greeting done");
    format!("Hello {name}, at last")
}

workflow! {
    /// Validates a user's KYC image and marks the profile (Go goflow's branching KYC).
    pub Kyc = get_kyc_image -> [face_detect, face_match] => mark_profile;
    /// The same, one step after another (Go goflow's linear KYC).
    pub KycLinear = get_kyc_image -> face_detect -> match_detected;
    /// Onboarding with KYC validation as a sub-workflow.
    pub Onboarding = normalise -> Kyc -> save_profile;
    /// A single node.
    pub Greet = greet;
    /// A single node that takes its time.
    pub SlowGreet = slow_greet;
}

/// `service` with the KYC workflows registered.
pub fn service(service: FlowService) -> FlowService {
    service
        .register::<Kyc>()
        .register::<KycLinear>()
        .register::<Onboarding>()
        .register::<Greet>()
        .register::<SlowGreet>()
}

/// The service of a process that works on Redis: the settings from the environment, Redis at
/// `redis://127.0.0.1:6379` unless `GOFLOW_REDIS_URL` says otherwise, and the telemetry (logs on
/// stderr, spans over OTLP with `OTEL_EXPORTER_OTLP_ENDPOINT`, Prometheus metrics with
/// `GOFLOW_METRICS_PORT`), installed as it starts.
pub fn on_redis_from_env() -> Result<FlowService, goflow::service::ServiceError> {
    let service = FlowService::from_env()?.with_telemetry();
    Ok(if service.settings().redis_url.is_none() {
        service.redis_url("redis://127.0.0.1:6379")
    } else {
        service
    })
}

/// Reports `error` with every cause in its chain (`the engine failed: the engine's storage
/// failed: ...`: the service's errors leave their causes to their sources), and gives the
/// exit code of a binary that could not start or serve: 1. The report is a log line when the
/// process has a subscriber (the service installs one as it starts, `with_telemetry`), and is
/// printed on stderr when it has none (an error before the service started, a bad setting).
pub fn exit_with(error: &(dyn std::error::Error + 'static)) -> std::process::ExitCode {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        cause = inner.source();
    }
    if tracing::dispatcher::has_been_set() {
        tracing::error!("{message}");
    } else {
        // Nothing would show a log line.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("error: {message}");
        }
    }
    std::process::ExitCode::FAILURE
}
