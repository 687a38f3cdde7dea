include!("../common.rs");
include!("../branching.rs");

workflow! {
    // The `Fail` arm ends in `create_user`, which outputs a `User`, not a `Match`.
    pub Verify = face_detect -> check_face ? {
        Pass => face_match,
        Fail => create_user,
        Skip => {},
    } -> generate_result;
}

fn main() {}
