//! A workflow's graph as data: JSON, Mermaid, Graphviz DOT and the structural hash.
//!
//! Every workflow type has `graph()`, built from the `workflow!` declaration. The graph
//! serializes with serde (here to JSON), renders as Mermaid or DOT, and has a structural
//! hash that changes when, and only when, the shape changes (vertices, what they run, edges).
//!
//! The workflow below uses a braced body, a vertex reused under another name with `as`, and
//! a sub-workflow, so that each shows up in the output.
//!
//! ```sh
//! cargo run --example graph_export
//! ```

use goflow::graph::VertexKind;
use goflow::prelude::*;
use serde::{Deserialize, Serialize};

/// The selfie a user uploaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    /// Where the image is stored.
    pub url: String,
}

/// What face detection found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detection {
    /// How many faces were found.
    pub faces: u32,
    /// The detector's confidence, from 0 to 1.
    pub confidence: f64,
}

/// Loads a user's KYC image.
#[node]
async fn get_kyc_image(user_id: String) -> Image {
    Image {
        url: format!("s3://kyc-images/{user_id}.jpg"),
    }
}

/// Sharpens and normalises an image.
#[node(timeout = "2s")]
async fn enhance(image: Image) -> Image {
    Image {
        url: format!("{}?enhanced", image.url),
    }
}

/// Finds faces in an image.
#[node(retries = 3, timeout = "5s", backoff = "250ms")]
async fn face_detect(image: Image) -> Result<Detection, NodeError> {
    Ok(Detection {
        faces: 1,
        confidence: if image.url.ends_with("?enhanced") {
            0.99
        } else {
            0.8
        },
    })
}

/// Keeps the more confident of two detections.
#[node(name = "pick-best")]
async fn pick_best(original: Detection, enhanced: Detection) -> Detection {
    if enhanced.confidence > original.confidence {
        enhanced
    } else {
        original
    }
}

/// Whether the image passes.
#[node]
async fn verdict(detection: Detection) -> bool {
    detection.faces == 1 && detection.confidence > 0.9
}

workflow! {
    /// Detects faces in the image as uploaded and enhanced, and keeps the better result.
    pub Detect = {
        get_kyc_image -> [face_detect, enhance -> face_detect as detect_enhanced];
        [face_detect, detect_enhanced] => pick_best;
    };

    /// Runs `Detect` as a sub-workflow, then decides.
    pub Screening = Detect -> verdict;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let graph = Screening::graph();

    println!("== {} as JSON ==", Screening::NAME);
    println!("{}", serde_json::to_string_pretty(graph)?);

    println!("\n== {} as Mermaid ==", Detect::NAME);
    print!("{}", Detect::graph().to_mermaid());

    println!("\n== {} as DOT ==", Detect::NAME);
    print!("{}", Detect::graph().to_dot());

    println!("\n== vertices of {} ==", Detect::NAME);
    for vertex in Detect::graph().vertices() {
        match vertex.kind {
            VertexKind::Node { node, options } => println!(
                "{:<16} node `{node}`, retries {}, timeout {:?}, backoff {:?}",
                vertex.name, options.retries, options.timeout, options.backoff
            ),
            VertexKind::Flow { graph } => {
                println!("{:<16} sub-workflow `{}`", vertex.name, graph.name())
            }
        }
    }

    println!("\n== structural hashes ==");
    println!(
        "{:<10} {:016x}",
        Detect::NAME,
        Detect::graph().structural_hash()
    );
    println!("{:<10} {:016x}", Screening::NAME, graph.structural_hash());

    // The graph describes what runs; running it gives the same answer as calling the nodes.
    let passed = Screening::run_local("alice".to_owned()).await?;
    println!("\n{} for alice: {passed}", Screening::NAME);
    Ok(())
}
