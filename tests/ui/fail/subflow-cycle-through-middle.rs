include!("../common.rs");

// The cycle runs through two invocations, so rustc finds it: `First`'s nesting depth
// depends on itself.
workflow! {
    pub First = a -> Second -> b;
}

workflow! {
    pub Second = c -> First -> d;
}

fn main() {}
