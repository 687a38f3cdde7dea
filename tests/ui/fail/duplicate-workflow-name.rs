include!("../common.rs");

workflow! {
    pub Chain = a -> b;
    pub Chain = a -> c;
}

fn main() {}
