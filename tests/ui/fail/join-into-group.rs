include!("../common.rs");

workflow! {
    pub Fan = a -> [b, c] => [d, a as again];
}

fn main() {}
