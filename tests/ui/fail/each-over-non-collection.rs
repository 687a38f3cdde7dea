include!("../common.rs");
include!("../branching.rs");

workflow! {
    // `get_kyc_image` outputs one `Image`, not a `Vec`.
    pub Sweep = get_kyc_image -> each { face_detect -> flag } => count_flags;
}

fn main() {}
