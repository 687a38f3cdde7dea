include!("../common.rs");

// The node is used in a workflow that `main` runs: still one error, at `fn`.
#[node]
fn finish(profile: Profile) -> String {
    profile.0
}

workflow! {
    pub Kyc = get_kyc_image -> [face_detect, face_match] => mark_profile -> finish;
}

#[tokio::main]
async fn main() {
    let name: String = Kyc::run_local("alice".to_owned()).await.unwrap();
    println!("{name}");
}
