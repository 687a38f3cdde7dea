include!("../common.rs");

workflow! {
    pub First = a -> Second;
}

workflow! {
    pub Second = b -> First;
}

fn main() {}
