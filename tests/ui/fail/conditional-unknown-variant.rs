include!("../common.rs");
include!("../branching.rs");

workflow! {
    // `FaceCheck` has no variant `Retry`.
    pub Verify = face_detect -> check_face ? {
        Pass => face_match,
        Fail => create_user -> notify,
        Skip => {},
        Retry => {},
    } -> generate_result;
}

fn main() {}
