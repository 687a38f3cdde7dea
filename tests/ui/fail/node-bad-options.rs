use goflow::prelude::*;

#[node(retries = 3, timout = "5s", backoff = "fast", timeout = "0s", retries = 4)]
async fn misconfigured(x: u32) -> u32 {
    x
}

fn main() {}
