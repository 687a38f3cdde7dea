use goflow::prelude::*;

#[node]
async fn generic<T: Clone>(x: T) -> T {
    x
}

fn main() {}
