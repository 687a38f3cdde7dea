include!("../common.rs");
include!("../branching.rs");

workflow! {
    pub Sweep = list_images -> each { face_detect -> [flag, check_face] } => count_flags;
}

fn main() {}
