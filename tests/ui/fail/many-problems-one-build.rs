include!("../common.rs");

// Every mistake below is reported by the same build.
workflow! {
    pub Loop = a -> b -> a;
    pub Selfie = { a -> c; c -> c; };
    pub Grouped = get_kyc_image -> [face_detect, face_match] -> mark_profile;
    pub Mismatch = get_kyc_image -> face_detect -> face_match;
}

fn main() {}
