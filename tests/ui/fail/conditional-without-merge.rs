include!("../common.rs");
include!("../branching.rs");

workflow! {
    // Which vertex takes the output of the arm that ran?
    pub Verify = face_detect -> check_face ? {
        Pass => face_match,
        Fail => create_user -> notify,
        Skip => {},
    };
}

fn main() {}
