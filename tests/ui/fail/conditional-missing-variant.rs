include!("../common.rs");
include!("../branching.rs");

workflow! {
    // No arm for `Skip`: which vertex would take its payload?
    pub Verify = face_detect -> check_face ? {
        Pass => face_match,
        Fail => create_user -> notify,
    } -> generate_result;
}

fn main() {}
