//! A fraud sweep over listed users: the Go original's `ForEachBranch`, typed.
//!
//! ```text
//! get_users -> each { verify_image -> mark_profile } => summarize
//! ```
//!
//! `get_users` returns a `Vec<User>`; the body runs once per user (in parallel, and on the
//! Redis engine spread across workers); `summarize` takes the `Vec<Profile>` of the body's
//! outputs, in the users' order, once the last one is done. An empty list gives `summarize` an
//! empty `Vec` at once; a user whose check fails fails the request with the item's index in
//! the vertex name (`verify_image[2]`), unless the node's retries recover it.
//!
//! ```sh
//! cargo run --example fraud_sweep
//! ```

use std::time::Duration;

use goflow::prelude::*;
use serde::{Deserialize, Serialize};

/// Which users to sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sweep {
    /// The region whose users are checked.
    pub region: String,
}

/// One listed user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// The user's id.
    pub user_id: String,
    /// Where the user's KYC image is stored.
    pub image_url: String,
}

/// What the image check found for one user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageCheck {
    /// The user.
    pub user_id: String,
    /// How likely the image is a forgery, from 0 to 1.
    pub forgery_score: f64,
}

/// A user's profile after the sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// The user.
    pub user_id: String,
    /// Whether the profile is flagged for fraud.
    pub flagged: bool,
}

/// The sweep's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Users checked.
    pub checked: usize,
    /// The flagged users, in list order.
    pub flagged: Vec<String>,
}

/// Lists the region's users (an empty region has none).
#[node]
async fn get_users(sweep: Sweep) -> Vec<User> {
    let count = if sweep.region == "eu" { 6 } else { 0 };
    (0..count)
        .map(|i| User {
            user_id: format!("{}-user-{i}", sweep.region),
            image_url: format!("s3://kyc-images/{}-{i}.jpg", sweep.region),
        })
        .collect()
}

/// Checks one user's image; items run in parallel.
#[node(retries = 2, timeout = "5s")]
async fn verify_image(ctx: Context, user: User) -> ImageCheck {
    // The vertex name carries the item: `verify_image[3]`.
    println!("  {} checks {}", ctx.vertex(), user.image_url);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let forgery_score = if user.user_id.ends_with('4') {
        0.93
    } else {
        0.05
    };
    ImageCheck {
        user_id: user.user_id,
        forgery_score,
    }
}

/// Flags the profile when the image looks forged.
#[node]
async fn mark_profile(check: ImageCheck) -> Profile {
    Profile {
        flagged: check.forgery_score > 0.9,
        user_id: check.user_id,
    }
}

/// Runs once, with every profile in list order.
#[node]
async fn summarize(profiles: Vec<Profile>) -> Summary {
    Summary {
        checked: profiles.len(),
        flagged: profiles
            .into_iter()
            .filter(|p| p.flagged)
            .map(|p| p.user_id)
            .collect(),
    }
}

workflow! {
    /// Checks every listed user's image for forgery and summarizes the flagged ones.
    pub FraudSweep = get_users -> each { verify_image -> mark_profile } => summarize;
}

#[tokio::main]
async fn main() -> Result<(), goflow::Error> {
    println!("{}", FraudSweep::graph().to_mermaid());
    for region in ["eu", "antarctica"] {
        println!("sweeping {region}");
        let summary = FraudSweep::run_local(Sweep {
            region: region.into(),
        })
        .await?;
        println!("  {summary:?}");
    }
    Ok(())
}
