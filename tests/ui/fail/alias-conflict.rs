include!("../common.rs");

workflow! {
    pub Chain = a -> b as twice -> c as twice;
}

fn main() {}
