use goflow::prelude::*;

#[node]
async fn opaque(x: u32) -> impl Sized {
    x
}

fn main() {}
