use goflow::prelude::*;

#[node]
async fn nothing(ctx: Context) -> u32 {
    ctx.attempt()
}

fn main() {}
