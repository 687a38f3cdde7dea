include!("../common.rs");
include!("../branching.rs");

workflow! {
    // `?` picks an arm by one vertex's output, and a group has several.
    pub Verify = get_kyc_image -> [face_detect, face_detect as again] ? {
        Pass => face_match,
        Fail => create_user -> notify,
        Skip => {},
    } -> generate_result;
}

fn main() {}
