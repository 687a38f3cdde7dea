include!("../common.rs");

workflow! {
    pub Outer = a -> Outer -> b;
}

fn main() {}
