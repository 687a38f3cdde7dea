include!("../common.rs");

workflow! {
    pub Loop = a -> b -> c -> a;
}

fn main() {}
