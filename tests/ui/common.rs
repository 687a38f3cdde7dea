// Shared nodes for the UI cases (included with `include!`, so each case stays one file to read).
use goflow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
pub struct Image(pub String);
#[derive(Clone, Serialize, Deserialize)]
pub struct Detection(pub bool);
#[derive(Clone, Serialize, Deserialize)]
pub struct Match(pub f64);
#[derive(Clone, Serialize, Deserialize)]
pub struct Profile(pub String);

#[node]
async fn get_kyc_image(user: String) -> Image {
    Image(user)
}
#[node]
async fn face_detect(image: Image) -> Detection {
    Detection(!image.0.is_empty())
}
#[node]
async fn face_match(image: Image) -> Match {
    Match(image.0.len() as f64)
}
#[node]
async fn mark_profile(detect: Detection, matched: Match) -> Profile {
    Profile(format!("{} {}", detect.0, matched.0))
}
#[node]
async fn a(x: u32) -> u32 {
    x + 1
}
#[node]
async fn b(x: u32) -> u32 {
    x * 2
}
#[node]
async fn c(x: u32) -> u32 {
    x + 3
}
#[node]
async fn d(x: u32) -> u32 {
    x
}
