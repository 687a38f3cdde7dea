use goflow::prelude::*;

struct Service;

impl Service {
    #[node]
    async fn method(&self, x: u32) -> u32 {
        x
    }
}

fn main() {}
