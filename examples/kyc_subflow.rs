//! KYC validation as a sub-workflow: a whole workflow used as one vertex of another (Go
//! goflow's `dag.SubDag`).
//!
//! ```text
//! KycValidation = check_image -> [face_detect, face_match] => validation_report
//! Onboarding    = get_kyc_image -> KycValidation -> mark_profile
//! ```
//!
//! The outer workflow treats `KycValidation` like a node taking an `Image` and returning a
//! `Validation`; the compiler checks both edges. The example runs one request that succeeds,
//! prints the graph as Graphviz DOT, then runs one for a user without an identity document:
//! a node inside the sub-workflow fails, and the `goflow::Error` names the vertex by its path
//! (`KycValidation/face_match`).
//!
//! ```sh
//! cargo run --example kyc_subflow
//! ```

use goflow::prelude::*;
use serde::{Deserialize, Serialize};

/// A request to onboard one user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KycRequest {
    /// The user to onboard.
    pub user_id: String,
}

/// The selfie a user uploaded during onboarding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    /// Whose image this is.
    pub user_id: String,
    /// Where the image is stored.
    pub url: String,
    /// The image format.
    pub format: String,
}

/// What face detection found in the image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detection {
    /// How many faces were found.
    pub faces: u32,
}

/// How well the face in the image matches the user's identity document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Match {
    /// Whose document the face was compared with.
    pub user_id: String,
    /// The document the face was compared with.
    pub document: String,
    /// Similarity with the document photo, from 0 to 1.
    pub score: f64,
}

/// The outcome of the `KycValidation` sub-workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Validation {
    /// The user validated.
    pub user_id: String,
    /// Whether the image shows exactly one face that matches the document.
    pub passed: bool,
    /// The document the face was compared with.
    pub document: String,
}

/// The user's profile after onboarding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// The user.
    pub user_id: String,
    /// Whether the user passed KYC.
    pub kyc_verified: bool,
    /// The document the user was verified against.
    pub verified_with: Option<String>,
}

/// Loads the user's KYC image.
#[node]
async fn get_kyc_image(request: KycRequest) -> Result<Image, NodeError> {
    Ok(Image {
        url: format!("s3://kyc-images/{}.jpg", request.user_id),
        user_id: request.user_id,
        format: "jpeg".into(),
    })
}

/// The sub-workflow's entry: rejects images the models cannot read.
#[node]
async fn check_image(image: Image) -> Result<Image, NodeError> {
    match image.format.as_str() {
        "jpeg" | "png" => Ok(image),
        other => Err(NodeError::permanent(format!(
            "unsupported image format `{other}`"
        ))),
    }
}

/// Finds faces in the image.
#[node(retries = 2, timeout = "5s")]
async fn face_detect(image: Image) -> Result<Detection, NodeError> {
    Ok(Detection {
        faces: u32::from(!image.url.is_empty()),
    })
}

/// Compares the face with the identity document on file; fails for a user without one.
#[node(retries = 2, timeout = "5s")]
async fn face_match(image: Image) -> Result<Match, NodeError> {
    let (document, score) = match image.user_id.as_str() {
        "alice" => ("passport P-1234567", 0.97),
        "bob" => ("id card ID-7654321", 0.93),
        unknown => {
            // No retry can produce a document that does not exist.
            return Err(NodeError::permanent(format!(
                "no identity document on file for user `{unknown}`"
            )));
        }
    };
    Ok(Match {
        user_id: image.user_id,
        document: document.into(),
        score,
    })
}

/// Joins the two checks into the sub-workflow's output.
#[node]
async fn validation_report(detection: Detection, matched: Match) -> Validation {
    Validation {
        passed: detection.faces == 1 && matched.score >= 0.9,
        user_id: matched.user_id,
        document: matched.document,
    }
}

/// Records the outcome on the user's profile.
#[node]
async fn mark_profile(validation: Validation) -> Profile {
    Profile {
        verified_with: validation.passed.then_some(validation.document),
        kyc_verified: validation.passed,
        user_id: validation.user_id,
    }
}

workflow! {
    /// Checks that a KYC image shows one face matching the user's identity document.
    pub KycValidation = check_image -> [face_detect, face_match] => validation_report;

    /// Onboards a user: loads the image, validates it, marks the profile.
    pub Onboarding = get_kyc_image -> KycValidation -> mark_profile;
}

#[tokio::main]
async fn main() {
    let profile = Onboarding::run_local(KycRequest {
        user_id: "alice".into(),
    })
    .await;
    match profile {
        Ok(profile) => println!("alice onboarded: {profile:#?}\n"),
        Err(error) => println!("alice failed unexpectedly: {error}\n"),
    }

    println!("The `{}` workflow as Graphviz DOT:\n", Onboarding::NAME);
    println!("{}", Onboarding::graph().to_dot());

    // A user without an identity document: `face_match`, inside the sub-workflow, fails.
    match Onboarding::run_local(KycRequest {
        user_id: "mallory".into(),
    })
    .await
    {
        Ok(profile) => println!("mallory onboarded unexpectedly: {profile:?}"),
        Err(error) => {
            println!("mallory failed: {error}");
            if let goflow::Error::Failed {
                flow,
                request_id,
                failure,
            } = &error
            {
                println!("  flow:     {flow}");
                println!("  request:  {request_id}");
                println!("  vertex:   {}", failure.vertex);
                println!(
                    "  attempts: {} (the error is permanent, so `retries = 2` was not used)",
                    failure.attempts
                );
                println!("  failure:  {:?}", failure.failure);
            }
        }
    }
}
