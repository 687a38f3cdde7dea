include!("../common.rs");

workflow! {
    // `face_match` takes an `Image`, not the `Detection` that `face_detect` returns.
    pub Kyc = get_kyc_image -> face_detect -> face_match;
}

fn main() {}
