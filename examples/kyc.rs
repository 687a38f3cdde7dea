//! A linear KYC ("know your customer") workflow: each vertex takes the previous one's output.
//!
//! ```text
//! get_kyc_image -> face_detect -> face_match -> mark_profile
//! ```
//!
//! It shows typed payloads between vertices, node options (`retries`, `timeout`), a node that
//! takes a [`Context`] (request id, attempt number), a transient failure that the retry
//! absorbs, and the three ways to write a node's return type (`Result<T, NodeError>`,
//! `Result<T, E>` for any `std::error::Error`, or a plain `T`).
//!
//! ```sh
//! cargo run --example kyc
//! ```

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use goflow::prelude::*;
use goflow::{EmbeddedEngine, Engine, RequestId};
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
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// What face detection found in an image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detection {
    /// Whose image was examined.
    pub user_id: String,
    /// The image examined.
    pub url: String,
    /// How many faces were found.
    pub faces: u32,
    /// The detector's confidence, from 0 to 1.
    pub confidence: f64,
}

/// How well the detected face matches the user's identity document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Match {
    /// Whose face was matched.
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

/// Loads the user's KYC image. Any `std::error::Error` works as the error type: it converts
/// into the node error (and is retried if the node has retries).
#[node]
async fn get_kyc_image(request: KycRequest) -> Result<Image, io::Error> {
    match request.user_id.as_str() {
        "alice" | "bob" => Ok(Image {
            url: format!("s3://kyc-images/{}.jpg", request.user_id),
            user_id: request.user_id,
            width: 1024,
            height: 768,
        }),
        other => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no KYC image for user `{other}`"),
        )),
    }
}

/// Finds faces in the image. The `Context` parameter (anywhere in the parameter list) gives
/// the request id, the vertex, the attempt number and a cancellation signal.
#[node(retries = 2, timeout = "5s")]
async fn face_detect(ctx: Context, image: Image) -> Result<Detection, NodeError> {
    println!(
        "  face_detect: request {} (vertex `{}`, attempt {})",
        ctx.request_id(),
        ctx.vertex(),
        ctx.attempt()
    );
    if image.width < 200 || image.height < 200 {
        // Retrying cannot make the image larger: fail at once, whatever `retries` says.
        return Err(NodeError::permanent("image too small to detect a face"));
    }
    Ok(Detection {
        user_id: image.user_id,
        url: image.url,
        faces: 1,
        confidence: 0.99,
    })
}

/// Set once the simulated matching service has had its hiccup.
static MATCHER_WARMED_UP: AtomicBool = AtomicBool::new(false);

/// Matches the detected face against the user's identity document. The matching service fails
/// the very first call, to show a retry at work.
#[node(retries = 2, timeout = "5s", backoff = "50ms")]
async fn face_match(ctx: Context, detection: Detection) -> Result<Match, NodeError> {
    if !MATCHER_WARMED_UP.swap(true, Ordering::SeqCst) {
        println!("  face_match: attempt {} failed, will retry", ctx.attempt());
        return Err(NodeError::new("matching service unavailable"));
    }
    println!("  face_match: attempt {} succeeded", ctx.attempt());
    let score = if detection.user_id == "alice" {
        0.97
    } else {
        0.42
    };
    Ok(Match {
        user_id: detection.user_id,
        score: score * detection.confidence,
    })
}

/// Marks the profile. A node that cannot fail returns its output directly.
#[node]
async fn mark_profile(matched: Match) -> Profile {
    let kyc_verified = matched.score >= 0.9;
    Profile {
        reason: format!(
            "face match score {:.2} is {} the 0.90 threshold",
            matched.score,
            if kyc_verified { "above" } else { "below" }
        ),
        user_id: matched.user_id,
        kyc_verified,
    }
}

workflow! {
    /// Verifies a user's identity, one step after the other.
    pub Kyc = get_kyc_image -> face_detect -> face_match -> mark_profile;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The quickest way to run a request: the embedded engine, a generated request id.
    println!("running `{}` for alice", Kyc::NAME);
    let alice = Kyc::run_local(KycRequest {
        user_id: "alice".into(),
    })
    .await?;
    println!("result: {alice:#?}\n");

    // An engine value runs many requests, and takes a client-chosen (validated) request id.
    let engine = EmbeddedEngine::new();
    println!("running `{}` for bob as request `kyc-bob-0001`", Kyc::NAME);
    let bob = engine
        .run_as::<Kyc>(
            RequestId::parse("kyc-bob-0001")?,
            KycRequest {
                user_id: "bob".into(),
            },
        )
        .await?;
    println!("result: {bob:#?}");
    Ok(())
}
