include!("../common.rs");

workflow! {
    pub Kyc = get_kyc_image -> [face_detect, face_match] -> mark_profile;
}

fn main() {}
