include!("../common.rs");

workflow! {
    // The branches are joined in the wrong order: `mark_profile(Detection, Match)`.
    pub Kyc = get_kyc_image -> [face_match, face_detect] => mark_profile;
}

fn main() {}
