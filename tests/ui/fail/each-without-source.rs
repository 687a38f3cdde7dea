include!("../common.rs");
include!("../branching.rs");

workflow! {
    // No vertex before `each` gives it a collection to run over.
    pub Loose = each { face_detect -> flag } => count_flags;
    // An arm's payload goes to a vertex before any `each`.
    pub InArm = face_detect -> check_face ? {
        Pass => each { face_match } => generate_result,
        Fail => create_user -> notify,
        Skip => {},
    } -> generate_result as result;
}

fn main() {}
