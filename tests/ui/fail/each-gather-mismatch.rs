include!("../common.rs");
include!("../branching.rs");

workflow! {
    // The body outputs `Detection`s: `count_flags` takes a `Vec<bool>`, not a `Vec<Detection>`.
    pub Sweep = list_images -> each { face_detect } => count_flags;
}

fn main() {}
