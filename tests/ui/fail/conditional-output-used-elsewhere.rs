include!("../common.rs");
include!("../branching.rs");

workflow! {
    // `check_face` gives its output to one arm: `flag` cannot take it as well.
    pub Verify = {
        face_detect -> check_face ? {
            Pass => face_match,
            Fail => create_user -> notify,
            Skip => {},
        } -> generate_result;
        check_face -> flag;
    };
}

fn main() {}
