//! KYC validation with a typed pass/fail condition: the Go original's `ConditionalBranch`,
//! checked by the compiler.
//!
//! ```text
//! get_kyc_image -> face_detect -> check_face ? {
//!     Pass => face_match,
//!     Fail => create_review,
//! } -> generate_result
//! ```
//!
//! `check_face` returns an enum; each arm names a variant and runs with that variant's
//! payload. The arms must cover every variant (like `match`), and every arm must end in the
//! type `generate_result` takes, or the workflow does not compile. The arms not taken are
//! reported as `skipped` in the request's state. The example runs one passing and one failing
//! request and prints the graph as Mermaid.
//!
//! ```sh
//! cargo run --example kyc_condition
//! ```

use goflow::prelude::*;
use goflow::request::{RequestOutcome, VertexStatus};
use goflow::{EmbeddedEngine, Engine};
use serde::{Deserialize, Serialize};

/// A request to verify one user's identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KycRequest {
    /// The user to verify.
    pub user_id: String,
}

/// The selfie a user uploaded during onboarding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    /// Whose image this is.
    pub user_id: String,
    /// Where the image is stored.
    pub url: String,
}

/// What face detection found in an image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detection {
    /// Whose image was examined.
    pub user_id: String,
    /// How many faces were found.
    pub faces: u32,
}

/// The outcome of the face check: each variant carries what its arm needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FaceCheck {
    /// Exactly one face: go on to match it.
    Pass(Detection),
    /// No usable face: a person has to look at it.
    Fail(Rejection),
}

/// Why an image was rejected.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rejection {
    /// Whose image was rejected.
    pub user_id: String,
    /// Why.
    pub reason: String,
}

/// The verdict both arms end in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// The user.
    pub user_id: String,
    /// Whether the user is verified now.
    pub verified: bool,
    /// What happened, in words.
    pub note: String,
}

/// Loads the user's KYC image.
#[node]
async fn get_kyc_image(request: KycRequest) -> Image {
    Image {
        url: format!("s3://kyc-images/{}.jpg", request.user_id),
        user_id: request.user_id,
    }
}

/// Finds faces (here: "carol" uploaded a picture of her cat).
#[node(retries = 2, timeout = "5s")]
async fn face_detect(image: Image) -> Detection {
    let faces = if image.user_id == "carol" { 0 } else { 1 };
    Detection {
        user_id: image.user_id,
        faces,
    }
}

/// Decides which arm runs.
#[node]
async fn check_face(detection: Detection) -> FaceCheck {
    if detection.faces == 1 {
        FaceCheck::Pass(detection)
    } else {
        FaceCheck::Fail(Rejection {
            reason: format!("{} faces found, expected 1", detection.faces),
            user_id: detection.user_id,
        })
    }
}

/// The `Pass` arm: matches the face against the identity document.
#[node(retries = 2, backoff = "50ms")]
async fn face_match(detection: Detection) -> Verdict {
    Verdict {
        note: "face matches the identity document".into(),
        user_id: detection.user_id,
        verified: true,
    }
}

/// The `Fail` arm: opens a manual review.
#[node]
async fn create_review(rejection: Rejection) -> Verdict {
    Verdict {
        note: format!("sent to manual review: {}", rejection.reason),
        user_id: rejection.user_id,
        verified: false,
    }
}

/// Runs after whichever arm ran.
#[node]
async fn generate_result(verdict: Verdict) -> Verdict {
    println!(
        "  generate_result: {} verified = {}",
        verdict.user_id, verdict.verified
    );
    verdict
}

workflow! {
    /// Verifies a user's face, or sends the case to manual review.
    pub KycCheck = get_kyc_image -> face_detect -> check_face ? {
        Pass => face_match,
        Fail => create_review,
    } -> generate_result;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("{}", KycCheck::graph().to_mermaid());
    let engine = EmbeddedEngine::new();
    for user in ["alice", "carol"] {
        println!("checking {user}");
        let id = engine
            .submit::<KycCheck>(&KycRequest {
                user_id: user.into(),
            })
            .await?;
        let outcome = engine
            .wait::<KycCheck>(&id, std::time::Duration::from_secs(10))
            .await?;
        let verdict = match outcome {
            RequestOutcome::Completed(verdict) => verdict,
            other => return Err(format!("request `{id}` did not complete: {other:?}").into()),
        };
        let state = engine.status::<KycCheck>(&id).await?;
        let skipped: Vec<&str> = state
            .vertices
            .iter()
            .filter(|v| v.status == VertexStatus::Skipped)
            .map(|v| v.vertex.as_str())
            .collect();
        println!("  {:?}, skipped: {skipped:?}", state.status);
        println!("  result for {user}: {verdict:?}");
    }
    // The fast path, for a one-off run: no request is kept, only the result comes back.
    println!("checking dave (run_local)");
    let verdict = KycCheck::run_local(KycRequest {
        user_id: "dave".into(),
    })
    .await?;
    println!("  result for dave: {verdict:?}");
    Ok(())
}
