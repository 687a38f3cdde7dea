include!("../common.rs");

// No serde derives. The node is the exit of a workflow that `main` runs: one error, at the
// type in the signature, not one more for the workflow's output or for `main`.
pub struct Summary(String);

#[node]
async fn finish(profile: Profile) -> Summary {
    Summary(profile.0)
}

workflow! {
    pub Kyc = get_kyc_image -> [face_detect, face_match] => mark_profile -> finish;
}

#[tokio::main]
async fn main() {
    let summary = Kyc::run_local("alice".to_owned()).await.unwrap();
    println!("{}", summary.0);
}
