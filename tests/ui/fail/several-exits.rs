include!("../common.rs");

workflow! {
    // Nothing joins `b` and `c`: which one's output is the workflow's?
    pub Open = a -> [b, c];
}

fn main() {}
