include!("../common.rs");
include!("../branching.rs");

workflow! {
    // `Fail => {}` passes its `Detection` straight on, but `generate_result` takes a `Match`.
    pub Verify = face_detect -> check_face ? {
        Pass => face_match,
        Fail => {},
        Skip => {},
    } -> generate_result;
}

fn main() {}
