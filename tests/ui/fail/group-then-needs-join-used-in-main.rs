include!("../common.rs");

// A workflow rejected for its shape, run by `main` and used by another workflow: one error.
workflow! {
    pub Kyc = get_kyc_image -> [face_detect, face_match] -> mark_profile;
    pub Named = Kyc -> profile_name;
}

#[node]
async fn profile_name(profile: Profile) -> String {
    profile.0
}

#[tokio::main]
async fn main() {
    let profile = Kyc::run_local("alice".to_owned()).await.unwrap();
    let name: String = Named::run_local("bob".to_owned()).await.unwrap();
    println!("{} {name}", profile.0);
}
