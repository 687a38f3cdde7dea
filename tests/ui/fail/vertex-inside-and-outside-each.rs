include!("../common.rs");
include!("../branching.rs");

workflow! {
    pub Sweep = {
        list_images -> each { face_detect -> flag } => count_flags;
        flag -> count_again;
    };
}

#[node]
async fn count_again(flag: bool) -> u32 {
    u32::from(flag)
}

fn main() {}
