use goflow::prelude::*;

pub struct Opaque(u32);

#[node]
async fn makes_opaque(x: u32) -> Result<Opaque, NodeError> {
    Ok(Opaque(x))
}

fn main() {}
