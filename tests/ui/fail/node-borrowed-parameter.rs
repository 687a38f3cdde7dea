use goflow::prelude::*;

#[node]
async fn borrowed(name: &str) -> usize {
    name.len()
}

fn main() {}
