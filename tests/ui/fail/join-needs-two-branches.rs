include!("../common.rs");

workflow! {
    pub Single = a => b;
}

fn main() {}
