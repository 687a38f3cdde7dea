//! KYC with parallel branches and an aggregator: the main goflow example.
//!
//! ```text
//! get_kyc_image -> [face_detect, face_match] => mark_profile
//! ```
//!
//! `face_detect` and `face_match` each take the image and run in parallel; `mark_profile`
//! takes both of their outputs as its two parameters, in that order (what Go goflow calls an
//! aggregator, with the types checked by the compiler instead of a `map[string][]byte`).
//! The example runs two requests and prints the graph as Mermaid.
//!
//! ```sh
//! cargo run --example kyc_branching
//! ```

use std::time::Duration;

use goflow::prelude::*;
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

/// What face detection found in the image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detection {
    /// How many faces were found.
    pub faces: u32,
    /// The detector's confidence, from 0 to 1.
    pub confidence: f64,
}

/// How well the face in the image matches the user's identity document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Match {
    /// Whose document the face was compared with.
    pub user_id: String,
    /// Similarity with the document photo, from 0 to 1.
    pub score: f64,
}

/// The user's profile after the KYC check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// The user.
    pub user_id: String,
    /// Whether the user passed KYC.
    pub kyc_verified: bool,
    /// Why, in words.
    pub reason: String,
}

/// Loads the user's KYC image.
#[node]
async fn get_kyc_image(request: KycRequest) -> Result<Image, NodeError> {
    Ok(Image {
        url: format!("s3://kyc-images/{}.jpg", request.user_id),
        user_id: request.user_id,
    })
}

/// Finds faces in the image (a slow model: it runs in parallel with `face_match`).
#[node(retries = 2, timeout = "5s")]
async fn face_detect(image: Image) -> Result<Detection, NodeError> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let faces = if image.user_id == "carol" { 2 } else { 1 };
    Ok(Detection {
        faces,
        confidence: 0.98,
    })
}

/// Compares the face with the user's identity document.
#[node(retries = 2, timeout = "5s")]
async fn face_match(image: Image) -> Result<Match, NodeError> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(Match {
        score: if image.user_id == "alice" { 0.97 } else { 0.35 },
        user_id: image.user_id,
    })
}

/// The aggregator: takes the outputs of both branches, as its parameters in branch order.
#[node]
async fn mark_profile(detection: Detection, matched: Match) -> Profile {
    let (kyc_verified, reason) = if detection.faces != 1 {
        (
            false,
            format!("expected one face, found {}", detection.faces),
        )
    } else if matched.score < 0.9 {
        (
            false,
            format!("face match score {:.2} < 0.90", matched.score),
        )
    } else {
        (
            true,
            format!(
                "one face (confidence {:.2}), match score {:.2}",
                detection.confidence, matched.score
            ),
        )
    };
    Profile {
        user_id: matched.user_id,
        kyc_verified,
        reason,
    }
}

workflow! {
    /// Validates a user's KYC image and marks the profile.
    pub Kyc = get_kyc_image -> [face_detect, face_match] => mark_profile;
}

#[tokio::main]
async fn main() -> Result<(), goflow::Error> {
    for user in ["alice", "carol"] {
        let profile = Kyc::run_local(KycRequest {
            user_id: user.into(),
        })
        .await?;
        println!(
            "{:<6} verified: {:<5} ({})",
            profile.user_id, profile.kyc_verified, profile.reason
        );
    }
    println!("\nThe `{}` workflow as Mermaid:\n", Kyc::NAME);
    print!("{}", Kyc::graph().to_mermaid());
    Ok(())
}
