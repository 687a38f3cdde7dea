include!("../common.rs");
include!("../branching.rs");

workflow! {
    // `->` passes one output on; the body's outputs are gathered with `=>`.
    pub Sweep = list_images -> each { face_detect -> flag } -> count_flags;
}

fn main() {}
