include!("../common.rs");

workflow! {
    pub Kyc = get_kyc_image -> face_detekt;
}

fn main() {}
