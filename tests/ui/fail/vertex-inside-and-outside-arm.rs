include!("../common.rs");
include!("../branching.rs");

workflow! {
    // `face_match` runs before the conditional, so the `Pass` arm needs a vertex of its own.
    pub Twice = get_kyc_image -> face_match -> check_match ? {
        Pass => face_match,
        Fail => create_user -> notify,
        Skip => {},
    } -> generate_result;
}

#[node]
async fn check_match(matched: Match) -> FaceCheck {
    FaceCheck::Skip(matched)
}

fn main() {}
