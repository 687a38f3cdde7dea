include!("../common.rs");
include!("../branching.rs");

workflow! {
    // `Fail` carries a `Detection`, but `notify` takes a `User`.
    pub Verify = face_detect -> check_face ? {
        Pass => face_match,
        Fail => notify,
        Skip => {},
    } -> generate_result;
}

fn main() {}
