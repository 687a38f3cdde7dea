include!("../common.rs");
include!("../branching.rs");

workflow! {
    // The items are `Image`s; `flag` takes a `Detection`.
    pub Sweep = list_images -> each { flag } => count_flags;
}

fn main() {}
