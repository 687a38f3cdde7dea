use goflow::prelude::*;

#[node]
struct NotAFunction;

fn main() {}
