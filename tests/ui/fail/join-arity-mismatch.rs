include!("../common.rs");

workflow! {
    // `mark_profile` takes two parameters, not three.
    pub Kyc = get_kyc_image -> [face_detect, face_match, face_detect as again] => mark_profile;
}

fn main() {}
