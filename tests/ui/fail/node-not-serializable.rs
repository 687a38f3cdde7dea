use goflow::prelude::*;

pub struct Opaque(u32);

#[node]
async fn takes_opaque(x: Opaque) -> u32 {
    x.0
}

fn main() {}
