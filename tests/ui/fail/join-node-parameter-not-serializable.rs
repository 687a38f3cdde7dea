use goflow::prelude::*;

pub struct Opaque(u32);

#[node]
async fn join_opaque(x: u32, y: Opaque) -> u32 {
    x + y.0
}

fn main() {}
