include!("../common.rs");

workflow! {
    pub Selfie = { a -> b; b -> b; };
}

fn main() {}
