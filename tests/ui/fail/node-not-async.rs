use goflow::prelude::*;

#[node]
fn not_async(x: u32) -> u32 {
    x
}

fn main() {
    // The function stays callable: no second error here.
    let _ = not_async(1);
}
