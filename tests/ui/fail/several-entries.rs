include!("../common.rs");

workflow! {
    pub TwoStarts = { a -> c; [c, b] => mark; };
}

#[node]
async fn mark(x: u32, y: u32) -> u32 {
    x + y
}

fn main() {}
