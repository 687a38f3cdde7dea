use goflow::prelude::*;

// A malformed value (`retries = "3"`) does not hide the options after it.
#[node(retries = "3", timout = "5s", backoff = "fast", timeout = "0s", retries = 3, retries = 4)]
async fn misconfigured(x: u32) -> u32 {
    x
}

fn main() {}
