include!("../common.rs");

workflow! {
    pub First = a -> Second;
    pub Second = b -> First;
}

fn main() {}
