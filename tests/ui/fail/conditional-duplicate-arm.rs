include!("../common.rs");
include!("../branching.rs");

workflow! {
    pub Verify = face_detect -> check_face ? {
        Pass => face_match,
        Fail => create_user -> notify,
        Pass => {},
    } -> generate_result;
}

fn main() {}
